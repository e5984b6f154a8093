"""dreamer_tf.analysis.scores: loading runs and score files, curves, budgets,
normalisation and aggregates, on synthetic data with exact numbers."""
import gzip
import json
import os
import sys
import warnings

import numpy as np
import pytest

from dreamer_tf.analysis import scores
from dreamer_tf.run import DONE_FILE
from tests.analysis import fakes
from tests.conftest import ROOT

REFERENCE = os.path.join(ROOT, '..', 'shared', 'reference')
BASELINES = os.path.join(REFERENCE, 'baselines.yaml')


def write_run(path, env, episodes, seed=None):
  """A run directory like launch/train.py writes: config.gin, scores.jsonl.

  episodes: [(frames, score)] train episodes, or (frames, score, kind).
  """
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, 'config.gin'), 'w') as f:
    f.write("# Parameters for train:\n")
    f.write(f"train.env = '{env}'\ntrain.num_envs = 1\n")
    if seed is not None:
      f.write(f'train.seed = {seed}\n')
  with open(os.path.join(path, 'scores.jsonl'), 'w') as f:
    for frames, score, *kind in episodes:
      f.write(json.dumps({'step': frames, 'episode/score': score,
                          'episode/length': 10,
                          'kind': kind[0] if kind else 'train'}) + '\n')
  return str(path)


def write_reference(path, records):
  """An official-format score file: gzip JSON [{task, method, seed, xs, ys}]."""
  with gzip.open(path, 'wt') as f:
    json.dump(records, f)
  return str(path)


def make_run(xs, ys, task='atari_pong', seed=0):
  return scores.Run(task, 'm', seed, np.asarray(xs, float),
                    np.asarray(ys, float))


@pytest.mark.parametrize('name,key', [
    ('atari100k:Pong', 'atari_pong'), ('atari:Pong', 'atari_pong'),
    ('atari:pong', 'atari_pong'), ('atari:MsPacman', 'atari_ms_pacman'),
    ('atari100k:UpNDown', 'atari_up_n_down'),
    ('atari:KungFuMaster', 'atari_kung_fu_master'),
    ('atari:Jamesbond', 'atari_jamesbond'),
    ('atari:JamesBond', 'atari_jamesbond'),
    ('atari:MontezumaRevenge', 'atari_montezuma_revenge'),
    ('atari:montezuma_revenge', 'atari_montezuma_revenge'),
    ('dmc:walker_walk', 'dmc_walker_walk'),
    ('dmc_vision:cup_catch', 'dmc_ball_in_cup_catch'),
    ('dmc:ball_in_cup_catch', 'dmc_ball_in_cup_catch'),
    ('gym:CartPole-v1', 'gym_CartPole-v1'), ('atari_pong', 'atari_pong')])
def test_task_key_maps_env_ids_to_score_file_tasks(name, key):
  assert scores.task_key(name) == key


def test_every_atari57_gym_name_maps_to_a_table_game():
  names = (
      'Alien Amidar Assault Asterix Asteroids Atlantis BankHeist BattleZone '
      'BeamRider Berzerk Bowling Boxing Breakout Centipede ChopperCommand '
      'CrazyClimber Defender DemonAttack DoubleDunk Enduro FishingDerby '
      'Freeway Frostbite Gopher Gravitar Hero IceHockey Jamesbond Kangaroo '
      'Krull KungFuMaster MontezumaRevenge MsPacman NameThisGame Phoenix '
      'Pitfall Pong PrivateEye Qbert Riverraid RoadRunner Robotank Seaquest '
      'Skiing Solaris SpaceInvaders StarGunner Surround Tennis TimePilot '
      'Tutankham UpNDown Venture VideoPinball WizardOfWor YarsRevenge Zaxxon')
  keys = {scores.task_key(f'atari:{name}') for name in names.split()}
  assert keys == set(scores.ATARI_GAMER)


def test_task_key_and_resolve_reject_bad_names():
  with pytest.raises(ValueError, match='suite:task'):
    scores.task_key(':Pong')
  with pytest.raises(ValueError, match="Unknown task 'atari:Pongg'.*"
                     "did you mean 'atari_pong'"):
    scores.resolve_tasks(['atari:Pongg'], ['atari_pong', 'atari_alien'])


def test_atari_table_has_57_games_and_atari100k_subset():
  assert len(scores.ATARI_GAMER) == 57
  assert len(scores.ATARI100K) == 26
  assert all(f'atari_{g}' in scores.ATARI_GAMER for g in scores.ATARI100K)
  assert all(high > low for low, high in scores.ATARI_GAMER.values())


