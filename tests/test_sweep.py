"""Sweeps: the plan (`dreamer_tf/run/sweep_plan.py`: expansion,
validation), the local runner and index (`dreamer_tf/run/sweep_local.py`)
and the command line (`launch/sweep.py`).

The runner tests replace each run's command with a tiny `python -c` script
(FAKE) that writes done.json, fails or waits for SIGINT, so no training runs.
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
from dreamer_tf.run import sweep_local
from dreamer_tf.run import sweep_plan
from launch import sweep
from tests.conftest import ROOT

# argv[1]: logdir; argv[2]: ok (write done.json) | fail | exit0 (no done) |
# wait (until SIGINT, then exit cleanly). Every call is counted in calls.txt.
FAKE = r"""
import json, os, signal, sys, time
logdir, action = sys.argv[1], sys.argv[2]
with open(os.path.join(logdir, 'calls.txt'), 'a') as f:
  f.write(action + '\n')
print('fake run', logdir, action)
if action == 'fail':
  print('Traceback: something broke', file=sys.stderr)
  sys.exit(3)
if action == 'wait':
  signal.signal(signal.SIGINT, lambda *a: (
      open(os.path.join(logdir, 'stopped'), 'w').close(), sys.exit(0)))
  open(os.path.join(logdir, 'ready'), 'w').close()
  time.sleep(60)
  sys.exit(5)
if action == 'ok':
  with open(os.path.join(logdir, 'done.json'), 'w') as f:
    json.dump({'policy_steps': 1}, f)
