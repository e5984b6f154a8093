"""launch.benchmark's loop mode: suite names, log windows, a real run."""
import json
import os

from absl import app
import pytest

from launch import benchmark
from tests.conftest import ROOT


def test_loop_suites_resolve_by_name_and_a_typo_lists_the_choices():
  assert benchmark.suite_gin('default') == os.path.join(
      ROOT, 'gin_configs', 'default.gin')
  assert benchmark.suite_gin('dmc_proprio') == os.path.join(
      ROOT, 'gin_configs', 'suites', 'dmc_proprio.gin')
  with pytest.raises(app.UsageError, match=r"dmc_propio.*'dmc_proprio'"):
    benchmark.suite_gin('dmc_propio')


def test_loop_windows_start_after_the_first_update(tmp_path):
  """The window that holds the first update (tracing, compiling) and the
  ones before it are left out; the rest add up."""
  path = tmp_path / 'metrics.jsonl'
  records = [
      # (updates, frames, window seconds, update share) at each log.
      (0, 40, 2.0, 0.0), (1, 48, 30.0, 0.9), (5, 56, 2.0, 0.5),
      (9, 64, 4.0, 0.25)]
  with open(path, 'w') as f:
    f.write(json.dumps({'step': 1, 'episode/score': 3.0}) + '\n')
    for updates, frames, seconds, share in records:
      f.write(json.dumps({
          'step': frames, 'counters/updates': updates,
          'counters/frames': frames, 'time/window_seconds': seconds,
          'time/update_share': share}) + '\n')
    f.write('{"step": 72, "counters/upd')  # Being written: left out.
  windows = benchmark._loop_windows(str(tmp_path))  # pylint: disable=protected-access
  assert windows == [
      dict(seconds=2.0, update_seconds=1.0, updates=4, frames=8),
      dict(seconds=4.0, update_seconds=1.0, updates=4, frames=8)]
  assert benchmark._loop_windows(str(tmp_path / 'none')) == []  # pylint: disable=protected-access


@pytest.mark.slow
def test_loop_mode_measures_a_real_training_run():
  """The debug agent on CartPole: updates after the compiling one are
  measured, the run is stopped, and the shares add up."""
  result = benchmark.measure_loop(
      'default', updates=6, log_every=1,
      gin_files=[os.path.join(ROOT, 'gin_configs', 'suites', 'debug.gin')],
      gin_params=['train.steps=100000', 'train.train_ratio=32',
                  'Agent.jit_compile=False'],  # Plumbing: no XLA compile.
      timeout=600)
  assert 'error' not in result, result
  assert result['env'] == "'gym:CartPole-v1'"
  assert result['train_ratio'] == '32'
  assert result['updates_measured'] >= 6
  assert result['updates_per_second'] > 0
  assert result['frames_per_second'] > 0
  assert 0 < result['outside_update_share'] < 1
  assert result['seconds_per_update_inside'] > 0


def test_loop_mode_reports_a_run_that_ends_before_its_updates():
  result = benchmark.measure_loop('default', updates=5,
                                  gin_params=["RSSM.deter='big'"], timeout=300)
  assert set(result) == {'suite', 'error'}
  assert 'the run ended (exit 1) after 0 measured updates' in result['error']
  assert 'RSSM.deter' in result['error']
