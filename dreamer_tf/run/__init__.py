"""Running agents: one run (`train` builds the parts, `loop` runs them,
`driver` steps the envs, `checkpoint` of named parts, `record` run.json,
`logger`, `report`), evaluation (`evaluate`, `recording`) and `export`.

This module stays free of TensorFlow so that launchers which only inspect
run directories (e.g. `launch.sweep --mode=status`) start instantly.
"""

# Written into a run's logdir when the run has spent its step budget.
DONE_FILE = 'done.json'
