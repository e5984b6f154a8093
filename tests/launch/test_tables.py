"""launch/tables.py: scores at a budget, human-normalised aggregates,
Markdown/CSV output, failure paths and the Atari100k reference numbers."""
import csv
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from dreamer_tf.analysis import scores
from launch import tables
from tests.analysis import fakes
from tests.conftest import ROOT
from tests.analysis.test_scores import REFERENCE
from tests.analysis.test_scores import write_reference
from tests.analysis.test_scores import write_run

ATARI100K = os.path.join(REFERENCE, 'scores', 'atari100k-dreamerv3.json.gz')


@pytest.fixture(name='synthetic')
def synthetic_fixture(tmp_path):
  """Our runs (Pong x2, Breakout, walker) and a reference file.

  Window [90, 100] frames. Human-normalised Pong: seed 0 scores -3.05
  (0.5), seed 1 14.6 (1.0); Breakout seed 0 30.5 (1.0); walker raw 500
  and 700. Reference: Pong 14.6 (1.0), Breakout 1.7 (0.0).
  """
  write_run(tmp_path / 'runs' / 'pong-0', 'atari100k:Pong',
            [(50, 1000.0), (90, -3.05), (95, -3.05), (100, -3.05, 'eval')])
  write_run(tmp_path / 'runs' / 'pong-1', 'atari100k:Pong',
            [(99, 14.6), (101, -21.0)])
  write_run(tmp_path / 'runs' / 'breakout-0', 'atari100k:Breakout',
            [(100, 30.5)])
  write_run(tmp_path / 'runs' / 'walker-0', 'dmc:walker_walk',
            [(92, 400.0), (98, 600.0)])
  write_run(tmp_path / 'runs' / 'walker-1', 'dmc:walker_walk', [(96, 700.0)])
  reference = write_reference(tmp_path / 'atari100k-ref.json.gz', [
      {'task': 'atari_pong', 'method': 'ref', 'seed': 0, 'xs': [95, 200],
       'ys': [14.6, None]},
      {'task': 'atari_breakout', 'method': 'ref', 'seed': 0, 'xs': [91],
       'ys': [1.7]},
      {'task': 'atari_alien', 'method': 'ref', 'seed': 0, 'xs': [91],
       'ys': [227.8]}])
  return str(tmp_path / 'runs' / '*'), reference


def rows_by_key(rows):
  return {(r['section'], r['name'], r['method']): r for r in rows}


def test_build_scores_normalised_and_aggregates(synthetic):
  runs, reference = synthetic
  keys, table = scores.collect([runs], [reference])
  assert keys == ['atari_breakout', 'atari_pong', 'dmc_walker_walk']
  rows = rows_by_key(tables.build(table, 90, 100, reps=200))
  pong = rows['task', 'atari_pong', 'dreamer_tf']
  assert pong['value'] == pytest.approx(5.775)
  assert pong['count'] == 2 and pong['normalised'] == pytest.approx(0.75)
  assert pong['ci_low'] == pytest.approx(-3.05)
  assert pong['ci_high'] == pytest.approx(14.6)
  assert rows['task', 'atari_breakout', 'dreamer_tf']['normalised'] == 1.0
  assert rows['task', 'atari_pong', 'ref']['value'] == 14.6
  walker = rows['task', 'dmc_walker_walk', 'dreamer_tf']
  assert (walker['value'], walker['count']) == (600.0, 2)
  assert np.isnan(walker['normalised'])
  assert ('task', 'atari_alien', 'ref') not in rows  # Not one of our tasks.
  expected = {
      ('atari/human_norm_mean', 'dreamer_tf'): 0.875,
      ('atari/human_norm_median', 'dreamer_tf'): 0.875,
      ('atari/human_norm_iqm', 'dreamer_tf'): 2.5 / 3,  # [.5, 1, 1]
      ('atari/human_norm_mean', 'ref'): 0.5,
      ('atari/human_norm_median', 'ref'): 0.5,
      ('atari/human_norm_iqm', 'ref'): 0.5,
      ('dmc/raw_mean', 'dreamer_tf'): 600.0,
      ('dmc/raw_iqm', 'dreamer_tf'): 600.0,
  }
  for (name, method), value in expected.items():
    row = rows['aggregate', name, method]
    assert row['value'] == pytest.approx(value), name
    assert row['ci_low'] <= row['value'] <= row['ci_high']
  assert rows['aggregate', 'atari/human_norm_mean', 'dreamer_tf'][
      'count'] == 2
  ref_mean = rows['aggregate', 'atari/human_norm_mean', 'ref']
  assert ref_mean['ci_low'] == ref_mean['ci_high'] == 0.5