@pytest.mark.skipif(not os.path.exists(BASELINES),
                    reason='no ../shared/reference/baselines.yaml')
def test_atari_table_agrees_with_official_baselines_yaml():
  assert scores.load_baselines(BASELINES) == scores.ATARI_GAMER


def test_load_baselines_without_pyyaml(tmp_path, monkeypatch):
  path = tmp_path / 'baselines.yaml'
  path.write_text('atari57_gamer:\n    atari_pong: [-20.7, 14.6]\n'
                  '    atari_skiing: [-17098.1, -4336.9]\n\n'
                  'dmlab30:\n    dmlab_x: [3.14, 194.5]\n')
  with_yaml = scores.load_baselines(path)
  monkeypatch.setitem(sys.modules, 'yaml', None)  # import yaml -> ImportError
  without = scores.load_baselines(path)
  assert without == with_yaml == {'atari_pong': (-20.7, 14.6),
                                  'atari_skiing': (-17098.1, -4336.9)}
  assert scores.load_baselines(path, 'dmlab30') == {'dmlab_x': (3.14, 194.5)}
  with pytest.raises(ValueError, match="No table 'procgen'"):
    scores.load_baselines(path, 'procgen')
  if os.path.exists(BASELINES):
    assert scores.load_baselines(BASELINES) == scores.ATARI_GAMER


def test_load_run_reads_task_seed_and_kind(tmp_path):
  path = write_run(tmp_path / 'atari100k_Pong-3', 'atari100k:Pong', [
      (300, -19.0), (100, -21.0), (200, -5.0, 'eval'), (400, -18.0)])
  with open(os.path.join(path, 'scores.jsonl'), 'a') as f:
    f.write('{"step": 500, "episode/sc')  # Killed mid-line.
  run = scores.load_run(path)
  assert (run.task, run.method, run.seed) == ('atari_pong', 'dreamer_tf', 3)
  np.testing.assert_array_equal(run.xs, [100, 300, 400])
  np.testing.assert_array_equal(run.ys, [-21, -19, -18])
  evals = scores.load_run(path, kind='eval')
  np.testing.assert_array_equal(evals.ys, [-5])
  assert scores.load_run(path, kind=None).xs.size == 4


def test_seed_from_config_then_sweep_json_then_name(tmp_path):
  assert scores.load_run(write_run(
      tmp_path / 'a-1', 'dmc:walker_walk', [], seed=7)).seed == 7
  path = write_run(tmp_path / 'b-1', 'dmc:walker_walk', [])
  with open(os.path.join(path, 'sweep.json'), 'w') as f:
    json.dump({'seed': 4}, f)
  assert scores.load_run(path).seed == 4
  path = write_run(tmp_path / 'c-1', 'dmc:walker_walk', [])
  with open(os.path.join(path, 'sweep.json'), 'w') as f:
    json.dump({'command': 'python -m launch.train --logdir=x --seed=5'}, f)
  assert scores.load_run(path).seed == 5
  assert scores.load_run(write_run(
      tmp_path / 'train_ratio=256' / 'seed2', 'dmc:walker_walk', [])).seed == 2
  assert scores.load_run(write_run(
      tmp_path / 'walker', 'dmc:walker_walk', [])).seed == 'walker'


def test_load_run_without_env_binding_is_the_default_env(tmp_path):
  # `python -m launch.train` with no flags binds no train.env.
  path = write_run(tmp_path / 'gym_CartPole-v1-0', 'x', [(100, 20.0)])
  with open(os.path.join(path, 'config.gin'), 'w') as f:
    f.write('train.num_envs = 4\n')
  run = scores.load_run(path)
  assert (run.task, run.seed) == ('gym_CartPole-v1', 0)
  np.testing.assert_array_equal(run.ys, [20.0])


def test_load_run_without_config_names_the_problem(tmp_path):
  (tmp_path / 'scores.jsonl').write_text('')
  with pytest.raises(FileNotFoundError, match='no config.gin'):
    scores.load_run(str(tmp_path))