"""


def fake(runs, action='ok', **overrides):
  """Runs whose command is FAKE with `action` (per run name in overrides)."""
  return [dataclasses.replace(run, argv=(
      sys.executable, '-c', FAKE, run.logdir,
      overrides.get(run.name, action))) for run in runs]


def calls(run):
  path = os.path.join(run.logdir, 'calls.txt')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return f.read().split()


def make_runs(root, seeds=(0, 1), grid=None, gin_params=()):
  return sweep_plan.expand(['dmc:walker_walk', 'gym:CartPole-v1'], list(seeds),
                      grid or {}, ['gin_configs/suites/dmc_proprio.gin'],
                      list(gin_params), str(root))


# --- Expansion ---------------------------------------------------------------


def test_expand_counts_names_and_argv(tmp_path):
  grid = sweep_plan.parse_grid(['train.train_ratio=256,512',
                           "Agent.precision='float32','bfloat16'"])
  runs = sweep_plan.expand(['dmc:walker_walk', 'atari100k:Pong'],
                      sweep_plan.parse_seeds('0-2'), grid,
                      ['a.gin', 'b.gin'], ['train.steps=1000'], 'sw')
  assert len(runs) == 2 * 2 * 2 * 3
  assert len({run.logdir for run in runs}) == len(runs)
  first = runs[0]
  assert first.name == 'dmc_walker_walk/train_ratio=256,precision=float32/seed0'
  assert first.logdir == os.path.join('sw', first.name)
  assert first.task == 'dmc:walker_walk' and first.seed == 0
  assert first.bindings == (('train.train_ratio', '256'),
                            ('Agent.precision', "'float32'"))
  assert first.argv == (
      'python', '-m', 'launch.train', f'--logdir={first.logdir}', '--seed=0',
      '--gin_file=a.gin', '--gin_file=b.gin', '--gin_param=train.steps=1000',
      "--gin_param=train.env='dmc:walker_walk'",
      '--gin_param=train.train_ratio=256',
      "--gin_param=Agent.precision='float32'")
  assert runs[-1].name == (
      'atari100k_Pong/train_ratio=512,precision=bfloat16/seed2')
  # Nesting: tasks, then grid points, then seeds.
  assert [r.seed for r in runs[:3]] == [0, 1, 2]


def test_expand_without_grid_has_no_grid_level(tmp_path):
  runs = make_runs(tmp_path, seeds=[3])
  assert [r.name for r in runs] == ['dmc_walker_walk/seed3',
                                    'gym_CartPole-v1/seed3']


def test_print_quoting_round_trips_through_the_shell(tmp_path):
  runs = sweep_plan.expand(['dmc:walker_walk'], [0], {
      'Agent.precision': ["'float32'"], 'WorldModel.units': ['(1, 2)'],
      'train.env_kwargs': ['{"repeat": 4, "x": "$HOME"}']},
                      [], [], str(tmp_path / 'my sweep'))
  line = runs[0].shell
  assert "\"--gin_param=train.env='dmc:walker_walk'\"" in line
  assert shlex.split(line) == list(runs[0].argv)
  out = subprocess.run(['sh', '-c', 'printf "%s\\n" ' + line[len(
      'python -m launch.train '):]], capture_output=True, text=True,
                       check=True).stdout.splitlines()
  assert out == list(runs[0].argv[3:])


def test_parse_seeds_grid_and_tasks():
  assert sweep_plan.parse_seeds('0,1,2') == [0, 1, 2]
  assert sweep_plan.parse_seeds('0-4') == [0, 1, 2, 3, 4]
  assert sweep_plan.parse_seeds('0-1,7') == [0, 1, 7]
  for bad in ('', 'a', '3-1', '0,0', '-1'):
    with pytest.raises(ValueError):
      sweep_plan.parse_seeds(bad)
  assert sweep_plan.parse_grid(['Foo.bar=(1,2),(3,4)', "X.y='a,b',c"]) == [
      ('Foo.bar', ['(1,2)', '(3,4)']), ('X.y', ["'a,b'", 'c'])]
  for bad in (['novalue'], ['X.y='], ['X.y=1,1'], ['X.y=1', 'X.y=2']):
    with pytest.raises(ValueError):
      sweep_plan.parse_grid(bad)
  with pytest.raises(ValueError, match="Unknown env suite 'dcm'.*'dmc'"):
    sweep_plan.expand(['dcm:walker_walk'], [0], {}, [], [], 'sw')
  with pytest.raises(ValueError, match='suite:task'):
    sweep_plan.expand(['walker_walk'], [0], {}, [], [], 'sw')


def test_expand_rejects_conflicting_bindings():
  with pytest.raises(ValueError, match='--tasks'):
    sweep_plan.expand(['gym:CartPole-v1'], [0], {}, [], ["train.env='x:y'"],
                      'sw')
  with pytest.raises(ValueError, match='--seeds'):
    sweep_plan.expand(['gym:CartPole-v1'], [0], {'train.seed': ['1', '2']}, [],
                 [], 'sw')
  with pytest.raises(ValueError, match='both swept'):
    sweep_plan.expand(['gym:CartPole-v1'], [0], {'train.steps': ['1', '2']}, [],
                 ['train.steps=5'], 'sw')
  with pytest.raises(ValueError, match='share the directory'):
    sweep_plan.expand(['gym:CartPole-v1'], [0], {'X.y': ["'a b'", "'a_b'"]}, [],
                 [], 'sw')


def test_same_parameter_name_in_two_bindings_uses_full_names():
  runs = sweep_plan.expand(['gym:CartPole-v1'], [0], {
      'Actor.units': ['16'], 'Critic.units': ['32'], 'RSSM.deter': ['64']},
                      [], [], 'sw')
  assert runs[0].name == ('gym_CartPole-v1/Actor.units=16,Critic.units=32,'
                          'deter=64/seed0')


# --- Validation and array selection ------------------------------------------


def test_gin_typo_fails_before_anything_starts(tmp_path):
  root = tmp_path / 'sweep'
  with pytest.raises(ValueError, match=r'did you mean.*RSSM\.deter'):
    sweep.sweep('gym:CartPole-v1', '0-3', ['RSSM.detr=64,128'], [], [],
                str(root))
  assert not root.exists()
  with pytest.raises(ValueError, match='Bad gin syntax'):
    sweep.sweep('gym:CartPole-v1', '0', [], [], ['train.steps=1 2'],
                str(root), mode='print')
  with pytest.raises(FileNotFoundError):
    sweep.sweep('gym:CartPole-v1', '0', [], ['nope.gin'], [], str(root))
  # Seed bindings launch.train would refuse fail up front too: an ignored
  # Agent.seed, or a gin file (e.g. a run's config.gin) binding train.seed.
  with pytest.raises(ValueError, match='Agent.seed is set from the run seed'):
    sweep.sweep('gym:CartPole-v1', '0', ['Agent.seed=0,1'], [], [], str(root))
  seeded = tmp_path / 'seeded.gin'
  seeded.write_text("train.seed = 7\n")
  with pytest.raises(ValueError, match='contradicts'):
    sweep.sweep('gym:CartPole-v1', '0-1', [], [str(seeded)], [], str(root))
  assert not root.exists()


def test_valid_sweep_validates_and_leaves_gin_clear(tmp_path):
  import gin  # pylint: disable=import-outside-toplevel
  runs = make_runs(tmp_path, grid={'train.train_ratio': ['256', '512']})
  sweep_plan.validate(runs)
  assert gin.config_str() == ''


def test_array_index_selects_one_run_and_rejects_out_of_range(tmp_path):
  out = io.StringIO()
  code = sweep.sweep('dmc:walker_walk,gym:CartPole-v1', '0-2', [],
                     ['gin_configs/suites/dmc_proprio.gin'], [],
                     str(tmp_path), mode='print', array_index=4, out=out)
  assert code == 0
  line, = out.getvalue().splitlines()
  assert '--logdir=' + str(tmp_path / 'gym_CartPole-v1' / 'seed1') in line
  for index in (6, -1):
    with pytest.raises(ValueError, match=r'out of range.*6 runs \(0-5\)'):
      sweep.sweep('dmc:walker_walk,gym:CartPole-v1', '0-2', [], [], [],
                  str(tmp_path), mode='print', array_index=index)


def test_array_index_in_local_mode_runs_only_that_run(tmp_path):
  runs = fake(make_runs(tmp_path))
  code = sweep_local.run_local([runs[2]], root=str(tmp_path), index_runs=runs,
                         out=io.StringIO())
  assert code == 0
  assert [len(calls(r)) for r in runs] == [0, 0, 1, 0]
  index = json.loads((tmp_path / 'index.json').read_text())
  assert [e['status'] for e in index['runs']] == [
      'pending', 'pending', 'done', 'pending']


# --- Local runner ------------------------------------------------------------


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
  status = [sweep_local.read_status(r) for r in runs]
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
  assert [sweep_local.read_status(r)['status'] for r in runs] == [
      'failed', 'done']


# Runs `run_local` in a fresh interpreter that gets a real SIGINT (Ctrl-C),
# so the test does not depend on the pytest process's signal state.
RUNNER = r"""
import dataclasses, io, json, signal, sys
# A background job of a non-interactive shell starts with SIGINT ignored;
# a user's sweep is in the foreground, where Ctrl-C raises KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)
from dreamer_tf.run import sweep_local
from tests import test_sweep
root, mode, stop_timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
runs = test_sweep.make_runs(root, seeds=(0, 1) if mode == 'wait' else (0,))
if mode == 'wait':
  runs = test_sweep.fake(runs, action='wait')