def test_markdown_and_csv(synthetic):
  runs, reference = synthetic
  _, table = scores.collect([runs], [reference],
                            ['atari:Pong', 'atari_alien', 'atari_breakout'])
  rows = tables.build(table, 95, 100, reps=200)  # Ref. Breakout is at 91.
  text = tables.markdown(rows, 95, 100)
  assert '| Task | dreamer_tf | ref | dreamer_tf (norm.) | ref (norm.) |' in (
      text)
  # Std over seeds with n - 1: |14.6 + 3.05| / sqrt(2) = 12.48; one seed
  # has none.
  assert '| atari_pong | 5.8 ± 12.5 [-3.0, 14.6] (2) | 14.6 [14.6, 14.6] ' \
         '(1) | 75.0% | 100.0% |' in text
  assert '| atari_alien | n/a | n/a | — | — |' in text  # Ref. at 91 too.
  assert '| atari_breakout | 30.5 [30.5, 30.5] (1) | n/a | 100.0% | — |' in (
      text)
  # Aggregates use the tasks both methods have (Pong only), not ours'
  # Pong + Breakout next to the reference's Pong.
  assert re.search(r'\| atari/human_norm_median \| 75\.0% \[[0-9.]+, '
                   r'[0-9.]+\] \(1\) \| 100\.0%', text), text
  with pytest.raises(ValueError, match="No random/human scores for 'atari_pong'"):
    tables.build(table, 95, 100, baselines={'atari_breakout': (0.0, 1.0)},
                 reps=10)
  parsed = list(csv.DictReader(io.StringIO(tables.to_csv(rows))))
  assert list(parsed[0]) == tables.COLUMNS
  breakout = [r for r in parsed if r['name'] == 'atari_breakout']
  assert [(r['method'], r['value'], r['count'], r['normalised'])
          for r in breakout] == [('dreamer_tf', '30.5', '1', '1.0'),
                                 ('ref', '', '0', '')]


def test_a_score_that_would_print_as_zero_gets_significant_digits():
  deepsea = dict(value=-0.00065, std=0.0001, ci_low=-0.0007,
                 ci_high=-0.0006, count=3)
  assert tables._cell(deepsea) == '-0.00065 ± 0.0001 [-0.0007, -0.0006] (3)'
  assert tables._cell(dict(deepsea, value=0.0004, std=np.nan, ci_low=0.0003,
                           ci_high=0.0005), percent=True) == (
                               '0.04% [0.03, 0.05] (3)')
  zero = dict(deepsea, value=0.0, std=np.nan, ci_low=0.0, ci_high=0.0)
  assert tables._cell(zero) == '0.0 [0.0, 0.0] (3)'
  usual = dict(deepsea, value=3.0, std=1.414, ci_low=2.0, ci_high=4.0)
  assert tables._cell(usual) == '3.0 ± 1.4 [2.0, 4.0] (3)'


def test_empty_window_fails_clearly(synthetic):
  runs, _ = synthetic
  _, table = scores.collect([runs])
  with pytest.raises(scores.EmptyWindowError, match=r'\[1000, 2000\]'):
    tables.build(table, 1000, 2000, reps=10)
  with pytest.raises(ValueError, match='lo 2 > hi 1'):
    tables.parse_window(['2', '1'])
  with pytest.raises(ValueError, match='lo,hi'):
    tables.parse_window(['1'])


def _launch(*args):
  return subprocess.run(
      [sys.executable, '-m', 'launch.tables', *args], capture_output=True,
      text=True, cwd=ROOT, timeout=120, check=False)