def test_find_runs_globs_and_parent_directories(tmp_path):
  write_run(tmp_path / 'sweep' / 'pong-0', 'atari:Pong', [(1, 1)])
  write_run(tmp_path / 'sweep' / 'pong-1', 'atari:Pong', [(1, 1)])
  found = scores.find_runs([str(tmp_path / 'sweep')])
  assert [os.path.basename(p) for p in found] == ['pong-0', 'pong-1']
  assert scores.find_runs([str(tmp_path / 'sweep' / 'pong-*'),
                           str(tmp_path / 'sweep' / '*-1')]) == found
  with pytest.raises(FileNotFoundError, match='No run directories match'):
    scores.find_runs([str(tmp_path / 'nothing-*')])


def test_load_reference_drops_null_points(tmp_path):
  path = write_reference(tmp_path / 'ref.json.gz', [
      {'task': 'atari_pong', 'method': 'dreamerv3', 'seed': 0,
       'xs': [0, 10, 20], 'ys': [None, 1.5, 2.5]}])
  (run,) = scores.load_reference(path)
  assert (run.task, run.method, run.seed) == ('atari_pong', 'dreamerv3', 0)
  np.testing.assert_array_equal(run.xs, [10, 20])
  np.testing.assert_array_equal(run.ys, [1.5, 2.5])


@pytest.mark.parametrize('name', ['kept.json', 'kept.json.gz'])
def test_saved_reference_loads_back_unchanged(tmp_path, name):
  runs = [scores.Run('deepsea_10', 'latent_fixed', 1,
                     np.array([11.0, 22.0, 33.0]),
                     np.array([-0.003, 0.99, 1 / 3])),
          scores.Run('deepsea_10', 'baseline', 0, np.array([11.0]),
                     np.array([0.0]))]
  path = str(tmp_path / 'sub' / name)
  assert scores.save_reference(path, runs) == path
  loaded = scores.load_reference(path)
  for want, got in zip(runs, loaded, strict=True):
    assert (got.task, got.method, got.seed) == (want.task, want.method,
                                                 want.seed)
    np.testing.assert_array_equal(got.xs, want.xs)
    np.testing.assert_array_equal(got.ys, want.ys)  # Bit for bit.
  first = open(path, 'rb').read()
  scores.save_reference(path, runs)  # The same runs, the same bytes.
  assert open(path, 'rb').read() == first
  assert os.listdir(tmp_path / 'sub') == [name]  # No temporary left.


def test_collect_selects_tasks_and_renames_clashing_methods(tmp_path):
  write_run(tmp_path / 'pong-0', 'atari100k:Pong', [(10, 1)])
  record = {'method': 'dreamerv3', 'seed': 0, 'xs': [10], 'ys': [1]}
  first = write_reference(tmp_path / 'one-dreamerv3.json.gz', [
      dict(record, task='atari_pong'), dict(record, task='atari_alien')])
  second = write_reference(tmp_path / 'two-dreamerv3.json.gz', [
      dict(record, task='atari_pong')])
  keys, table = scores.collect([str(tmp_path / 'pong-*')], [first, second])
  assert keys == ['atari_pong']
  assert list(table['atari_pong']) == [
      'dreamer_tf', 'one-dreamerv3', 'two-dreamerv3']
  keys, table = scores.collect([], [first], ['atari:Alien'])
  assert keys == ['atari_alien'] and list(table['atari_alien']) == [
      'dreamerv3']
  _, table = scores.collect([str(tmp_path / 'pong-*'), str(tmp_path / 'p*')],
                            [], label=['a', 'b'])
  assert {m: len(r) for m, r in table['atari_pong'].items()} == {'a': 1}
  with pytest.raises(ValueError, match='2 labels for 1 run patterns'):
    scores.collect([str(tmp_path / 'pong-*')], [], label=['a', 'b'])
  with pytest.raises(ValueError, match="Unknown task 'dmc:walker_walk'"):
    scores.collect([str(tmp_path / 'pong-*')], [], ['dmc:walker_walk'])
  with pytest.raises(ValueError, match='Nothing to read'):
    scores.collect([], [])


def test_collect_can_leave_out_unfinished_runs(tmp_path):
  for name in ('pong-0', 'pong-1'):
    write_run(tmp_path / name, 'atari100k:Pong', [(10, 1)],
              seed=int(name[-1]))
  (tmp_path / 'pong-1' / DONE_FILE).write_text('{}')
  pattern = [str(tmp_path / 'pong-*')]
  _, table = scores.collect(pattern)
  assert len(table['atari_pong']['dreamer_tf']) == 2
  with pytest.warns(UserWarning, match=r'Left out 1 unfinished run.*pong-0'):
    _, table = scores.collect(pattern, finished_only=True)
  assert [r.seed for r in table['atari_pong']['dreamer_tf']] == [1]
  (tmp_path / 'pong-1' / DONE_FILE).unlink()
  with pytest.raises(ValueError, match='None of the 2 runs matched is '
                     r'finished.*drop --finished_only'):
    scores.collect(pattern, finished_only=True)


