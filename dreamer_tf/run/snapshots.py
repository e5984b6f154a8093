"""Copies of a run's checkpoints as they are written, for learning curves.

A run keeps only its newest checkpoints (`run/checkpoint.py`, keep=2). To
evaluate or probe every checkpoint of a run afterwards (`launch.evaluate`
or `launch.probe_deepsea` on each copy), `copy_newest` copies the newest
valid checkpoint aside as a run directory of its own:

  <out>/s<policy steps, 8 digits>/
    config.gin, run.json (and operative_config.gin if present)
    ckpt/<name>/, ckpt/latest

The copy is written to a temporary directory and renamed into place, so a
copy is complete or absent (an interrupted copy's `.tmp` directory is
removed by the next copy). Only checkpoints that pass the checksum are
copied. `launch/snapshot.py` calls it every minute while a run trains.
"""
import os
import shutil

from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import record as record_lib

RUN_FILES = ('config.gin', record_lib.FILE)
OPTIONAL_FILES = ('operative_config.gin',)


def check_run_dir(logdir):
  """Raises ValueError naming the fix when `logdir` is not a run directory
  (no config.gin or run.json)."""
  missing = [f for f in RUN_FILES
             if not os.path.isfile(os.path.join(logdir, f))]
  if missing:
    raise ValueError(
        f'{logdir} has no {" or ".join(missing)}: pass the --logdir of a '
        'training run (launch.train writes both when it starts).')


def copy_newest(logdir, out):
  """Copies the newest valid checkpoint of `logdir` to `out`/s<steps>.

  Returns the copy's path, or None when there is no checkpoint yet or the
  newest one is already copied. Raises ValueError (check_run_dir) when
  `logdir` is not a run directory.
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
  target = _target(out, ckpt_lib.unpack(*loaded, directory)['counters'])
  if os.path.exists(target):
    return None
  source = checkpointer.loaded
  tmp = target + '.tmp'
  if os.path.isdir(out):  # Partial copies of an interrupted copier (one
    for stale in os.listdir(out):  # copier per `out`).
      if stale.endswith('.tmp'):
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
  except FileNotFoundError:
    # The run deleted this checkpoint (two newer ones were saved) while
    # it was being copied: the next call copies the newest.
    shutil.rmtree(tmp, ignore_errors=True)
    return None
  os.rename(tmp, target)
  return target


def _target(out, counters):
  """<out>/s<policy steps> of a checkpoint's counters part."""
  return os.path.join(out, f"s{counters['policy_steps']:08d}")
