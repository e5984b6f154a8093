"""Named experiments (`dreamer_tf/sweep/experiments.py`): gin files by name
or path, their descriptions, and the experiment of a run directory."""
import json
import os

import pytest

from dreamer_tf.sweep import experiments as sweep_experiments
from dreamer_tf.sweep import plan as sweep_plan
from tests.analysis import fakes


def test_description_is_the_first_paragraph_of_the_leading_comment(tmp_path):
  directory = fakes.write_experiments(tmp_path / 'xp')
  assert sweep_experiments.describe(os.path.join(
      directory, 'baseline.gin')) == (
          'Baseline: DreamerV3 as it is, uniform replay.')
  path = tmp_path / 'bare.gin'
  path.write_text('train.steps = 1\n# Not a description.\n')
  assert sweep_experiments.describe(str(path)) == ''
  path.write_text('#\n#   Indented.\n\n# Not this one.\n')
  assert sweep_experiments.describe(str(path)) == 'Indented.'


def test_resolve_names_and_paths(tmp_path):
  directory = fakes.write_experiments(tmp_path / 'xp')
  assert sweep_experiments.known(directory) == {
      'baseline': os.path.join(directory, 'baseline.gin'),
      'prioritized': os.path.join(directory, 'prioritized.gin')}
  other = tmp_path / 'elsewhere' / 'latent_fixed.gin'
  os.makedirs(other.parent)
  other.write_text('# Fixed intrinsic weight.\n')
  found = sweep_experiments.resolve(f'prioritized, {other}', directory)
  assert [(e.name, e.path, e.description) for e in found] == [
      ('prioritized', os.path.join(directory, 'prioritized.gin'),
       'Prioritized replay.'),
      ('latent_fixed', str(other), 'Fixed intrinsic weight.')]


def test_unknown_or_clashing_experiments_fail_clearly(tmp_path):
  directory = fakes.write_experiments(tmp_path / 'xp')
  with pytest.raises(ValueError, match=r"Unknown experiment 'prioritised' "
                     r"\(did you mean 'prioritized'\?\)\. The experiments are "
                     r"the \.gin files of .*xp: baseline, prioritized"):
    sweep_experiments.resolve('baseline,prioritised', directory)
  with pytest.raises(ValueError, match=r"Unknown experiment 'x'\..*: none "
                     'yet'):
    sweep_experiments.resolve('x', str(tmp_path / 'empty'))
  with pytest.raises(ValueError, match='No experiments'):
    sweep_experiments.resolve(' , ', directory)
  with pytest.raises(ValueError, match="'nope.gin' does not exist"):
    sweep_experiments.resolve('nope.gin', directory)
  with pytest.raises(ValueError, match="Two experiments are named 'baseline'"):
    sweep_experiments.resolve(
        ['baseline', os.path.join(directory, 'baseline.gin')], directory)
  odd = tmp_path / 'a=b.gin'
  odd.write_text('')
  with pytest.raises(ValueError, match="'a=b'.*not usable as a directory"):
    sweep_experiments.resolve([str(odd)], directory)


def test_experiment_of_a_run_from_sweep_json_or_layout(tmp_path):
  directory = fakes.write_experiments(tmp_path / 'xp')
  run, = fakes.plan(tmp_path / 'sw', directory, names=['baseline'],
                    seeds=[0], grid={'train.train_ratio': ['64']})
  assert run.method == 'baseline/train_ratio=64'
  os.makedirs(run.logdir)
  # Started from a --mode=print line: the layout tells, the directory of
  # experiments describes it.
  assert sweep_experiments.of_run(run.logdir, run.task, directory) == (
      'baseline', 'Baseline: DreamerV3 as it is, uniform replay.',
      'baseline/train_ratio=64')
  assert sweep_experiments.of_run(run.logdir, run.task,
                                  str(tmp_path / 'none')) == (
                                      'baseline', '', 'baseline/train_ratio=64')
  # Started by the sweep: its sweep.json tells.
  with open(os.path.join(run.logdir, 'sweep.json'), 'w') as f:
    json.dump(dict(experiment='other', description='d', method='other/x'), f)
  assert sweep_experiments.of_run(run.logdir, run.task) == (
      'other', 'd', 'other/x')
  assert sweep_experiments.of_run(str(tmp_path), None) == ('', '', '')


def test_method_of_logdir_reads_the_plan_layout():
  method_of = sweep_plan.method_of_logdir
  assert method_of('r/gym_CartPole-v1/baseline/seed3', 'gym:CartPole-v1') == (
      'baseline', 'baseline')
  assert method_of('r/gym_CartPole-v1/b/train_ratio=8/seed0',
                   'gym:CartPole-v1') == ('b', 'b/train_ratio=8')
  for path in ('r/gym_CartPole-v1/train_ratio=8/seed0',  # Grid only.
               'r/gym_CartPole-v1/seed0',  # No method level.
               'r/cartpole/baseline/seed0',  # Not the task's directory.
               'r/gym_CartPole-v1/baseline/run1'):  # Not a seed directory.
    assert method_of(path, 'gym:CartPole-v1') == ('', ''), path