def test_bin_curve_means_per_bin():
  edges = scores.frame_grid(30, 3)
  np.testing.assert_array_equal(edges, [0, 10, 20, 30])
  binned = scores.bin_curve([0, 5, 10, 15, 19, 30, 40], [1, 2, 3, 4, 8, 9, 99],
                            edges)
  np.testing.assert_array_equal(binned, [1.5, 5.0, 9.0])
  assert np.isnan(scores.bin_curve([5], [1], edges)[1:]).all()
  with pytest.raises(ValueError):
    scores.frame_grid(0, 3)


def test_bin_curve_last_takes_each_bins_latest_point():
  edges = scores.frame_grid(30, 3)
  # Unsorted xs; two points at x = 15 (the later one in order wins); the
  # run ends in the second bin.
  binned = scores.bin_curve([5, 15, 0, 15, 12], [2, 7, 1, 8, 3],
                            edges, reduce='last')
  np.testing.assert_array_equal(binned[:2], [2.0, 8.0])
  assert np.isnan(binned[2])
  assert np.isnan(scores.bin_curve([], [], edges, reduce='last')).all()
  # A bin without a point of its own carries the value while the run goes
  # on: the third bin is empty, but the run has a point past the grid.
  np.testing.assert_array_equal(
      scores.bin_curve([5, 15, 40], [2, 8, 99], edges, reduce='last'),
      [2.0, 8.0, 8.0])
  # So does a middle bin; a point before the grid counts at its start,
  # and bins before the run's first point are NaN.
  np.testing.assert_array_equal(
      scores.bin_curve([-5, 25], [4, 6], edges, reduce='last'),
      [4.0, 4.0, 6.0])
  late = scores.bin_curve([12, 30], [1, 2], edges, reduce='last')
  assert np.isnan(late[0])
  np.testing.assert_array_equal(late[1:], [1.0, 2.0])
  # A running maximum binned by its last value stays a value it took.
  xs = np.arange(30.0)
  running = np.maximum.accumulate(np.arange(30) % 7)
  np.testing.assert_array_equal(
      scores.bin_curve(xs, running, edges, reduce='last'),
      running[[9, 19, 29]])
  with pytest.raises(ValueError, match=r"reduce is one of \('mean', "
                     r"'last'\), got 'max'"):
    scores.bin_curve(xs, running, edges, reduce='max')


def test_bootstrap_band_mean_over_seeds_ignores_missing_bins():
  curves = np.array([[1.0, np.nan, 4.0], [3.0, np.nan, 4.0],
                     [5.0, 6.0, 4.0]])
  mean, low, high = scores.bootstrap_band(curves, reps=500, seed=1)
  np.testing.assert_allclose(mean, [3.0, 6.0, 4.0])
  assert 1.0 <= low[0] < 3.0 < high[0] <= 5.0
  assert low[1] == high[1] == 6.0 and low[2] == high[2] == 4.0
  again = scores.bootstrap_band(curves, reps=500, seed=1)
  np.testing.assert_array_equal(again[1], low)


def test_budget_score_window_is_closed_and_skips_seeds_without_episodes():
  runs = [make_run([380e3, 390e3, 398e3], [0, 10, 20]),
          make_run([395e3, 400e3, 401e3], [30, 50, 1000]),
          make_run([100e3], [7])]
  mean, values = scores.budget_score(runs, 390e3, 400e3)
  np.testing.assert_array_equal(values, [15, 40])
  assert mean == 27.5
  assert np.isnan(scores.window_mean(runs[2], 390e3, 400e3))


def test_budget_score_empty_window_fails_clearly():
  runs = [make_run([100e3, 200e3], [1, 2])]
  with pytest.raises(scores.EmptyWindowError,
                     match=r'm/atari_pong.*\[390000, 400000\].*100000-200000'):
    scores.budget_score(runs, 390e3, 400e3)
  with pytest.raises(ValueError, match='lo > hi'):
    scores.budget_score(runs, 2, 1)


