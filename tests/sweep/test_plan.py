"""The sweep plan (`dreamer_tf/sweep/plan.py`): expansion of tasks x
seeds x grid into runs, names, argv and shell quoting, and validation."""
import os
import shlex
import subprocess

import pytest

from dreamer_tf.sweep import experiments as sweep_experiments
from dreamer_tf.sweep import plan as sweep_plan
from tests.analysis import fakes
from tests.sweep.fakes import make_runs


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


def test_valid_sweep_validates_and_leaves_gin_clear(tmp_path):
  import gin  # pylint: disable=import-outside-toplevel
  runs = make_runs(tmp_path, grid={'train.train_ratio': ['256', '512']})
  sweep_plan.validate(runs)
  assert gin.config_str() == ''


def test_expand_experiments_as_the_method_level(tmp_path):
  directory = fakes.write_experiments(tmp_path / 'xp')
  experiments = sweep_experiments.resolve('baseline,prioritized', directory)
  runs = sweep_plan.expand(['gym:CartPole-v1', 'dmc:walker_walk'], [0, 1],
                           {}, [], ['train.steps=10'], 'sw',
                           experiments=experiments)
  assert [r.name for r in runs[:4]] == [
      'gym_CartPole-v1/baseline/seed0', 'gym_CartPole-v1/baseline/seed1',
      'gym_CartPole-v1/prioritized/seed0',
      'gym_CartPole-v1/prioritized/seed1']
  first = runs[0]
  assert (first.experiment, first.method) == ('baseline', 'baseline')
  assert first.description == 'Baseline: DreamerV3 as it is, uniform replay.'
  # Without --gin_file the experiment modifies launch.train's default.
  baseline = os.path.join(directory, 'baseline.gin')
  assert first.gin_files == (sweep_plan.DEFAULT_GIN[0], baseline)
  assert first.argv[5:] == (
      f'--gin_file={sweep_plan.DEFAULT_GIN[0]}', f'--gin_file={baseline}',
      '--gin_param=train.steps=10', "--gin_param=train.env='gym:CartPole-v1'")
  # With base files and a grid: base files, then the experiment's file;
  # every experiment runs every grid point.
  runs = sweep_plan.expand(['gym:CartPole-v1'], [0],
                           {'train.train_ratio': ['8', '16']}, ['a.gin'], [],
                           'sw', experiments=experiments)
  assert [(r.name, r.method) for r in runs] == [
      ('gym_CartPole-v1/baseline/train_ratio=8/seed0',
       'baseline/train_ratio=8'),
      ('gym_CartPole-v1/baseline/train_ratio=16/seed0',
       'baseline/train_ratio=16'),
      ('gym_CartPole-v1/prioritized/train_ratio=8/seed0',
       'prioritized/train_ratio=8'),
      ('gym_CartPole-v1/prioritized/train_ratio=16/seed0',
       'prioritized/train_ratio=16')]
  assert runs[0].gin_files == ('a.gin', baseline)
  # A sweep without experiments is unchanged: no method level or name.
  plain, = sweep_plan.expand(['gym:CartPole-v1'], [0], {}, [], [], 'sw')
  assert (plain.name, plain.method, plain.gin_files) == (
      'gym_CartPole-v1/seed0', '', ())
