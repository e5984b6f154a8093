"""Running agents: one run (`train` builds the parts, `loop` runs them,
`driver` steps the envs, `checkpoint` of named parts, `record` run.json,
`logger`, `report`; `distribute` picks the strategy and `workers` keeps the
workers of a multi-worker run in step; `compile_cache` keeps compiled
functions between processes), evaluation (`evaluate`, `recording`) and
`export`.

This module stays free of TensorFlow so that launchers which only inspect
run directories (e.g. `launch.sweep --mode=status`) start instantly.
"""

# Written into a run's logdir when the run has spent its step budget.
DONE_FILE = 'done.json'

# The largest seed of a run (--seed, train.seed) or an evaluation. Env seeds
# are derived from it (1000 * seed + env index, plus an offset of up to
# 2 * 10**6 for evaluation envs) and must stay below 2**31, which every env
# backend and TensorFlow's int32 seed tensors accept.
MAX_SEED = 999_999
