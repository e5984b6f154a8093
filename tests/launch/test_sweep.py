"""The sweep command line (`launch/sweep.py`): validation before anything
starts, array selection, print mode and error reporting."""
import io
import shlex
import subprocess
import sys

import pytest

from dreamer_tf.analysis import results
from dreamer_tf.sweep import status as sweep_status
from dreamer_tf.sweep import plan as sweep_plan
from launch import sweep
from tests.analysis import fakes as analysis_fakes
from tests.conftest import ROOT
from tests.sweep import fakes as sweep_fakes


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
  with pytest.raises(ValueError, match='--snapshot_priorities needs '
                     '--snapshot_every'):
    sweep.sweep('gym:CartPole-v1', '0', [], [], [], str(root),
                snapshot_priorities=True)
  with pytest.raises(ValueError, match='--snapshot_every is for '
                     '--mode=local'):
    sweep.sweep('gym:CartPole-v1', '0', [], [], [], str(root), mode='print',
                snapshot_every=60)
  assert not root.exists()


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


def test_print_mode_emits_multi_worker_runs(tmp_path):
  out = io.StringIO()
  assert sweep.sweep(['gym:CartPole-v1'], '0-1', [], [], [],
                     str(tmp_path / 'sw'), mode='print', out=out,
                     workers=4) == 0
  lines = out.getvalue().splitlines()
  assert len(lines) == 2
  argv = shlex.split(lines[1])
  assert argv[:5] == ['srun', '--ntasks=4', 'python', '-m', 'launch.train']
  assert argv[-1] == '--strategy=multi_worker'
  assert '--seed=1' in argv or any('seed1' in a for a in argv)
  with pytest.raises(ValueError, match='--workers=4 is for --mode=print'):
    sweep.sweep(['gym:CartPole-v1'], '0', [], [], [], str(tmp_path / 'sw'),
                workers=4)
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


def _experiment_sweep(tmp_path, monkeypatch):
  """sweep.sweep of experiments from tmp_path/xp x CartPole x seeds 0-1
  whose local runs are fakes (tests/sweep/fakes.py, each run's action from
  the returned dict, default 'ok'); print mode keeps the real commands.
  Returns (function of sweep's mode and keywords, actions)."""
  directory = analysis_fakes.write_experiments(tmp_path / 'xp')
  expand, actions = sweep_plan.expand, {}

  def fake_expand(*args, **kwargs):
    runs = expand(*args, **kwargs)
    local = kwargs['python'] == sys.executable
    return sweep_fakes.fake(runs, **actions) if local else runs
  monkeypatch.setattr(sweep.sweep_plan, 'expand', fake_expand)

  def run(mode='local', **kwargs):
    out = io.StringIO()
    code = sweep.sweep('gym:CartPole-v1', '0-1', [], [], ['train.steps=10'],
                       str(tmp_path / 'sw'), mode=mode, out=out,
                       experiments='baseline,prioritized',
                       experiments_dir=directory, **kwargs)
    return code, out.getvalue()
  return run, actions


def test_experiment_sweep_runs_skips_done_resumes_partial_and_prints(
    tmp_path, monkeypatch):
  run, actions = _experiment_sweep(tmp_path, monkeypatch)
  names = ['gym_CartPole-v1/baseline/seed0', 'gym_CartPole-v1/baseline/seed1',
           'gym_CartPole-v1/prioritized/seed0',
           'gym_CartPole-v1/prioritized/seed1']
  # The cluster commands: one launch.train line per run, nothing written.
  code, text = run(mode='print')
  lines = text.splitlines()
  assert code == 0 and len(lines) == 4
  for line, name in zip(lines, names):
    argv = shlex.split(line)
    assert argv[:3] == ['python', '-m', 'launch.train']
    assert f'--logdir={tmp_path / "sw" / name}' in argv
    experiment = name.split('/')[1]
    assert argv[-3] == f'--gin_file={tmp_path / "xp" / experiment}.gin'
  assert not (tmp_path / 'sw').exists()
  code, text = run(mode='print', array_index=3)
  assert text.splitlines() == lines[3:]
  # First pass: prioritized/seed0 stops unfinished (exit 0, no done.json).
  actions[names[2]] = 'exit0'
  code, text = run()
  assert code == 1 and 'UNFINISHED gym_CartPole-v1/prioritized/seed0' in text
  runs = sweep_status.load_index(str(tmp_path / 'sw'))
  assert [r.name for r in runs] == names
  assert [sweep_fakes.calls(r) for r in runs] == [
      ['ok'], ['ok'], ['exit0'], ['ok']]
  assert sweep_status.read_record(runs[2].logdir)['experiment'] == (
      'prioritized')
  # Second pass: the done runs are skipped, the partial one resumes.
  del actions[names[2]]
  code, text = run()
  assert code == 0 and '3 skipped (done)' in text
  assert [sweep_fakes.calls(r) for r in runs] == [
      ['ok'], ['ok'], ['exit0', 'ok'], ['ok']]
  code, text = run(mode='status')
  assert text.splitlines()[-1] == '4 done'
  assert text.splitlines()[1].split()[-1] == names[0]
  # The results file tells the runs apart by their recorded experiment
  # (the fakes write no run.json: task and seed come from sweep.json).
  rows = results.read_results(str(tmp_path / 'sw'))
  assert [(r['experiment'], r['method'], r['task'], r['seed'], r['status'])
          for r in rows] == [
              (xp, xp, 'gym:CartPole-v1', seed, 'done')
              for xp in ('baseline', 'prioritized') for seed in (0, 1)]
  assert rows[0]['description'] == (
      'Baseline: DreamerV3 as it is, uniform replay.')


def test_unknown_experiment_fails_before_anything_starts(tmp_path):
  directory = analysis_fakes.write_experiments(tmp_path / 'xp')
  root = tmp_path / 'sw'
  with pytest.raises(ValueError, match=r"Unknown experiment 'basline' \(did "
                     r"you mean 'baseline'\?\).*baseline, prioritized"):
    sweep.sweep('gym:CartPole-v1', '0', [], [], [], str(root),
                experiments='basline', experiments_dir=directory)
  assert not root.exists()
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.sweep', f'--root={root}',
       '--tasks=gym:CartPole-v1', '--experiments=no_such_xp'],
      capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
  assert proc.returncode != 0
  assert proc.stderr.startswith(
      "launch.sweep: Unknown experiment 'no_such_xp'"), proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr and not root.exists()


def test_experiment_with_a_bad_binding_fails_validation(tmp_path):
  bad = tmp_path / 'typo.gin'
  bad.write_text('# A typo.\nRSSM.detr = 64\n')
  with pytest.raises(ValueError, match=r'(?s)RSSM\.deter.*in the config '
                     'of run gym_CartPole-v1/typo/seed0'):
    sweep.sweep('gym:CartPole-v1', '0', [], [], [], str(tmp_path / 'sw'),
                mode='print', experiments=[str(bad)])
