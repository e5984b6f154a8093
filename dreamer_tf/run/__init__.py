"""Running agents: the training loop (`train`), evaluation (`evaluate`) and
sweeps of many runs (`sweep_plan`, `sweep_local`).

This module stays free of TensorFlow so that launchers which only inspect
run directories (e.g. `launch.sweep --mode=status`) start instantly.
"""

# Written into a run's logdir when the run has spent its step budget.
DONE_FILE = 'done.json'