def test_normalise_with_random_and_human_scores():
  np.testing.assert_allclose(
      scores.normalise([-20.7, 14.6, -3.05], 'atari_pong'), [0, 1, 0.5])
  assert scores.normalise(5.0, 'x', {'x': (0.0, 10.0)}) == 0.5
  with pytest.raises(ValueError, match="No baseline scores for task "
                     "'atari_pongg'.*did you mean 'atari_pong'"):
    scores.normalise(1.0, 'atari_pongg')


def test_iqm_is_the_25_percent_trimmed_mean():
  assert scores.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # mean of 3..6
  assert scores.iqm([1, 2, 3, 4, 100]) == 3.0  # cut one each side
  assert scores.iqm([1, 2, 3]) == 2.0  # n < 4: plain mean


def test_aggregate_point_estimates_and_stratified_intervals():
  per_task = {'a': [1.0, 1.0], 'b': [2.0, 2.0, 2.0], 'c': [6.0]}
  result = scores.aggregate(per_task, reps=200)
  assert result['tasks'] == 3
  assert result['mean'] == (3.0, 3.0, 3.0)  # No spread within tasks.
  assert result['median'] == (2.0, 2.0, 2.0)
  assert result['iqm'] == (1.75, 1.75, 1.75)  # [1 1 2 2 2 6] -> (1 2 2 2)
  rng = np.random.default_rng(0)
  noisy = {t: rng.normal(i, 1.0, 5) for i, t in enumerate('abcdef')}
  first = scores.aggregate(noisy, seed=3)
  assert first == scores.aggregate(noisy, seed=3)
  for name in ('mean', 'median', 'iqm'):
    value, low, high = first[name]
    assert low < value < high
  with pytest.raises(ValueError, match='No task scores'):
    scores.aggregate({'a': [np.nan]})


def test_bootstrap_ci_of_a_mean():
  assert scores.bootstrap_ci([2.0, 2.0]) == (2.0, 2.0, 2.0)
  value, low, high = scores.bootstrap_ci([0.0, 10.0], reps=1000)
  assert value == 5.0 and low == 0.0 and high == 10.0


def test_find_runs_descends_a_sweep_root_but_not_into_runs(tmp_path):
  write_run(tmp_path / 'sw' / 'dmc_walker_walk' / 'baseline' / 'seed0',
            'dmc:walker_walk', [(1, 1)])
  # A run's own subdirectories are not searched (replay/, ckpt/, eval/).
  write_run(tmp_path / 'sw' / 'dmc_walker_walk' / 'baseline' / 'seed0' /
            'eval', 'dmc:walker_walk', [(1, 1)])
  write_run(tmp_path / 'sw' / 'dmc_walker_walk' / 'prioritized' / 'seed1',
            'dmc:walker_walk', [(1, 1)])
  found = scores.find_runs([str(tmp_path / 'sw')])
  assert [os.path.relpath(p, tmp_path / 'sw') for p in found] == [
      'dmc_walker_walk/baseline/seed0', 'dmc_walker_walk/prioritized/seed1']


def test_collect_names_experiment_runs_by_experiment(tmp_path):
  runs = fakes.plan(tmp_path / 'sw', fakes.write_experiments(tmp_path / 'xp'),
                    seeds=[0, 1])
  for run in runs:
    fakes.write_run(run, [(10, 1.0)])
  write_run(tmp_path / 'plain' / 'walker-0', 'dmc:walker_walk', [(10, 2.0)])
  patterns = [str(tmp_path / 'sw'), str(tmp_path / 'plain')]
  _, table = scores.collect(patterns)
  assert {m: len(r) for m, r in table['dmc_walker_walk'].items()} == {
      'baseline': 2, 'prioritized': 2, 'dreamer_tf': 1}
  # Labels name every run when the caller asks (the launchers' --label).
  _, table = scores.collect(patterns, label=['sweep', 'plain'],
                            by_experiment=False)
  assert {m: len(r) for m, r in table['dmc_walker_walk'].items()} == {
      'sweep': 4, 'plain': 1}
  assert list(scores.select_methods(table, ['plain'])['dmc_walker_walk']) == [
      'plain']
  with pytest.raises(ValueError, match=r"Unknown method 'swep' \(did you "
                     r"mean 'sweep'\?\); the runs have: \['sweep', 'plain'\]"):
    scores.select_methods(table, ['swep'])


