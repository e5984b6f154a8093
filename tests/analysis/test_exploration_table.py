"""dreamer_tf/analysis/exploration_table.py: the rows of a sweep's
hard-exploration table (with depths, reach counts and right moves), their
Markdown and the CSV's columns (exact fixtures; launch/exploration.py's
tests run it on run directories)."""
import numpy as np
import pytest

from dreamer_tf.analysis import exploration
from dreamer_tf.analysis import exploration_table
from dreamer_tf.analysis import scores

SUCCESS = 0.99


def run(ys, seed=0, method='baseline', task='deepsea_10'):
  ys = np.asarray(ys, np.float64)
  return scores.Run(task, method, seed, 11.0 * np.arange(1, ys.size + 1), ys)


@pytest.fixture(name='table')
def table_fixture():
  """Two seeds of baseline (seed 1 finds at episode 3 and keeps it) and
  one of prioritized that has no episode yet."""
  return {'deepsea_10': {
      'baseline': [run([0.0, 0.0, 0.0, 0.0], seed=0),
                   run([0.0, -0.001, SUCCESS, SUCCESS], seed=1)],
      'prioritized': [run([], seed=0, method='prioritized')]}}


def test_default_reach_rows_are_the_deeper_half_of_the_diagonal():
  assert exploration_table.default_reach_rows(14) == list(range(6, 14))
  assert exploration_table.default_reach_rows(10) == [4, 5, 6, 7, 8, 9]
  assert exploration_table.default_reach_rows(1) == [0]


def test_rows_without_depths_or_moves(table):
  rows = exploration_table.build(table, threshold=0.5, window=2, rate=0.5,
                                 reps=100)
  baseline, prioritized = rows
  assert prioritized == dict(task='deepsea_10', method='prioritized', seeds=0,
                             without_episodes='0')
  assert baseline['seeds'] == 2
  assert baseline['found'] == 0.5 and baseline['solved'] == 0.5
  assert baseline['first_success'] == '- 3'
  assert baseline['solved_at'] == '- 3'
  assert baseline['final_rate'] == 0.5
  assert baseline['episodes_min'] == 4
  assert 'deepest' not in baseline and 'right_moves' not in baseline
  assert not any(k.startswith('reached') for k in baseline)


def test_depths_reach_counts_and_right_moves_per_seed(table):
  # Seed 1 has no depths: a '-' in its place.
  depths = {'deepsea_10': {'baseline': [run([1.0, 4.0, 9.0, 6.0], seed=0)]}}
  moves = {'deepsea_10': {'baseline': [
      exploration.right_moves(r, 10) for r in table['deepsea_10']['baseline']]}}
  rows = exploration_table.build(table, 0.5, 2, 0.5, reps=100, depths=depths,
                                 moves=moves)
  baseline = rows[0]
  assert baseline['deepest'] == '9 -'
  assert baseline['median_deepest'] == 9
  # Default rows 4..9 of DeepSea 10; seed 0 reached 4, 9, 6.
  assert baseline['reached_row4'] == '3 -'
  assert baseline['reached_row7'] == '1 -'
  assert baseline['reached_total'] == {4: 3, 5: 2, 6: 2, 7: 1, 8: 1, 9: 1}
  assert baseline['reached_episodes'] == '4 -'
  # Last 2 episodes: seed 0 went right 0 times, seed 1 10 times (the
  # treasure), and once (-0.001 = one right move of cost 0.01 / 10) before.
  assert baseline['right_moves_seeds'] == '0.0 10.0'
  assert baseline['right_moves'] == 5.0
  # Chosen rows, in each seed's first 2 episodes.
  rows = exploration_table.build(table, 0.5, 2, 0.5, reps=100, depths=depths,
                                 reach_rows=[1, 4], reach_episodes=2)
  assert rows[0]['reached_total'] == {1: 2, 4: 1}
  assert rows[0]['reached_episodes'] == '2 -'


def test_markdown_has_a_table_per_task_and_the_reach_counts(table):
  depths = {'deepsea_10': {'baseline': [run([1.0, 4.0, 9.0, 6.0], seed=0)]}}
  rows = exploration_table.build(table, 0.5, 2, 0.5, reps=100, depths=depths,
                                 reach_rows=[4, 9])
  text = exploration_table.markdown(rows, 0.5, 2, 0.5)
  assert '### deepsea_10' in text
  assert '| deepest diagonal row (of 9): median (per seed) |' in text
  assert '| baseline | 2 | 1/2 [' in text
  # Seed 0's 4 episodes without a success: the median is censored.
  assert '| >= 3.5 (- 3) | >= 3.5 (- 3) | 0.50 [0.00, 1.00] |' in text
  assert 'Episodes that reached at least diagonal row r (all episodes)' in text
  assert '| method | seeds | episodes counted | row 4 | row 9 |' in text
  assert '| baseline | 2 | 4 - | 3 (3 -) | 1 (1 -) |' in text
  assert 'Left out, no episode yet: prioritized (seeds 0).' in text
  assert 'right moves' not in text.split('### deepsea_10')[1]
  first = exploration_table.markdown(rows, 0.5, 2, 0.5, reach_episodes=2)
  assert '(the first 2 episodes of each seed)' in first


