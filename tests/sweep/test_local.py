"""The local sweep runner (`dreamer_tf/sweep/local.py`) and the index and
status it leaves on disk.

Each run's command is replaced by a tiny script (tests/sweep/fakes.py), so
no training runs.
"""
import dataclasses
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from dreamer_tf.run import DONE_FILE
from dreamer_tf.sweep import local as sweep_local
from dreamer_tf.sweep import status as sweep_status
from launch import sweep
from tests.analysis import fakes as analysis_fakes
from tests.conftest import ROOT
from tests.sweep.fakes import calls
from tests.sweep.fakes import fake
from tests.sweep.fakes import hold_newest_checkpoint
from tests.sweep.fakes import make_runs


def test_array_index_in_local_mode_runs_only_that_run(tmp_path):
  runs = fake(make_runs(tmp_path))
  code = sweep_local.run_local([runs[2]], root=str(tmp_path), index_runs=runs,
                         out=io.StringIO())
  assert code == 0
  assert [len(calls(r)) for r in runs] == [0, 0, 1, 0]
  index = json.loads((tmp_path / 'index.json').read_text())
  assert [e['status'] for e in index['runs']] == [
      'pending', 'pending', 'done', 'pending']


def test_runs_all_then_skips_finished(tmp_path):
  runs = fake(make_runs(tmp_path))
  out = io.StringIO()
  assert sweep_local.run_local(
      runs, parallel=2, root=str(tmp_path), out=out) == 0
  assert all(calls(r) == ['ok'] for r in runs)
  assert all((tmp_path / r.name / DONE_FILE).exists() for r in runs)
  assert 'fake run' in (tmp_path / runs[0].name / 'sweep.log').read_text()
  out = io.StringIO()
  assert sweep_local.run_local(
      runs, parallel=2, root=str(tmp_path), out=out) == 0
  assert all(calls(r) == ['ok'] for r in runs)  # Not run again.
  assert '4 skipped (done)' in out.getvalue()


def test_resumes_partial_runs_only(tmp_path):
  runs = fake(make_runs(tmp_path))
  # runs[0] finished; runs[1] has a checkpoint but no done.json.
  os.makedirs(runs[0].logdir)
  (tmp_path / runs[0].name / DONE_FILE).write_text('{}')
  ckpt = tmp_path / runs[1].name / 'ckpt'
  os.makedirs(ckpt)
  (ckpt / 'latest').write_text('ckpt-000003')
  status = [sweep_status.read_status(r) for r in runs]
  assert [s['status'] for s in status] == ['done', 'partial', 'pending',
                                           'pending']
  assert status[1]['checkpoint'] == 'ckpt-000003'
  assert sweep_local.run_local(runs, root=str(tmp_path), out=io.StringIO()) == 0
  assert [len(calls(r)) for r in runs] == [0, 1, 1, 1]
  # The resumed run got the same command it would get the first time.
  assert (tmp_path / runs[1].name / 'sweep.log').read_text().count(
      runs[1].shell) == 1


def test_failure_does_not_stop_others_and_exits_nonzero(tmp_path):
  runs = make_runs(tmp_path)
  runs = fake(runs, **{runs[0].name: 'fail', runs[2].name: 'exit0'})
  out = io.StringIO()
  assert sweep_local.run_local(
      runs, parallel=1, root=str(tmp_path), out=out) == 1
  assert all(len(calls(r)) == 1 for r in runs)
  text = out.getvalue()
  assert '2 done, 1 partial, 1 failed' in text
  assert f'FAILED {runs[0].name}' in text and 'something broke' in text
  assert f'UNFINISHED {runs[2].name}' in text
  index = json.loads((tmp_path / 'index.json').read_text())
  assert [(e['status'], e['exit_code']) for e in index['runs']] == [
      ('failed', 3), ('done', 0), ('partial', 0), ('done', 0)]
  # A rerun retries the failed and the unfinished runs only.
  runs = fake(runs)
  assert sweep_local.run_local(runs, root=str(tmp_path), out=io.StringIO()) == 0
  assert [len(calls(r)) for r in runs] == [2, 1, 2, 1]


def test_unstartable_command_fails_that_run_only(tmp_path):
  runs = fake(make_runs(tmp_path, seeds=[0]))
  runs[0] = dataclasses.replace(runs[0], argv=(str(tmp_path / 'missing'),))
  assert sweep_local.run_local(
      runs, root=str(tmp_path), out=io.StringIO()) == 1
  assert [sweep_status.read_status(r)['status'] for r in runs] == [
      'failed', 'done']