def test_final_and_best_scores_are_means_of_consecutive_episodes():
  run = make_run([1, 2, 3, 4, 5], [1.0, 9.0, 5.0, 3.0, 2.0])
  np.testing.assert_allclose(scores.episode_means(run, 2),
                             [5.0, 7.0, 4.0, 2.5])
  assert scores.final_score(run, 2) == 2.5
  assert scores.best_score(run, 2) == 7.0
  assert scores.final_score(run, 3) == pytest.approx(10 / 3)
  assert scores.best_score(run, 3) == pytest.approx(17 / 3)  # 9, 5, 3
  assert scores.final_score(run, 10) == scores.best_score(run, 10) == 4.0
  empty = make_run([], [])
  assert np.isnan(scores.final_score(empty, 2))
  assert np.isnan(scores.best_score(empty, 2))
  with pytest.raises(ValueError, match='at least one episode'):
    scores.episode_means(run, 0)


def test_relative_to_a_baseline_divides_by_its_final_score():
  table = {'t': {'base': [make_run([1, 2], [1.0, 3.0]),  # Final (K=1): 3.
                          make_run([1, 2], [0.0, 5.0])],  # 5.
                 'new': [make_run([1, 2], [2.0, 8.0])]}}
  result = scores.relative_to(table, 'base', 1)
  np.testing.assert_allclose(result['t']['new'][0].ys, [0.5, 2.0])
  np.testing.assert_allclose(result['t']['base'][1].ys, [0.0, 1.25])
  np.testing.assert_array_equal(table['t']['new'][0].ys, [2.0, 8.0])  # Kept.
  for ys, shown in (([0.0, 0.0], '0'), ([-1.0, -2.0], '-2'),
                    ([0.0, 1e-9], '1e-09')):  # ~0 next to the 8 of 'new'.
    bad = {'t': {'base': [make_run([1, 2], ys)],
                 'new': [make_run([1, 2], [2.0, 8.0])]}}
    with pytest.raises(ValueError, match=rf"'base': its final score .* is "
                       rf"{shown}, not clearly positive"):
      scores.relative_to(bad, 'base', 1)
  with pytest.raises(ValueError, match=r"Cannot normalise 't' by 'bas' \(did "
                     r"you mean 'base'\?\): that task has runs of"):
    scores.relative_to(table, 'bas', 1)


def test_difference_from_a_baseline_works_where_a_ratio_cannot():
  # MountainCar-like: the baseline's final score is negative.
  table = {'t': {'base': [make_run([1, 2], [-200.0, -180.0]),  # Final: -180.
                          make_run([1, 2], [-200.0, -160.0])],  # -160.
                 'new': [make_run([1, 2], [-150.0, -110.0])]}}
  with pytest.raises(ValueError, match=r'not clearly positive.*'
                     r'--normalize_by=difference'):
    scores.relative_to(table, 'base', 1)
  result = scores.relative_to(table, 'base', 1, mode='difference')
  np.testing.assert_allclose(result['t']['new'][0].ys, [20.0, 60.0])
  np.testing.assert_allclose(result['t']['base'][0].ys, [-30.0, -10.0])
  np.testing.assert_array_equal(table['t']['new'][0].ys, [-150.0, -110.0])
  no_episodes = {'t': {'base': [make_run([], [])],
                       'new': [make_run([1], [1.0])]}}
  with warnings.catch_warnings():
    warnings.simplefilter('error', RuntimeWarning)  # No empty-mean warning.
    with pytest.raises(ValueError, match='no final score'):
      scores.relative_to(no_episodes, 'base', 1, mode='difference')
  # b is the mean over the baseline's seeds that have episodes.
  one_empty = {'t': {'base': [make_run([1, 2], [4.0, 6.0]), make_run([], [])],
                     'new': [make_run([1], [9.0])]}}
  result = scores.relative_to(one_empty, 'base', 1, mode='difference')
  np.testing.assert_allclose(result['t']['new'][0].ys, [3.0])
  with pytest.raises(ValueError, match=r"Unknown normalisation 'diff'; use "
                     r"one of \['ratio', 'difference'\]"):
    scores.relative_to(table, 'base', 1, mode='diff')


def test_last_frame_of_a_task():
  methods = {'a': [make_run([1, 5], [0.0, 0.0]), make_run([], [])],
             'b': [make_run([2, 3, 9], [0.0, 0.0, 0.0])]}
  assert scores.last_frame(methods) == 9.0
  assert scores.last_frame({'a': [make_run([], [])]}) == 0.0
