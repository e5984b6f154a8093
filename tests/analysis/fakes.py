"""Analysis test fixtures: experiments (gin files) and the run directories
an experiment sweep leaves behind, written by the sweep's own code (plan
layout, sweep.json) and in launch.train's formats (run.json, config.gin,
scores.jsonl, metrics.jsonl, done.json), so no training runs; DeepSea
episodes in a replay (`play_deepsea`)."""
import calendar
import json
import os
import time

import numpy as np

from dreamer_tf.analysis import deepsea_probe
from dreamer_tf.envs import deepsea
from dreamer_tf.run import record as record_lib
from dreamer_tf.sweep import experiments as sweep_experiments
from dreamer_tf.sweep import status as sweep_status
from dreamer_tf.sweep import plan as sweep_plan

BASELINE = """\
# Baseline: DreamerV3 as it is,
# uniform replay.
#
# A second paragraph that is not part of the description.
train.train_ratio = 512
"""
PRIORITIZED = """\
# Prioritized replay.
train.train_ratio = 256
"""
# config.gin of a run as gin.config_str() writes it (a continued value).
CONFIG = """\
# Parameters for train:
# ==============================================================================
train.env = 'dmc:walker_walk'
train.env_kwargs = \\
    {'repeat': 2,
     'size': (64, 64)}
train.train_ratio = {ratio}
"""


def write_experiments(directory):
  """baseline.gin and prioritized.gin in `directory`; returns its path."""
  os.makedirs(directory, exist_ok=True)
  for name, text in (('baseline', BASELINE), ('prioritized', PRIORITIZED)):
    with open(os.path.join(directory, f'{name}.gin'), 'w') as f:
      f.write(text)
  return str(directory)


def plan(root, directory, tasks=('dmc:walker_walk',), seeds=(0, 1),
         names=('baseline', 'prioritized'), grid=None):
  """The runs of an experiment sweep (not started)."""
  experiments = sweep_experiments.resolve(list(names), str(directory))
  return sweep_plan.expand(list(tasks), list(seeds), grid or {}, [], [],
                           str(root), experiments=experiments)


def utc(text):
  """'2026-01-01T00:00:00Z' -> seconds since the epoch."""
  return float(calendar.timegm(time.strptime(text, '%Y-%m-%dT%H:%M:%SZ')))


def write_run(run, episodes, metrics=(), created='2026-01-01T00:00:00Z',
              last_write=None, done_frames=None, ratio=512, sweep_json=True,
              num_envs=1):
  """A run of the sweep in run.logdir.

  episodes: [(frames, score)] or (frames, score, kind); metrics: [{step,
  key: value}] records (time = created + step seconds). last_write: UTC
  text of the logs' (or done.json's) modification time; done_frames: write
  done.json with these frames. sweep_json: False for a run started from a
  `--mode=print` line (no sweep.json). num_envs: the run record's.
  """
  os.makedirs(run.logdir, exist_ok=True)
  if sweep_json:
    sweep_status.write_record(
        run, state='exited', exit_code=0, interrupted=False)
  record_lib.write(run.logdir, record_lib.RunRecord(
      env=run.task, env_kwargs={}, frames_per_step=1, seed=run.seed,
      num_envs=num_envs, steps=1000, created=created))
  with open(os.path.join(run.logdir, 'config.gin'), 'w') as f:
    f.write(CONFIG.replace('{ratio}', str(ratio)))
  with open(os.path.join(run.logdir, 'scores.jsonl'), 'w') as f:
    for frames, score, *kind in episodes:
      f.write(json.dumps({'step': frames, 'episode/score': score,
                          'episode/length': 10,
                          'kind': kind[0] if kind else 'train'}) + '\n')
  with open(os.path.join(run.logdir, 'metrics.jsonl'), 'w') as f:
    for values in metrics:
      f.write(json.dumps(dict(values, time=utc(created) + values['step']))
              + '\n')
  names = ['metrics.jsonl', 'scores.jsonl']
  if done_frames is not None:
    with open(os.path.join(run.logdir, 'done.json'), 'w') as f:
      json.dump({'policy_steps': done_frames, 'frames': done_frames,
                 'episodes': len(episodes)}, f)
    names.append('done.json')
  if last_write:
    for name in names:
      os.utime(os.path.join(run.logdir, name), (utc(last_write),) * 2)
  return run.logdir


def play_deepsea(replay, episodes, workers, seed=0, size=4, **env_kwargs):
  """Random DeepSea episodes added to `replay`, the workers stepping in
  lockstep as the training loop's envs do. Returns (mapping, the moves
  each worker made per step: [worker][step] -> (row, col, right) or None,
  no counted move,
  [(policy steps at its end, deepest diagonal row)] of every finished
  episode in the order they ended)."""
  rng = np.random.default_rng(seed)
  envs = [deepsea.DeepSeaEnv(size=size, **env_kwargs)
          for _ in range(workers)]
  mapping = np.asarray(envs[0].action_mapping)
  made = [[] for _ in range(workers)]
  obs = [env.reset(seed=0)[0] for env in envs]
  pos = [(0, 0)] * workers
  first, done = [True] * workers, [False] * workers
  depth, ended = [0] * workers, []
  for k in range(episodes * (size + 1)):
    for w, env in enumerate(envs):
      action = int(rng.integers(2))
      replay.add(dict(vector=obs[w], action=np.int32(action),
                      reward=np.float32(0), is_first=np.bool_(first[w]),
                      is_last=np.bool_(done[w]),
                      is_terminal=np.bool_(done[w])), w)
      if done[w]:  # The zeros step after the last move; no move made.
        ended.append((k * workers, depth[w]))  # As the loop logs it.
        depth[w] = 0
        made[w].append(None)
        obs[w], pos[w] = env.reset(seed=0)[0], (0, 0)
        first[w], done[w] = True, False
        continue
      row, col = pos[w]
      right = action == mapping[row, col]
      made[w].append((row, col, bool(right)) if row < size - 1 else None)
      obs[w], _, done[w], _, info = env.step(action)
      pos[w] = (info['row'], info['column'])
      if pos[w][0] == pos[w][1] and pos[w][0] < size:
        depth[w] = max(depth[w], pos[w][0])
      first[w] = False
      if not done[w]:  # The probe's move rule, as the counts assume.
        assert pos[w] == (row + 1, deepsea_probe.move(mapping, row, col,
                                                      right)[1])
  return mapping, made, ended


def tally_moves(made, quota=None):
  """{(row, col, right): n} of `play_deepsea`'s moves, the first `quota`
  steps of each worker (None: all)."""
  counts = {}
  for steps in made:
    for move in steps[:quota]:
      if move is not None:
        counts[move] = counts.get(move, 0) + 1
  return counts
