"""Copies of a run's checkpoints (run/snapshots.py, launch/snapshot.py):
each new valid checkpoint once, readable as a run directory, with the
step priorities of its replay save on request; the errors and the
races."""
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from dreamer_tf import replay as replay_lib
from dreamer_tf.replay import disk
from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import evaluate
from dreamer_tf.run import snapshots
from tests.conftest import ROOT
from tests.run.test_evaluate import ENV
from tests.run.test_evaluate import POLICY_STEPS
from tests.run.test_evaluate import RUN
from tests.run.test_evaluate import write_run


def assert_same_checkpoint(a, b):
  sa, sb = evaluate.load_checkpoint(a), evaluate.load_checkpoint(b)
  assert sa['counters'] == sb['counters']
  for x, y in zip(sa['agent']['variables'], sb['agent']['variables']):
    np.testing.assert_array_equal(x, y)


def test_each_new_checkpoint_is_copied_once(tmp_path):
  logdir, out = str(tmp_path / 'run'), str(tmp_path / 'snap')
  write_run(logdir, RUN)
  first = snapshots.copy_newest(logdir, out)
  assert first == os.path.join(out, f's{POLICY_STEPS:08d}')
  assert sorted(os.listdir(first)) == ['ckpt', 'config.gin', 'run.json']
  assert_same_checkpoint(first, logdir)
  assert snapshots.copy_newest(logdir, out) is None  # Already copied.
  # A copied checkpoint is recognised from its state.json: its tensors
  # are not read again (a damaged file would warn).
  tensors = os.path.join(logdir, 'ckpt', 'ckpt-000000', 'tensors.npz')
  os.truncate(tensors, 10)
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    assert snapshots.copy_newest(logdir, out) is None
  write_run(logdir, RUN, counters={'policy_steps': 250})
  second = snapshots.copy_newest(logdir, out)
  assert second == os.path.join(out, 's00000250')
  assert_same_checkpoint(second, logdir)
  assert evaluate.load_checkpoint(first)['counters']['policy_steps'] == 100
  assert sorted(os.listdir(out)) == ['s00000100', 's00000250']


def test_a_corrupt_newest_checkpoint_is_not_copied(tmp_path):
  logdir, out = str(tmp_path / 'run'), str(tmp_path / 'snap')
  write_run(logdir, RUN)
  write_run(logdir, RUN, counters={'policy_steps': 250})
  newest = os.path.join(logdir, 'ckpt', 'ckpt-000001', 'tensors.npz')
  with open(newest, 'r+b') as f:
    f.seek(100)
    f.write(b'\0' * 64)
  with pytest.warns(UserWarning):
    path = snapshots.copy_newest(logdir, out)
  assert path == os.path.join(out, f's{POLICY_STEPS:08d}')


def test_no_checkpoint_yet_and_not_a_run(tmp_path):
  logdir = str(tmp_path / 'run')
  write_run(logdir, RUN)
  shutil.rmtree(os.path.join(logdir, 'ckpt'))
  assert snapshots.copy_newest(logdir, str(tmp_path / 'snap')) is None
  os.makedirs(os.path.join(logdir, 'ckpt'))
  assert snapshots.copy_newest(logdir, str(tmp_path / 'snap')) is None
  os.remove(os.path.join(logdir, 'run.json'))
  with pytest.raises(ValueError, match='has no run.json: pass the --logdir'):
    snapshots.copy_newest(logdir, str(tmp_path / 'snap'))