def test_cli_writes_markdown_and_csv_and_fails_clearly(synthetic, tmp_path):
  runs, reference = synthetic
  out = str(tmp_path / 'out' / 'table')
  proc = _launch(f'--runs={runs}', f'--reference={reference}',
                 '--window=90,100', f'--out={out}', '--reps=100',
                 '--tasks=atari100k:Pong')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '| atari_pong | 5.8 ± 12.5 [' in proc.stdout
  with open(out + '.md') as f:
    assert f.read() == proc.stdout.rstrip('\n') + '\n'
  with open(out + '.csv') as f:
    assert f.readline().strip() == ','.join(tables.COLUMNS)
  proc = _launch(f'--runs={tmp_path}/missing-*', '--window=90,100')
  assert proc.returncode != 0
  assert 'No run directories match' in proc.stderr
  proc = _launch(f'--runs={runs}', '--window=90,100', '--tasks=atari:Pongg')
  assert proc.returncode != 0
  assert "Unknown task 'atari:Pongg'" in proc.stderr


@pytest.mark.skipif(not os.path.exists(ATARI100K),
                    reason='no ../shared/reference/scores/'
                    'atari100k-dreamerv3.json.gz')
def test_reproduces_atari100k_human_normalised_mean_and_median():
  """Spec §6.2 column (A): per seed the mean of the episodes in [390k,
  400k] frames, then the mean over the seeds having one; gamer-normalised
  mean 124.7%, median 49.4% over the 26 games."""
  _, table = scores.collect([], [ATARI100K])
  assert len(table) == 26
  rows = rows_by_key(tables.build(table, 390e3, 400e3, reps=2000))
  for task, value, count in [('atari_alien', 1117.7, 5),
                             ('atari_crazy_climber', 86225.0, 4),
                             ('atari_pong', -4.0, 4),
                             ('atari_up_n_down', 46910.0, 1)]:
    row = rows['task', task, 'dreamerv3']
    assert (round(row['value'], 1), row['count']) == (value, count), task
  mean = rows['aggregate', 'atari/human_norm_mean', 'dreamerv3']
  median = rows['aggregate', 'atari/human_norm_median', 'dreamerv3']
  iqm = rows['aggregate', 'atari/human_norm_iqm', 'dreamerv3']
  assert mean['count'] == 26
  assert 100 * mean['value'] == pytest.approx(124.7, abs=0.05)
  assert 100 * median['value'] == pytest.approx(49.4, abs=0.05)
  assert 100 * iqm['value'] == pytest.approx(46.3, abs=0.05)
  assert mean['ci_low'] < mean['value'] < mean['ci_high']
  assert iqm['ci_low'] < iqm['value'] < iqm['ci_high']


@pytest.fixture(name='experiments')
def experiments_fixture(tmp_path):
  """An experiment sweep in tmp_path/xp1 (tests/analysis/fakes.py).

  In the window [90, 100]: baseline seeds score 2 and 4, prioritized seed
  0 scores 10 (seed 1 has no episode there). Mean loss/model logged in
  the window: baseline 2 (3 and 1; 9 before it, 40 after it) and 3,
  prioritized 8 and 16; only prioritized seed 0 logs the intrinsic weight
  there (0.5; seed 1 logs 0.9 before the window).
  """
  runs = fakes.plan(tmp_path / 'xp1', fakes.write_experiments(tmp_path / 'xp'))
  data = [([(95, 2.0)], [{'step': 50, 'train/loss/model': 9.0},
                         {'step': 90, 'train/loss/model': 3.0},
                         {'step': 100, 'train/loss/model': 1.0},
                         {'step': 120, 'train/loss/model': 40.0}]),
          ([(90, 3.0), (100, 5.0)], [{'step': 100, 'train/loss/model': 3.0}]),
          ([(99, 10.0)], [{'step': 100, 'train/loss/model': 8.0,
                           'expl/intrinsic_weight': 0.5}]),
          ([(50, 7.0)], [{'step': 80, 'expl/intrinsic_weight': 0.9},
                         {'step': 100, 'train/loss/model': 16.0}])]
  for run, (episodes, metrics) in zip(runs, data):
    fakes.write_run(run, episodes, metrics)
  return str(tmp_path / 'xp1')


