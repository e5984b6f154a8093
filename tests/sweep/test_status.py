"""A sweep's runs as recorded on disk (`dreamer_tf/sweep/status.py`): each
status from the files alone, the record, the index and its read-back,
without starting a run (tests/sweep/test_local.py runs them)."""
import json
import os
import signal
import socket

import pytest

from dreamer_tf.run import DONE_FILE
from dreamer_tf.sweep import status as sweep_status
from tests.sweep.fakes import make_runs


def test_each_status_from_the_files(tmp_path):
  run = make_runs(tmp_path, seeds=[0])[0]
  assert sweep_status.read_status(run)['status'] == 'pending'
  os.makedirs(os.path.join(run.logdir, 'ckpt'))
  assert sweep_status.read_status(run)['status'] == 'partial'
  # A live process on this host (this one): running.
  sweep_status.write_record(
      run, state='running', pid=os.getpid(),
      pid_start=sweep_status.create_time(os.getpid()), started='t0')
  status = sweep_status.read_status(run)
  assert status['status'] == 'running' and status['started'] == 't0'
  assert status['host'] == socket.gethostname()
  # Another process by that pid (another start time): it died; partial.
  sweep_status.write_record(run, state='running', pid=os.getpid(),
                            pid_start=1.0)
  assert sweep_status.read_status(run)['status'] == 'partial'
  # On another host: running until that host records its end.
  sweep_status.write_record(run, state='running', pid=1, host='elsewhere')
  assert sweep_status.read_status(run)['status'] == 'running'
  # A record without a host is this host's: its process is checked.
  with open(os.path.join(run.logdir, sweep_status.RECORD_FILE), 'w') as f:
    json.dump(dict(state='running', pid=os.getpid(), pid_start=1.0), f)
  assert sweep_status.read_status(run)['status'] == 'partial'
  # Exited nonzero: failed; interrupted or 0 without done.json: partial.
  sweep_status.write_record(run, state='exited', exit_code=3, ended='t1')
  status = sweep_status.read_status(run)
  assert (status['status'], status['exit_code'], status['ended']) == (
      'failed', 3, 't1')
  sweep_status.write_record(run, state='exited', exit_code=-2,
                            interrupted=True)
  assert sweep_status.read_status(run)['status'] == 'partial'
  sweep_status.write_record(run, state='exited', exit_code=0)
  assert sweep_status.read_status(run)['status'] == 'partial'
  # The checkpoint the run last saved, and done.json over everything.
  with open(os.path.join(run.logdir, 'ckpt', 'latest'), 'w') as f:
    f.write('ckpt-000123\n')
  sweep_status.write_record(run, state='exited', exit_code=3)
  with open(os.path.join(run.logdir, DONE_FILE), 'w') as f:
    json.dump({'policy_steps': 1}, f)
  status = sweep_status.read_status(run)
  assert status['status'] == 'done' and status['checkpoint'] == 'ckpt-000123'


def test_the_record_names_the_run_and_its_command(tmp_path):
  run = make_runs(tmp_path, seeds=[4])[0]
  os.makedirs(run.logdir)
  sweep_status.write_record(run, state='running', pid=7)
  record = sweep_status.read_record(run.logdir)
  assert record['name'] == run.name and record['seed'] == 4
  assert record['task'] == run.task and record['command'] == run.shell
  assert record['state'] == 'running' and record['pid'] == 7
  assert record['host'] == socket.gethostname()
  assert 'experiment' not in record  # Not an experiment sweep.
  # A record that is not a JSON object reads as none.
  for text in ('{"cut', '[1, 2]'):
    with open(os.path.join(run.logdir, sweep_status.RECORD_FILE), 'w') as f:
      f.write(text)
    assert sweep_status.read_record(run.logdir) == {}
  assert sweep_status.read_record(str(tmp_path / 'missing')) == {}


def test_index_lists_every_run_and_reads_back(tmp_path):
  root = tmp_path / 'sw'
  runs = make_runs(root, grid={'train.train_ratio': ['256']})
  os.makedirs(runs[1].logdir)
  sweep_status.write_record(runs[1], state='exited', exit_code=-9)
  entries = sweep_status.write_index(str(root), runs)
  assert [e['status'] for e in entries] == [
      'pending', 'failed', 'pending', 'pending']
  index = json.loads((root / sweep_status.INDEX_JSON).read_text())
  assert index['counts'] == {'pending': 3, 'failed': 1}
  md = (root / sweep_status.INDEX_MD).read_text()
  assert '3 pending, 1 failed' in md and '| 1 | failed | SIGKILL |' in md
  loaded = sweep_status.load_index(str(root))
  assert [(r.name, r.logdir, r.task, r.seed, r.argv) for r in loaded] == [
      (r.name, r.logdir, r.task, r.seed, r.argv) for r in runs]
  table = sweep_status.status_table(loaded).splitlines()
  assert table[0].split() == ['#', 'status', 'exit', 'checkpoint', 'run']
  assert table[2].split()[:3] == ['1', 'failed', 'SIGKILL']
  assert table[-1] == '3 pending, 1 failed'
  with pytest.raises(ValueError, match=r'No sweep index at .*index\.json; '
                     r'pass the sweep flags'):
    sweep_status.load_index(str(tmp_path / 'none'))
  for text in ('{"runs": [', '{"updated": "t"}', '[]'):
    (root / sweep_status.INDEX_JSON).write_text(text)
    with pytest.raises(ValueError, match=r'index\.json is unreadable or not '
                       r'a sweep index; launch the sweep again'):
      sweep_status.load_index(str(root))


def test_exit_text():
  assert sweep_status.exit_text(None) == '-'
  assert sweep_status.exit_text(0) == '0'
  assert sweep_status.exit_text(-signal.SIGINT) == 'SIGINT'
  assert sweep_status.exit_text(-200) == 'signal 200'
