"""The agent's networks and learning rules (no environments, no replay, no
files): distributions, layers, the RSSM, the world model, behavior learning,
the optimizer, and the `Agent` that assembles them."""