def test_tables_by_experiment_with_metrics(experiments):
  _, table = scores.collect([experiments])
  rows = tables.build(table, 90, 100, reps=200)
  rows += tables.metric_rows(table, ['loss/model', 'expl/intrinsic_weight'],
                             90, 100, reps=200)
  index = {(r['section'], r['name'], r['method'], r['metric']): r
           for r in rows}
  base = index['task', 'dmc_walker_walk', 'baseline', '']
  assert (base['value'], base['count']) == (3.0, 2)
  assert base['std'] == pytest.approx(2 ** 0.5)  # (2, 4) with n - 1.
  assert (base['ci_low'], base['ci_high']) == (2.0, 4.0)
  prio = index['task', 'dmc_walker_walk', 'prioritized', '']
  assert (prio['value'], prio['count']) == (10.0, 1) and np.isnan(
      prio['std'])
  loss = index['metric', 'dmc_walker_walk', 'baseline', 'loss/model']
  # Window means 2 (of 3 and 1) and 3; the last values would be 40 and 3.
  assert (loss['value'], loss['count']) == (2.5, 2)
  assert loss['std'] == pytest.approx(0.5 ** 0.5)
  loss = index['metric', 'dmc_walker_walk', 'prioritized', 'loss/model']
  assert (loss['value'], loss['ci_low'], loss['ci_high']) == (12.0, 8.0, 16.0)
  weight = index['metric', 'dmc_walker_walk', 'prioritized',
                 'expl/intrinsic_weight']
  assert (weight['value'], weight['count']) == (0.5, 1)  # Not 0.9 (at 80).
  weight = index['metric', 'dmc_walker_walk', 'baseline',
                 'expl/intrinsic_weight']
  assert weight['count'] == 0 and np.isnan(weight['value'])
  text = tables.markdown(rows, 90, 100)
  assert '| dmc_walker_walk | 3.0 ± 1.4 [2.0, 4.0] (2) | 10.0 [10.0, 10.0] ' \
         '(1) |' in text
  assert ("`loss/model`, mean of each seed's values logged at frames [90, "
          '100]') in text
  assert '| dmc_walker_walk | 2.5 ± 0.7071 [2, 3] (2) | 12 ± 5.657 [8, 16] ' \
         '(2) |' in text
  assert '| dmc_walker_walk | n/a | 0.5 [0.5, 0.5] (1) |' in text
  parsed = list(csv.DictReader(io.StringIO(tables.to_csv(rows))))
  assert [(r['method'], r['metric'], r['value'], r['count']) for r in parsed
          if r['section'] == 'metric'] == [
              ('baseline', 'loss/model', '2.5', '2'),
              ('prioritized', 'loss/model', '12.0', '2'),
              ('baseline', 'expl/intrinsic_weight', '', '0'),
              ('prioritized', 'expl/intrinsic_weight', '0.5', '1')]
  with pytest.raises(ValueError, match=r"No run logs the metric 'loss/mdl' "
                     r"\(did you mean 'train/loss/model'"):
    tables.metric_rows(table, ['loss/mdl'], 90, 100, reps=10)
  with pytest.raises(ValueError, match=r"The runs log 'train/loss/model' "
                     r'with no finite value at frames \[200, 300\] '
                     r'\(--window\)\.'):
    tables.metric_rows(table, ['train/loss/model'], 200, 300, reps=10)


def test_cli_tables_of_an_experiment_sweep(experiments, tmp_path):
  out = str(tmp_path / 'tab')
  proc = _launch(f'--runs={experiments}', '--window=90,100', f'--out={out}',
                 '--reps=50', '--metrics=loss/model', '--methods=prioritized')
  assert proc.returncode == 0, proc.stderr[-2000:]
  with open(out + '.csv') as f:
    parsed = list(csv.DictReader(f))
  assert {r['method'] for r in parsed} == {'prioritized'}
  assert [r['value'] for r in parsed if r['section'] == 'metric'] == ['12.0']
  proc = _launch(f'--runs={experiments}', '--window=90,100',
                 '--metrics=loss/nothing')
  assert proc.returncode != 0
  assert proc.stderr.startswith(
      "launch.tables: No run logs the metric 'loss/nothing'")
  proc = _launch(f'--runs={experiments}', '--window=90,100',
                 '--methods=basline')
  assert "Unknown method 'basline' (did you mean 'baseline'?)" in proc.stderr