else:  # One run whose child ignores SIGINT.
  script = ('import signal, time; signal.signal(signal.SIGINT, '
            'signal.SIG_IGN); open(__import__("sys").argv[1], "w").close(); '
            'time.sleep(60)')
  runs = [dataclasses.replace(runs[0], argv=(
      sys.executable, '-c', script, runs[0].logdir + '/ready'))]
out = io.StringIO()
code = sweep_local.run_local(runs, parallel=2, root=root, out=out,
                             stop_timeout=stop_timeout)
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
  assert [sweep_local.read_status(r)['status'] for r in runs] == [
      'partial', 'partial', 'pending', 'pending']
  assert '2 not started' in result['out']


def test_stop_kills_a_child_that_ignores_sigint(tmp_path):
  run, = make_runs(tmp_path, seeds=[0])[:1]
  start = time.time()
  result = ctrl_c_sweep(tmp_path, 'ignore', 0.5,
                        [os.path.join(run.logdir, 'ready')])
  assert result['code'] == 130
  assert time.time() - start < 15
  status = sweep_local.read_status(run)
  assert status['status'] == 'partial' and status['exit_code'] == -9


def test_a_live_run_is_not_started_twice(tmp_path):
  run, = fake(make_runs(tmp_path, seeds=[0])[:1])
  os.makedirs(run.logdir)
  sweep_local._write_record(
      run, state='running', pid=os.getpid(),
      pid_start=sweep_local._create_time(os.getpid()))
  assert sweep_local.read_status(run)['status'] == 'running'
  out = io.StringIO()
  assert sweep_local.run_local([run], out=out) == 0
  assert calls(run) == [] and 'already running' in out.getvalue()
  # A stale record (that process is gone) does not block the run.
  sweep_local._write_record(run, state='running', pid=os.getpid(),
                            pid_start=1.0)
  assert sweep_local.read_status(run)['status'] == 'partial'
  assert sweep_local.run_local([run], out=io.StringIO()) == 0
  assert calls(run) == ['ok']


# --- Index and status --------------------------------------------------------


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


def test_cli_print_mode(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.sweep', f'--root={tmp_path}/sw',
       '--tasks=dmc:walker_walk,dmc:cheetah_run', '--seeds=0-1',
       '--grid=train.train_ratio=256,512', '--mode=print',
       '--gin_file=gin_configs/suites/dmc_proprio.gin'],
      capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.splitlines()
  assert len(lines) == 8
  argv = shlex.split(lines[-1])
  assert argv[:3] == ['python', '-m', 'launch.train']
  assert "--gin_param=train.env='dmc:cheetah_run'" in argv
  assert '# 8 runs' in proc.stderr
  assert not (tmp_path / 'sw').exists()


def test_main_reports_config_errors_without_a_traceback(tmp_path):
  argv = ['sweep', f'--root={tmp_path}/sw', '--tasks=gym:CartPole-v1',
          '--gin_param=RSSM.detr=1']
  sweep.FLAGS(argv)
  try:
    with pytest.raises(SystemExit) as exit_info:
      sweep.main(['sweep'])
  finally:
    sweep.FLAGS.unparse_flags()
  assert str(exit_info.value.code).startswith('launch.sweep: Bad gin')
  assert 'RSSM.deter' in str(exit_info.value.code)
  assert not (tmp_path / 'sw').exists()


def test_runs_import_launch_from_the_project_root():
  assert os.path.exists(os.path.join(sweep_local.ROOT, 'launch', 'train.py'))