def test_csv_table_adds_the_reach_columns_in_row_order(table):
  depths = {'deepsea_10': {'baseline': [run([1.0, 4.0, 9.0, 6.0], seed=0)]}}
  rows = exploration_table.build(table, 0.5, 2, 0.5, reps=100, depths=depths,
                                 reach_rows=[9, 2, 4])
  csv_rows, columns = exploration_table.csv_table(rows)
  assert columns == exploration_table.COLUMNS + [
      'reached_episodes', 'reached_row2', 'reached_row4', 'reached_row9']
  assert all('reached_total' not in r for r in csv_rows)
  assert csv_rows[0]['reached_row2'] == '3 -'
  # Rows in number order, not text order (9 before 12).
  deep = {'deepsea_14': {'baseline': [run([1.0, 12.0], task='deepsea_14')]}}
  _, columns = exploration_table.csv_table(exploration_table.build(
      {'deepsea_14': {'baseline': [run([0.0, 0.0], task='deepsea_14')]}},
      0.5, 2, 0.5, reps=100, depths=deep, reach_rows=[12, 9]))
  assert columns[-2:] == ['reached_row9', 'reached_row12']
  assert 'reached_total' in rows[0]  # The rows themselves are unchanged.
  plain, columns = exploration_table.csv_table(
      exploration_table.build(table, 0.5, 2, 0.5, reps=100))
  assert columns == exploration_table.COLUMNS
  assert len(plain) == 2


def test_compare_tests_each_method_against_the_reference():
  table = {'deepsea_10': {
      'baseline': [run([0.0], seed=k) for k in range(3)],
      'ours': [run([SUCCESS] * 3, seed=k, method='ours') for k in range(3)],
      'late': [run([], method='late')]}}
  rows = exploration_table.compare(
      exploration_table.build(table, 0.5, 2, 0.5, reps=100), 'baseline')
  baseline, ours, late = rows
  assert 'compared_to' not in baseline and 'compared_to' not in late
  assert ours['compared_to'] == 'baseline'
  # 3/3 against 0/3 found it; solved needs 2 episodes: 3/3 against 0/3.
  assert ours['found_p'] == pytest.approx(0.1)
  assert ours['solved_p'] == pytest.approx(0.1)
  text = exploration_table.markdown(rows, 0.5, 2, 0.5)
  assert '| vs baseline: p found, p solved |' in text
  assert '| 0.10, 0.10 |' in text
  assert '0.10 at 3 against 3' in text
  _, columns = exploration_table.csv_table(rows)
  assert columns[-3:] == ['compared_to', 'found_p', 'solved_p']
  # A reference without runs with episodes on any task is named.
  with pytest.raises(ValueError, match=r"Cannot compare with 'basline' "
                     r"\(did you mean 'baseline'\?\): it has no run with "
                     r"episodes; the methods that have: "
                     r"\['baseline', 'ours'\]"):
    exploration_table.compare(rows, 'basline')
  with pytest.raises(ValueError, match="Cannot compare with 'late': it has "
                     "no run with episodes"):
    exploration_table.compare(rows, 'late')


def test_compare_leaves_out_a_task_where_the_reference_has_no_episode():
  """A reference that has just started on one task: that task gets no
  p-values and a note; the others are compared."""
  table = {
      'deepsea_10': {
          'baseline': [run([0.0], seed=k) for k in range(2)],
          'ours': [run([SUCCESS], seed=k, method='ours') for k in range(2)]},
      'deepsea_14': {
          'baseline': [run([], task='deepsea_14')],
          'ours': [run([SUCCESS], method='ours', task='deepsea_14')]}}
  rows = exploration_table.compare(
      exploration_table.build(table, 0.5, 1, 0.5, reps=100), 'baseline')
  by = {(r['task'], r['method']): r for r in rows}
  assert by['deepsea_10', 'ours']['found_p'] == pytest.approx(1 / 3)
  assert 'compared_to' not in by['deepsea_14', 'ours']
  text = exploration_table.markdown(rows, 0.5, 1, 0.5)
  ten, fourteen = text.split('### deepsea_10')[1].split('### deepsea_14')
  assert '| 0.33, 0.33 |' in ten and 'No p-values' not in ten
  assert 'vs baseline' not in fourteen
  assert 'No p-values: baseline has no episode on deepsea_14 yet.' in fourteen


def test_reach_counts_only_on_deepsea_unless_rows_are_given():
  """Depths of a task that is not DeepSea N (no N to pick rows from) give
  the deepest row but no reach counts, unless rows are asked for."""
  table = {'other': {'baseline': [run([0.0, 0.0], task='other')]}}
  depths = {'other': {'baseline': [run([2.0, 5.0], task='other')]}}
  row, = exploration_table.build(table, 0.5, 2, 0.5, reps=100, depths=depths)
  assert row['deepest'] == '5'
  assert not any(k.startswith('reached') for k in row)
  row, = exploration_table.build(table, 0.5, 2, 0.5, reps=100, depths=depths,
                                 reach_rows=[3])
  assert row['reached_row3'] == '1' and row['reached_total'] == {3: 1}
