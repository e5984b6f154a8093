"""The sweep command line (`launch/sweep.py`): validation before anything
starts, array selection, print mode and error reporting."""
import io
import shlex
import subprocess
import sys

import pytest

from launch import sweep
from tests.conftest import ROOT


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