# Runs `run_local` in a fresh interpreter that gets a real SIGINT (Ctrl-C),
# so the test does not depend on the pytest process's signal state.
RUNNER = r"""
import dataclasses, io, json, signal, sys
# A background job of a non-interactive shell starts with SIGINT ignored;
# a user's sweep is in the foreground, where Ctrl-C raises KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)
from dreamer_tf.sweep import local as sweep_local
from tests.sweep import fakes as sweep_fakes
root, mode, stop_timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
runs = sweep_fakes.make_runs(root, seeds=(0, 1) if mode != 'ignore' else (0,))
if mode in ('wait', 'wait_snap'):
  runs = sweep_fakes.fake(runs, action='wait')
else:  # One run whose child ignores SIGINT.
  script = ('import signal, time; signal.signal(signal.SIGINT, '
            'signal.SIG_IGN); open(__import__("sys").argv[1], "w").close(); '
            'time.sleep(60)')
  runs = [dataclasses.replace(runs[0], argv=(
      sys.executable, '-c', script, runs[0].logdir + '/ready'))]
out = io.StringIO()
code = sweep_local.run_local(
    runs, parallel=2, root=root, out=out, stop_timeout=stop_timeout,
    snapshot_every=1000 if mode == 'wait_snap' else None)
print(json.dumps(dict(code=code, out=out.getvalue())))
"""