@pytest.mark.parametrize('error', [FileNotFoundError, shutil.Error])
def test_a_checkpoint_deleted_while_copied_leaves_nothing(tmp_path,
                                                          monkeypatch, error):
  """The run deletes the checkpoint being copied (copytree raises
  shutil.Error for files gone mid-copy): nothing is left, the next call
  copies the newest; an error while the checkpoint is still there is
  raised."""
  logdir, out = str(tmp_path / 'run'), str(tmp_path / 'snap')
  write_run(logdir, RUN)
  copytree = shutil.copytree

  def broken(src, dst):
    raise error(src)
  monkeypatch.setattr(shutil, 'copytree', broken)
  with pytest.raises(error):
    snapshots.copy_newest(logdir, out)
  assert os.listdir(out) == []

  def deleted(src, dst):
    shutil.rmtree(src)
    raise error(src)
  monkeypatch.setattr(shutil, 'copytree', deleted)
  assert snapshots.copy_newest(logdir, out) is None
  assert os.listdir(out) == []
  monkeypatch.setattr(shutil, 'copytree', copytree)
  write_run(logdir, RUN)  # The run's next checkpoint.
  # An interrupted copier's partial copy of another checkpoint goes too.
  os.makedirs(os.path.join(out, 's00000050.tmp', 'ckpt'))
  assert snapshots.copy_newest(logdir, out) is not None
  assert os.listdir(out) == [f's{POLICY_STEPS:08d}']


def test_launcher_once(tmp_path):
  logdir = str(tmp_path / 'run')
  write_run(logdir, RUN)
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.snapshot', f'--logdir={logdir}',
       '--once'], cwd=ROOT, capture_output=True, text=True, check=False,
      timeout=120)
  assert proc.returncode == 0, proc.stderr
  copy = os.path.join(logdir, 'snapshots', f's{POLICY_STEPS:08d}')
  assert proc.stdout.split()[-1] == copy
  assert_same_checkpoint(copy, logdir)


def test_launcher_ends_cleanly_on_ctrl_c(tmp_path):
  logdir = str(tmp_path / 'run')
  write_run(logdir, RUN)
  proc = subprocess.Popen(
      [sys.executable, '-m', 'launch.snapshot', f'--logdir={logdir}',
       '--every_seconds=1'], cwd=ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  copy = os.path.join(logdir, 'snapshots', f's{POLICY_STEPS:08d}')
  deadline = time.time() + 60
  while not os.path.exists(copy) and time.time() < deadline:
    time.sleep(0.2)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=60)
  assert os.path.exists(copy)
  assert proc.returncode == 0 and 'Traceback' not in err, err


def _checkpoint_with_replay(logdir, agent, generation, policy_steps):
  """One more checkpoint as the training loop writes it: agent, counters
  and the replay part naming its save `generation`."""
  directory = os.path.join(logdir, 'ckpt')
  ckpt_lib.Checkpoint(directory, dict(
      agent=ckpt_lib.AgentPart(agent, directory, ''),
      counters=_Fixed(dict(policy_steps=policy_steps, episodes=0, env=ENV)),
      replay=_Fixed(dict(generation=generation)))).save()


def _prioritize(replay, seed):
  """Priorities for one sampled batch; returns {(chunk, index): value}."""
  batch = replay.sample(4)
  value = np.random.default_rng(seed).uniform(
      0.5, 3.0, batch['stepid'].shape[:2])  # [B, T]
  replay.update(dict(stepid=batch['stepid'], priority=value))
  return {(int(c), int(i)): np.float32(v) for (c, i), v in zip(
      batch['stepid'].reshape(-1, 2), value.reshape(-1))}


def _expected(replay_dir, generation, given):
  """The step priorities [steps] of a save, by its index: `given` where a
  batch wrote one, inf elsewhere."""
  index = disk.Directory(replay_dir).load_index(None, None, generation)
  return np.asarray([given.get((c[0], i), np.inf) for c in index['chunks']
                     for i in range(c[2])], np.float32)


