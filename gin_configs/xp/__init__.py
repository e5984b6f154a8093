"""Gin configs as a package, so that `include` paths resolve from any directory."""