def ctrl_c_sweep(root, mode, stop_timeout, ready):
  """The RUNNER's result after one SIGINT once the files `ready` exist."""
  proc = subprocess.Popen(
      [sys.executable, '-c', RUNNER, str(root), mode, str(stop_timeout)],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 60
  while not all(os.path.exists(p) for p in ready):
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  stdout, stderr = proc.communicate(timeout=60)
  assert proc.returncode == 0, stderr[-2000:]
  return json.loads(stdout.strip().splitlines()[-1])


def test_ctrl_c_stops_children_cleanly(tmp_path):
  runs = make_runs(tmp_path)
  start = time.time()
  result = ctrl_c_sweep(tmp_path, 'wait', 20,
                        [tmp_path / r.name / 'ready' for r in runs[:2]])
  assert result['code'] == 130
  assert time.time() - start < 25
  assert all((tmp_path / r.name / 'stopped').exists() for r in runs[:2])
  assert [len(calls(r)) for r in runs] == [1, 1, 0, 0]
  assert [sweep_status.read_status(r)['status'] for r in runs] == [
      'partial', 'partial', 'pending', 'pending']
  assert '2 not started' in result['out']


def test_ctrl_c_copies_the_stopped_runs_last_checkpoints(tmp_path):
  """With --snapshot_every, the checkpoint each stopped run writes as it
  exits is copied (no copy came due before)."""
  from tests.run.test_evaluate import RUN  # pylint: disable=import-outside-toplevel
  from tests.run.test_evaluate import write_run  # pylint: disable=import-outside-toplevel
  runs = make_runs(tmp_path)
  for run in runs[:2]:
    write_run(run.logdir, RUN)
    write_run(run.logdir, RUN, counters={'policy_steps': 250})
    hold_newest_checkpoint(run.logdir)  # Written when SIGINT stops it.
  result = ctrl_c_sweep(tmp_path, 'wait_snap', 20,
                        [tmp_path / r.name / 'ready' for r in runs[:2]])
  assert result['code'] == 130
  for run in runs[:2]:
    assert f'snap  {run.name}: ' in result['out']
    assert os.listdir(os.path.join(run.logdir, 'snapshots')) == [
        's00000250']


def test_stop_kills_a_child_that_ignores_sigint(tmp_path):
  run, = make_runs(tmp_path, seeds=[0])[:1]
  start = time.time()
  result = ctrl_c_sweep(tmp_path, 'ignore', 0.5,
                        [os.path.join(run.logdir, 'ready')])
  assert result['code'] == 130
  assert time.time() - start < 15
  status = sweep_status.read_status(run)
  assert status['status'] == 'partial' and status['exit_code'] == -9


def test_a_live_run_is_not_started_twice(tmp_path):
  run, = fake(make_runs(tmp_path, seeds=[0])[:1])
  os.makedirs(run.logdir)
  sweep_status.write_record(
      run, state='running', pid=os.getpid(),
      pid_start=sweep_status.create_time(os.getpid()))
  out = io.StringIO()
  assert sweep_local.run_local([run], out=out) == 0
  assert calls(run) == [] and 'already running' in out.getvalue()
  # A stale record (that process is gone) does not block the run.
  sweep_status.write_record(run, state='running', pid=os.getpid(),
                            pid_start=1.0)
  assert sweep_local.run_local([run], out=io.StringIO()) == 0
  assert calls(run) == ['ok']


def test_index_and_status_table(tmp_path):
  root = tmp_path / 'sw'
  runs = make_runs(root, grid={'train.train_ratio': ['256']})
  faked = fake(runs, **{runs[1].name: 'fail'})
  assert sweep_local.run_local(faked[:2], root=str(root), index_runs=faked,
                         out=io.StringIO()) == 1
  index = json.loads((root / 'index.json').read_text())
  assert index['counts'] == {'done': 1, 'failed': 1, 'pending': 2}
  entry = index['runs'][0]
  assert entry['name'] == 'dmc_walker_walk/train_ratio=256/seed0'
  assert entry['logdir'] == runs[0].logdir
  assert entry['task'] == 'dmc:walker_walk' and entry['seed'] == 0
  assert entry['bindings'] == {'train.train_ratio': '256'}
  assert entry['status'] == 'done' and entry['exit_code'] == 0
  assert entry['argv'] == list(faked[0].argv)
  assert shlex.split(entry['command']) == entry['argv']
  md = (root / 'index.md').read_text()
  assert '| 1 | failed | 3 |' in md and '2 pending, 1 failed, 1 done' in md
  assert entry['experiment'] == ''
  assert '| dmc:walker_walk | 0 |  | train.train_ratio=256 |' in md  # No xp.
  # Status from disk, located through index.json from another directory.
  out = io.StringIO()
  assert sweep.sweep([], '0', [], [], [], str(root), mode='status',
                     out=out) == 0
  lines = out.getvalue().splitlines()
  assert lines[1].split()[:2] == ['0', 'done']
  assert lines[2].split()[:3] == ['1', 'failed', '3']
  assert lines[-1] == '2 pending, 1 failed, 1 done'
  with pytest.raises(ValueError, match='No sweep index'):
    sweep.sweep([], '0', [], [], [], str(tmp_path / 'none'), mode='status')


def test_runs_import_launch_from_the_project_root():
  assert os.path.exists(os.path.join(sweep_local.ROOT, 'launch', 'train.py'))


def test_experiment_runs_record_their_experiment(tmp_path):
  root = tmp_path / 'sw'
  runs = analysis_fakes.plan(
      root, analysis_fakes.write_experiments(tmp_path / 'xp'), seeds=[0])
  faked = fake(runs)
  assert sweep_local.run_local(faked[:1], root=str(root), index_runs=faked,
                               out=io.StringIO()) == 0
  record = sweep_status.read_record(runs[0].logdir)
  assert {k: record[k] for k in ('name', 'task', 'seed', 'experiment',
                                 'description', 'method', 'exit_code')} == {
      'name': 'dmc_walker_walk/baseline/seed0', 'task': 'dmc:walker_walk',
      'seed': 0, 'experiment': 'baseline',
      'description': 'Baseline: DreamerV3 as it is, uniform replay.',
      'method': 'baseline', 'exit_code': 0}
  assert sweep_status.read_record(runs[1].logdir) == {}  # Not started.
  index = json.loads((root / 'index.json').read_text())
  assert [e['experiment'] for e in index['runs']] == ['baseline',
                                                      'prioritized']
  assert '| dmc:walker_walk | 0 | baseline |  |' in (
      root / 'index.md').read_text()
  loaded = sweep_status.load_index(str(root))
  assert [(r.experiment, r.method) for r in loaded] == [
      ('baseline', 'baseline'), ('prioritized', 'prioritized')]


# Records the run's nice value and scheduling group, then finishes.
PRIORITY = r"""
import json, os, sys
logdir = sys.argv[1]
try:
  group = open('/proc/self/autogroup').read().strip()
except OSError:
  group = None
with open(os.path.join(logdir, 'priority.json'), 'w') as f:
  json.dump({'nice': os.nice(0), 'group': group}, f)
with open(os.path.join(logdir, 'done.json'), 'w') as f:
  json.dump({'policy_steps': 1}, f)
"""


def test_nice_lowers_the_runs_priority_and_their_group(tmp_path):
  run = make_runs(tmp_path)[0]
  run = dataclasses.replace(run, argv=(sys.executable, '-c', PRIORITY,
                                       run.logdir))
  base = os.nice(0)
  assert sweep_local.run_local([run], out=io.StringIO(), nice=7) == 0
  seen = json.loads((tmp_path / run.name / 'priority.json').read_text())
  assert seen['nice'] == min(19, base + 7)
  if seen['group'] is not None:  # Linux with autogroups.
    assert seen['group'].endswith('nice 7')
  with pytest.raises(ValueError, match='nice=20: use 0'):
    sweep_local.run_local([run], out=io.StringIO(), nice=20)


def test_snapshots_copy_running_runs_and_their_last_checkpoint(tmp_path):
  """--snapshot_every copies a running run's checkpoint while it runs
  (the fake sees <logdir>/snapshots before it ends), and the one a run
  writes as it ends, after it has; a run that has no checkpoint is left
  alone."""
  from tests.run.test_evaluate import POLICY_STEPS  # pylint: disable=import-outside-toplevel
  from tests.run.test_evaluate import RUN  # pylint: disable=import-outside-toplevel
  from tests.run.test_evaluate import write_run  # pylint: disable=import-outside-toplevel
  runs = make_runs(tmp_path)[:3]
  runs = fake(runs, 'ok', **{runs[0].name: 'slow'})
  for run in runs[:2]:  # runs[2]: no checkpoint (as a run just started).
    write_run(run.logdir, RUN)
  write_run(runs[1].logdir, RUN, counters={'policy_steps': 250})
  hold_newest_checkpoint(runs[1].logdir)  # Written as it ends.
  out = io.StringIO()
  assert sweep_local.run_local(runs, parallel=3, out=out,
                               snapshot_every=0.3) == 0
  assert calls(runs[0]) == ['slow', 'copied']  # Copied while it ran.
  for run, steps in ((runs[0], POLICY_STEPS), (runs[1], 250)):
    copy = os.path.join(run.logdir, 'snapshots', f's{steps:08d}')
    assert os.path.isfile(os.path.join(copy, 'ckpt', 'latest'))
    assert out.getvalue().count(f'snap  {run.name}: {copy}') == 1
  assert not os.path.exists(os.path.join(runs[2].logdir, 'snapshots'))
  assert 'note' not in out.getvalue()


def test_a_failing_copy_is_reported_once_and_the_sweep_goes_on(tmp_path):
  runs = fake(make_runs(tmp_path)[:1], 'slow')
  ckpt = os.path.join(runs[0].logdir, 'ckpt')
  os.makedirs(ckpt)
  with open(os.path.join(ckpt, 'latest'), 'w') as f:  # But no run.json.
    f.write('ckpt-000000')
  out = io.StringIO()
  assert sweep_local.run_local(runs, out=out, snapshot_every=0.2) == 0
  text = out.getvalue()
  assert text.count(f'note  {runs[0].name}: checkpoint copy failed '
                    '(ValueError: ') == 1
  assert 'has no config.gin or run.json' in text
  assert 'retrying every 0.2 s, further failures not reported' in text
  assert f'done  {runs[0].name}' in text
  with pytest.raises(ValueError, match='snapshot_every=0: seconds > 0'):
    sweep_local.run_local(runs, out=out, snapshot_every=0)


def test_an_interrupt_during_a_finished_runs_copy_keeps_its_result(
    tmp_path, monkeypatch):
  """The run's end is recorded before its last copy: a Ctrl-C there
  still reports it (here failed) and stops the sweep."""
  runs = fake(make_runs(tmp_path)[:1], 'fail')
  os.makedirs(os.path.join(runs[0].logdir, 'ckpt'))
  with open(os.path.join(runs[0].logdir, 'ckpt', 'latest'), 'w') as f:
    f.write('ckpt-000000')

  def interrupted(*args):
    raise KeyboardInterrupt
  monkeypatch.setattr(sweep_local.snapshots, 'copy_newest', interrupted)
  out = io.StringIO()
  assert sweep_local.run_local(runs, out=out, snapshot_every=1000) == 130
  assert sweep_status.read_status(runs[0])['status'] == 'failed'
  assert f'failed {runs[0].name} (exit 3)' in out.getvalue()
