"""dreamer_tf.analysis.results: one row per run of a sweep, checked cell by
cell against numbers computed by hand, and its failure paths."""
import csv
import io
import math
import os

import pytest

from dreamer_tf.analysis import metrics as metrics_lib
from dreamer_tf.analysis import results
from dreamer_tf.sweep import status as sweep_status
from dreamer_tf.sweep import plan as sweep_plan
from tests.analysis import fakes

TASK = 'dmc:walker_walk'
METRICS = ['loss/policy', 'loss/model', 'explore/intrinsic_weight']


@pytest.fixture(name='sweep')
def sweep_fixture(tmp_path):
  """An experiment sweep (baseline, prioritized x seeds 0, 1) in
  tmp_path/xp1; returns (root, runs by name).

  baseline/seed0: done at 1000 frames after 1 h; train scores 1, 9, 5, 3
    (K = 2: window means 5, 7, 4 -> final 4, best 7), an eval episode.
  baseline/seed1: partial after 30 min, one episode (2); its loss/model
    is NaN (no value).
  prioritized/seed0: done after 2 h, scores 10, 20 (final = best = 15);
    logs the intrinsic reward weight.
  prioritized/seed1: started from a --mode=print line (no sweep.json), no
    episodes or metrics yet, last write after 10 min.
  """
  directory = fakes.write_experiments(tmp_path / 'xp')
  root = tmp_path / 'xp1'
  runs = {r.name: r for r in fakes.plan(root, directory)}
  base, prio = 'dmc_walker_walk/baseline', 'dmc_walker_walk/prioritized'
  fakes.write_run(
      runs[f'{base}/seed0'],
      [(100, 1.0), (200, 9.0), (300, 5.0), (350, 99.0, 'eval'), (400, 3.0)],
      [{'step': 500, 'train/loss/policy': 0.5, 'train/loss/model': 100.0},
       {'step': 1000, 'train/loss/policy': 0.25, 'train/loss/model': 10.0}],
      last_write='2026-01-01T01:00:00Z', done_frames=1000)
  fakes.write_run(
      runs[f'{base}/seed1'], [(100, 2.0)],
      [{'step': 600, 'train/loss/policy': 1.0,
        'train/loss/model': float('nan')}],
      last_write='2026-01-01T00:30:00Z')
  fakes.write_run(
      runs[f'{prio}/seed0'], [(500, 10.0), (1000, 20.0)],
      [{'step': 1000, 'train/loss/policy': 0.1, 'train/loss/model': 1.0,
        'explore/intrinsic_weight': 0.3}],
      created='2026-01-02T00:00:00Z', last_write='2026-01-02T02:00:00Z',
      done_frames=1000, ratio=256)
  fakes.write_run(runs[f'{prio}/seed1'], [], [],
                  created='2026-01-02T00:00:00Z',
                  last_write='2026-01-02T00:10:00Z', ratio=256,
                  sweep_json=False)
  return str(root), runs


# The CSV cells of the fixture's runs, by hand: experiment, seed, status,
# start, end (UTC 2026-01-0...), duration, frames, episodes, final and best
# score, the three METRICS, gin train_ratio.
EXPECTED = [
    ('baseline', '0', 'done', '1T00:00:00Z', '1T01:00:00Z', '3600.0', '1000',
     '4', '4.0', '7.0', '0.25', '10.0', '', '512'),
    ('baseline', '1', 'partial', '1T00:00:00Z', '1T00:30:00Z', '1800.0',
     '600', '1', '2.0', '2.0', '1.0', '', '', '512'),
    ('prioritized', '0', 'done', '2T00:00:00Z', '2T02:00:00Z', '7200.0',
     '1000', '2', '15.0', '15.0', '0.1', '1.0', '0.3', '256'),
    ('prioritized', '1', 'partial', '2T00:00:00Z', '2T00:10:00Z', '600.0',
     '0', '0', '', '', '', '', '', '256'),
]
DESCRIPTIONS = {'baseline': 'Baseline: DreamerV3 as it is, uniform replay.',
                'prioritized': 'Prioritized replay.'}


def expected_rows(root):
  """EXPECTED as CSV rows (dicts)."""
  rows = []
  for (experiment, seed, status, start, end, duration, frames, episodes,
       final, best, *values, ratio) in EXPECTED:
    row = dict(experiment=experiment, description=DESCRIPTIONS[experiment],
               method=experiment, task=TASK, seed=seed, logdir=os.path.join(
                   root, 'dmc_walker_walk', experiment, f'seed{seed}'),
               status=status, start='2026-01-0' + start,
               end='2026-01-0' + end, duration=duration, frames=frames,
               episodes=episodes, final_score=final, best_score=best)
    row.update(zip(METRICS, values))
    row.update({'gin:train.env': "'dmc:walker_walk'",
                'gin:train.env_kwargs': "{'repeat': 2, 'size': (64, 64)}",
                'gin:train.train_ratio': ratio})
    rows.append(row)
  return rows


