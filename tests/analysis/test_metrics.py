"""dreamer_tf.analysis.metrics: metrics.jsonl read back, metric names by
key or tail, last values, series and the metric table of a score table."""
import numpy as np
import pytest

from dreamer_tf.analysis import metrics as metrics_lib
from dreamer_tf.analysis import scores
from tests.analysis import fakes


def test_read_skips_a_torn_last_line_and_names_a_bad_one(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text('{"step": 1, "train/loss/model": 2.0}\n{"step": 2, "tr')
  assert metrics_lib.read(str(tmp_path)) == [
      {'step': 1, 'train/loss/model': 2.0}]
  path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
  with pytest.raises(ValueError, match='Bad line 2'):
    metrics_lib.read(str(tmp_path))
  assert metrics_lib.read(str(tmp_path / 'none')) == []


def test_match_by_key_or_tail():
  keys = ['train/loss/policy', 'train/loss/model', 'report/loss/model',
          'fps/policy']
  assert metrics_lib.match('train/loss/policy', keys) == 'train/loss/policy'
  assert metrics_lib.match('loss/policy', keys) == 'train/loss/policy'
  assert metrics_lib.match('train/loss/model', keys) == 'train/loss/model'
  assert metrics_lib.match('loss/value', keys) is None
  assert metrics_lib.match('oss/policy', keys) is None  # Whole parts only.
  with pytest.raises(metrics_lib.MissingMetricError,
                     match=r"'loss/model' is ambiguous.*report/loss/model.*"
                     'train/loss/model'):
    metrics_lib.match('loss/model', keys)
  with pytest.raises(metrics_lib.MissingMetricError, match='ambiguous'):
    metrics_lib.match('policy', keys)


def test_last_values_and_series_skip_nan():
  records = [{'step': 10, 'time': 1.0, 'train/loss/model': 4.0, 'x/y': 1.0},
             {'step': 30, 'time': 2.0, 'train/loss/model': float('nan')},
             {'step': 20, 'time': 3.0, 'train/loss/model': 2.0}]
  assert metrics_lib.keys(records) == ['train/loss/model', 'x/y']
  assert metrics_lib.last_values(records, ['loss/model', 'y', 'z']) == {
      'loss/model': 2.0, 'y': 1.0}
  xs, ys = metrics_lib.series(records, 'loss/model')
  np.testing.assert_array_equal(xs, [10, 20])  # Sorted by frames.
  np.testing.assert_array_equal(ys, [4.0, 2.0])
  assert metrics_lib.series(records, 'z') is None
  assert metrics_lib.parse_names('a, b,,') == ['a', 'b']


def test_metric_table_of_a_score_table(tmp_path):
  runs = fakes.plan(tmp_path / 'sw', fakes.write_experiments(tmp_path / 'xp'),
                    seeds=[0])
  fakes.write_run(runs[0], [(10, 1.0)], [
      {'step': 10, 'train/loss/model': 5.0}, {'step': 20,
                                               'train/loss/model': 3.0}])
  fakes.write_run(runs[1], [(10, 2.0)], [{'step': 10, 'fps/policy': 1.0}])
  _, table = scores.collect([str(tmp_path / 'sw')])
  metric = metrics_lib.metric_table(table, 'loss/model')
  assert list(metric) == ['dmc_walker_walk']
  (run,), = metric['dmc_walker_walk'].values()
  assert (run.method, run.seed) == ('baseline', 0)
  np.testing.assert_array_equal(run.ys, [5.0, 3.0])
  with pytest.raises(metrics_lib.MissingMetricError,
                     match=r"'loss/modle' \(did you mean 'train/loss/model'"):
    metrics_lib.metric_table(table, 'loss/modle')
