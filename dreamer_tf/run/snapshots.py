"""Copies of a run's checkpoints as they are written, for learning curves.

A run keeps only its newest checkpoints (`run/checkpoint.py`, keep=2). To
evaluate or probe every checkpoint of a run afterwards (`launch.evaluate`
or `launch.probe_deepsea` on each copy), `copy_newest` copies the newest
valid checkpoint aside as a run directory of its own:

  <out>/s<policy steps, 8 digits>/
    config.gin, run.json (and operative_config.gin if present)
    ckpt/<name>/, ckpt/latest

With `priorities=True` the copy also holds the step priorities of the
replay save the checkpoint names (`replay_priorities.npz`, written by
`save_priorities`): what prioritized replay favoured at that point of
training, which the replay itself keeps only for its newest saves
(`analysis/replay_moves.py` `diagonal_priorities` reads them).

The copy is written to a temporary directory and renamed into place, so a
copy is complete or absent (an interrupted copy's `.tmp` directory is
removed by the next copy; readers that glob `<out>/s*` skip it with
`is_partial`). Only checkpoints that pass the checksum are
copied. `launch/snapshot.py` calls it every minute while a run trains.
"""
import os
import re
import shutil

import numpy as np

from dreamer_tf.replay import disk
from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import record as record_lib

RUN_FILES = ('config.gin', record_lib.FILE)
OPTIONAL_FILES = ('operative_config.gin',)
PRIORITIES = 'replay_priorities.npz'
PARTIAL = '.tmp'  # The suffix of a copy being written.


def is_partial(path):
  """Whether `path` is a copy still being written (or left by an
  interrupted copier), `s<8 digits>.tmp`: not a run directory to read
  yet."""
  return re.fullmatch(r's[0-9]{8}' + re.escape(PARTIAL),
                      os.path.basename(os.path.normpath(path))) is not None


def check_run_dir(logdir):
  """Raises ValueError naming the fix when `logdir` is not a run directory
  (no config.gin or run.json)."""
  missing = [f for f in RUN_FILES
             if not os.path.isfile(os.path.join(logdir, f))]
  if missing:
    raise ValueError(
        f'{logdir} has no {" or ".join(missing)}: pass the --logdir of a '
        'training run (launch.train writes both when it starts).')


def copy_newest(logdir, out, priorities=False):
  """Copies the newest valid checkpoint of `logdir` to `out`/s<steps>.

  Returns the copy's path, or None when there is no checkpoint yet or the
  newest one is already copied. Raises ValueError (check_run_dir) when
  `logdir` is not a run directory. priorities: also save the step
  priorities of the checkpoint's replay save (module docstring); a
  CheckpointError when the checkpoint names none, ReplayCorruptError when
  that save is damaged. A checkpoint copied before without them is not
  copied again.
  """
  check_run_dir(logdir)
  directory = os.path.join(logdir, 'ckpt')
  if not os.path.isdir(directory):
    return None
  checkpointer = ckpt_lib.Checkpointer(directory)
  states = checkpointer.states()  # state.json only: no tensors read.
  newest = states[max(states)].get('parts', {}) if states else {}
  if not states or ('counters' in newest and
                    os.path.exists(_target(out, newest['counters']))):
    return None  # No checkpoint yet, or the newest is already copied.
  loaded = checkpointer.load()  # The newest whose checksum holds.
  if loaded is None:
    return None
  # unpack: a clear CheckpointError for a checkpoint of an older layout.
  parts = ckpt_lib.unpack(*loaded, directory)
  target = _target(out, parts['counters'])
  if os.path.exists(target):
    return None
  generation = parts.get('replay', {}).get('generation')
  if priorities and generation is None:
    raise ckpt_lib.CheckpointError(
        f'The newest checkpoint of {logdir} names no replay save, so its '
        'step priorities cannot be copied (a run without a replay directory, '
        'or one older than replay generations): copy it without priorities.')
  source = checkpointer.loaded
  tmp = target + PARTIAL
  if os.path.isdir(out):  # Partial copies of an interrupted copier (one
    for stale in os.listdir(out):  # copier per `out`).
      if is_partial(stale):
        shutil.rmtree(os.path.join(out, stale), ignore_errors=True)
  name = os.path.basename(source)
  try:
    os.makedirs(os.path.join(tmp, 'ckpt'))
    for f in RUN_FILES + OPTIONAL_FILES:
      if os.path.isfile(os.path.join(logdir, f)):
        shutil.copy(os.path.join(logdir, f), tmp)
    shutil.copytree(source, os.path.join(tmp, 'ckpt', name))
    with open(os.path.join(tmp, 'ckpt', ckpt_lib.LATEST), 'w') as f:
      f.write(name)
    if priorities:
      save_priorities(os.path.join(logdir, 'replay'), generation,
                      os.path.join(tmp, PRIORITIES))
  except (FileNotFoundError, shutil.Error, disk.ReplayCorruptError) as e:
    shutil.rmtree(tmp, ignore_errors=True)
    if not os.path.isdir(source):
      # The run deleted this checkpoint (two newer ones were saved) while
      # it was being copied, and then its replay save: the next call
      # copies the newest.
      return None
    if isinstance(e, disk.ReplayCorruptError):
      raise disk.ReplayCorruptError(
          f'{e} The checkpoint {source} names this replay save: the run\'s '
          'replay is damaged. Copy without priorities, or see '
          'train.lost_replay to resume the run.') from e
    raise
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  os.rename(tmp, target)
  return target


def save_priorities(replay_dir, generation, path):
  """Writes the step priorities of save `generation` of the replay in
  `replay_dir` to `path` (npz): `chunk` [C] and `length` [C] int64, the
  chunk ids and their steps in the save's index order, `priority`
  [sum of lengths] float32, each chunk's step priorities in that order
  (inf: a step no update has given one yet), and `generation`."""
  index, prios = disk.Directory(replay_dir).load_priorities(generation)
  chunks = index['chunks']
  with open(path, 'wb') as f:
    np.savez(f, chunk=np.asarray([c[0] for c in chunks], np.int64),
             length=np.asarray([c[2] for c in chunks], np.int64),
             priority=np.concatenate(prios) if prios else np.zeros(
                 0, np.float32),
             generation=np.int64(index['generation']))


def _target(out, counters):
  """<out>/s<policy steps> of a checkpoint's counters part."""
  return os.path.join(out, f"s{counters['policy_steps']:08d}")
