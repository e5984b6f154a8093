"""One writer per run directory (run/lock.py): a second run refuses at once
and names the first; a killed run leaves no stuck lock."""
import json
import os
import signal
import subprocess
import sys

import pytest

from dreamer_tf.run import lock as lock_lib
from dreamer_tf.run import train as train_lib
from tests.conftest import ROOT

HOLD = ('import sys, time\n'
        'from dreamer_tf.run.lock import RunLock\n'
        'RunLock(sys.argv[1]).__enter__()\n'
        'print("held", flush=True)\n'
        'time.sleep(600)\n')


@pytest.fixture
def holder(tmp_path):
  """A live process holding <tmp_path>/run.lock."""
  proc = subprocess.Popen([sys.executable, '-c', HOLD, str(tmp_path)],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == 'held'
  yield proc
  if proc.poll() is None:
    proc.kill()
  proc.wait()


def test_a_second_writer_is_refused_and_told_who_holds_the_run(
    tmp_path, holder):
  with pytest.raises(lock_lib.RunLockedError) as error:
    with lock_lib.RunLock(str(tmp_path)):
      pass
  message = str(error.value)
  assert f'pid {holder.pid}' in message and '--logdir' in message
  # train() refuses before it reads or writes anything of the run.
  with pytest.raises(lock_lib.RunLockedError):
    train_lib.train(str(tmp_path), steps=10)
  assert sorted(os.listdir(tmp_path)) == [lock_lib.LOCK_FILE]


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path, holder):
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  with lock_lib.RunLock(str(tmp_path)):
    with open(tmp_path / lock_lib.LOCK_FILE) as f:
      assert json.load(f)['pid'] == os.getpid()  # The stale text replaced.
  with lock_lib.RunLock(str(tmp_path)):  # Released on exit: again.
    pass


def test_launch_train_on_a_held_logdir_exits_with_one_message(
    tmp_path, holder):
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.train', f'--logdir={tmp_path}',
       '--gin_file=gin_configs/default.gin',
       '--gin_file=gin_configs/suites/debug.gin'],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
  assert proc.returncode != 0
  assert 'Traceback' not in proc.stderr
  assert f'Another run is writing {tmp_path}' in proc.stderr
  assert f'pid {holder.pid}' in proc.stderr