def test_rows_of_an_experiment_sweep_exactly(sweep):
  root, _ = sweep
  rows = results.read_results(root, METRICS, count=2,
                              experiments_dir=os.path.dirname(root) + '/xp')
  text = results.to_csv(rows)
  parsed = list(csv.DictReader(io.StringIO(text)))
  assert list(parsed[0]) == results.COLUMNS + METRICS + [
      'gin:train.env', 'gin:train.env_kwargs', 'gin:train.train_ratio']
  expected = expected_rows(root)
  assert len(parsed) == len(expected)
  for got, want in zip(parsed, expected):
    assert got == want, want['logdir']


def test_default_window_and_eval_episodes(sweep):
  root, _ = sweep
  rows = results.read_results(root)  # K = 10: all episodes.
  assert [r['final_score'] for r in rows[:3]] == [4.5, 2.0, 15.0]
  assert math.isnan(rows[3]['final_score'])
  evals = results.read_results(root, kind='eval')
  assert (evals[0]['episodes'], evals[0]['final_score']) == (1, 99.0)
  assert 'loss/policy' not in rows[0]  # Only the metrics asked for.


def test_runs_without_an_experiment_keep_the_label(tmp_path):
  # A grid sweep's run: no experiment in sweep.json or in its path.
  run, = sweep_plan.expand([TASK], [0], {'train.train_ratio': ['256']}, [],
                           [], str(tmp_path / 'plain'))
  fakes.write_run(run, [(10, 1.0)])
  row, = results.read_results(str(tmp_path / 'plain'), label='mine')
  assert (row['experiment'], row['description'], row['method']) == (
      '', '', 'mine')


def test_a_run_that_failed_before_it_started(tmp_path):
  run, = fakes.plan(tmp_path / 'sw', fakes.write_experiments(tmp_path / 'xp'),
                    names=['prioritized'], seeds=[3])
  os.makedirs(run.logdir)
  sweep_status.write_record(
      run, state='exited', exit_code=3, interrupted=False)
  row, = results.read_results(str(tmp_path / 'sw'))
  assert (row['task'], row['seed'], row['status'], row['experiment']) == (
      TASK, 3, 'failed', 'prioritized')
  assert (row['start'], row['frames'], row['episodes']) == ('', 0, 0)
  assert math.isnan(row['duration']) and math.isnan(row['final_score'])


def test_gin_bindings_of_config_str_text():
  assert results.gin_bindings(fakes.CONFIG.replace('{ratio}', '64')) == {
      'train.env': "'dmc:walker_walk'",
      'train.env_kwargs': "{'repeat': 2, 'size': (64, 64)}",
      'train.train_ratio': '64'}
  assert results.gin_bindings(
      "import foo\n# Macros:\nSIZE = 3\n\nscope/RSSM.deter = 64\n") == {
          'SIZE': '3', 'scope/RSSM.deter': '64'}


def test_failure_paths_are_clear(sweep, tmp_path):
  root, _ = sweep
  with pytest.raises(FileNotFoundError, match='No sweep root'):
    results.read_results(str(tmp_path / 'missing'))
  os.makedirs(tmp_path / 'empty' / 'sub')
  with pytest.raises(FileNotFoundError,
                     match="No runs under .*empty.*run.json"):
    results.read_results(str(tmp_path / 'empty'))
  with pytest.raises(metrics_lib.MissingMetricError,
                     match=r"No run logs the metric 'loss/polcy' \(did you "
                     r"mean 'train/loss/policy'.*runs log 3 metrics: "
                     r"explore/intrinsic_weight, train/loss/model"):
    results.read_results(root, ['loss/polcy'])
  with pytest.raises(ValueError, match='repeats'):
    results.read_results(root, ['loss/model', 'loss/model'])


def test_csv_writes_nan_and_missing_cells_empty():
  text = results.to_csv([dict(experiment='a', final_score=float('nan'))],
                        ['experiment', 'final_score', 'x'])
  assert text == 'experiment,final_score,x\na,,\n'


def test_the_operative_config_is_preferred_over_the_bindings(tmp_path):
  """operative_config.gin (defaults included) when the run wrote one, else
  config.gin (older runs)."""
  (tmp_path / 'config.gin').write_text("train.env = 'gym:CartPole-v1'\n")
  assert results.read_config(str(tmp_path)) == {
      'train.env': "'gym:CartPole-v1'"}
  (tmp_path / 'operative_config.gin').write_text(
      "# Parameters for Agent:\nAgent.horizon = 333\n"
      "train.env = 'gym:CartPole-v1'\n")
  assert results.read_config(str(tmp_path)) == {
      'Agent.horizon': '333', 'train.env': "'gym:CartPole-v1'"}
