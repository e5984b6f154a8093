"""Copies of a run's checkpoints (run/snapshots.py, launch/snapshot.py):
each new valid checkpoint once, readable as a run directory; the errors
and the races."""
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from dreamer_tf.run import evaluate
from dreamer_tf.run import snapshots
from tests.conftest import ROOT
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


def test_a_checkpoint_deleted_while_copied_leaves_nothing(tmp_path,
                                                          monkeypatch):
  logdir, out = str(tmp_path / 'run'), str(tmp_path / 'snap')
  write_run(logdir, RUN)

  def deleted(src, dst):
    raise FileNotFoundError(src)
  monkeypatch.setattr(shutil, 'copytree', deleted)
  assert snapshots.copy_newest(logdir, out) is None
  assert os.listdir(out) == []
  monkeypatch.undo()
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