def test_priorities_of_each_checkpoints_replay_save(tmp_path):
  """Each copy holds the step priorities of the save its checkpoint names,
  not the replay's newest: the first copy keeps the first save's."""
  logdir, out = str(tmp_path / 'run'), str(tmp_path / 'snap')
  agent = write_run(logdir, RUN)
  replay_dir = os.path.join(logdir, 'replay')
  replay = replay_lib.Replay(replay_dir, chunk_size=8, length=4)
  for t in range(30):
    replay.add(dict(x=np.float32(t), is_first=np.bool_(t % 10 == 0)))
  given = _prioritize(replay, seed=0)
  first_generation = replay.save()
  _checkpoint_with_replay(logdir, agent, first_generation, 200)
  given_first = dict(given)
  given.update(_prioritize(replay, seed=1))
  # A newer save before the first copy: the copy takes its checkpoint's.
  second_generation = replay.save(keep=[first_generation])
  first = snapshots.copy_newest(logdir, out, priorities=True)
  _checkpoint_with_replay(logdir, agent, second_generation, 300)
  second = snapshots.copy_newest(logdir, out, priorities=True)
  for copy, generation, values in ((first, first_generation, given_first),
                                   (second, second_generation, given)):
    with np.load(os.path.join(copy, snapshots.PRIORITIES)) as saved:
      assert int(saved['generation']) == generation
      np.testing.assert_array_equal(saved['length'], [8, 8, 8, 6])
      np.testing.assert_array_equal(
          saved['priority'], _expected(replay_dir, generation, values))
  assert given != given_first  # The second batch changed some.
  assert_same_checkpoint(second, logdir)


def test_priorities_refused_without_a_replay_save(tmp_path):
  logdir, out = str(tmp_path / 'run'), str(tmp_path / 'snap')
  write_run(logdir, RUN)  # Its checkpoint has no replay part.
  with pytest.raises(ckpt_lib.CheckpointError, match='names no replay save, '
                     'so its step priorities cannot be copied'):
    snapshots.copy_newest(logdir, out, priorities=True)
  assert not os.path.exists(out) or os.listdir(out) == []
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.snapshot', f'--logdir={logdir}',
       '--once', '--priorities'], cwd=ROOT, capture_output=True, text=True,
      check=False, timeout=120)
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert 'launch.snapshot: The newest checkpoint of' in proc.stderr


def test_a_replay_save_gone_with_its_checkpoint_is_a_race_else_an_error(
    tmp_path, monkeypatch):
  """A save unreadable because the run moved on (its checkpoint deleted,
  then the save) is retried by the next call; missing while its
  checkpoint is still there, the run's replay is damaged and the error
  says so. Neither leaves a partial copy."""
  logdir, out = str(tmp_path / 'run'), str(tmp_path / 'snap')
  agent = write_run(logdir, RUN)
  replay = replay_lib.Replay(os.path.join(logdir, 'replay'), chunk_size=8,
                             length=4)
  for t in range(10):
    replay.add(dict(x=np.float32(t), is_first=np.bool_(t == 0)))
  _checkpoint_with_replay(logdir, agent, replay.save(), 200)
  save = snapshots.save_priorities

  def moved_on(*args):
    ckpt = os.path.join(logdir, 'ckpt')
    for name in os.listdir(ckpt):  # The copied checkpoint and all others.
      if name != ckpt_lib.LATEST:
        shutil.rmtree(os.path.join(ckpt, name))
    raise disk.ReplayCorruptError('truncated')
  monkeypatch.setattr(snapshots, 'save_priorities', moved_on)
  assert snapshots.copy_newest(logdir, out, priorities=True) is None
  assert os.listdir(out) == []
  monkeypatch.setattr(snapshots, 'save_priorities', save)
  _checkpoint_with_replay(logdir, agent, replay.save(), 300)
  assert snapshots.copy_newest(logdir, out, priorities=True) == os.path.join(
      out, 's00000300')
  _checkpoint_with_replay(logdir, agent, 99, 400)  # A save never made.
  with pytest.raises(disk.ReplayCorruptError, match=(
      "Replay save 99 is not in .* names this replay save: the run's replay "
      'is damaged')):
    snapshots.copy_newest(logdir, out, priorities=True)
  assert sorted(os.listdir(out)) == ['s00000300']


class _Fixed:
  """A checkpoint part with a fixed state."""

  def __init__(self, state):
    self.state = state

  def get_state(self):
    return self.state
