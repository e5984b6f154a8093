"""launch/plot.py: binned curves with bootstrap bands and the figure files."""
import os
import subprocess
import sys

import numpy as np
import pytest

from dreamer_tf.analysis import scores
from launch import plot
from tests.conftest import ROOT
from tests.analysis.test_scores import write_reference
from tests.analysis.test_scores import write_run


@pytest.fixture(name='synthetic')
def synthetic_fixture(tmp_path):
  """Pong: two seeds of ours and one reference seed; walker: one seed."""
  write_run(tmp_path / 'runs' / 'pong-0', 'atari100k:Pong',
            [(10, 1.0), (20, 3.0), (60, 5.0), (100, 7.0)])
  write_run(tmp_path / 'runs' / 'pong-1', 'atari100k:Pong',
            [(30, 3.0), (80, 9.0)])
  write_run(tmp_path / 'runs' / 'walker-0', 'dmc:walker_walk',
            [(50, 100.0), (100, 300.0)])
  reference = write_reference(tmp_path / 'ref.json.gz', [
      {'task': 'atari_pong', 'method': 'dreamerv3', 'seed': 0,
       'xs': [40, 90, 200], 'ys': [0.0, None, 4.0]}])
  return str(tmp_path / 'runs' / '*'), reference


def test_curves_bin_and_average_over_seeds(synthetic):
  runs, reference = synthetic
  _, table = scores.collect([runs], [reference], ['atari_pong'])
  series = plot.curves(table['atari_pong'], bins=2, max_frames=100, reps=100)
  x, mean, low, high, seeds = series['dreamer_tf']
  np.testing.assert_array_equal(x, [25, 75])
  # Bin [0, 50): seed 0 mean(1, 3) = 2, seed 1 3; bin [50, 100]: 6 and 9.
  np.testing.assert_allclose(mean, [2.5, 7.5])
  assert seeds == 2
  assert np.all(low >= [2, 6]) and np.all(high <= [3, 9])
  x, mean, low, high, seeds = series['dreamerv3']
  np.testing.assert_allclose(mean, [0.0, np.nan])  # Null and x=200 dropped.
  default = plot.curves(table['atari_pong'], bins=2, reps=10)
  np.testing.assert_array_equal(default['dreamer_tf'][0], [50, 150])


def test_make_figures_writes_png_and_svg(synthetic, tmp_path):
  runs, reference = synthetic
  _, table = scores.collect([runs], [reference])
  out = str(tmp_path / 'figures')
  paths = plot.make_figures(table, out, bins=4, reps=50)
  names = sorted(os.path.basename(p) for p in paths)
  assert names == ['atari_pong.png', 'atari_pong.svg', 'dmc_walker_walk.png',
                   'dmc_walker_walk.svg', 'grid.png', 'grid.svg']
  for path in paths:
    with open(path, 'rb') as f:
      head = f.read(512)
    assert os.path.getsize(path) > 1000
    if path.endswith('.png'):
      assert head.startswith(b'\x89PNG')
    else:
      assert b'<svg' in head


def test_task_without_episodes_fails_clearly(tmp_path):
  write_run(tmp_path / 'empty-0', 'dmc:walker_walk', [])
  _, table = scores.collect([str(tmp_path / 'empty-0')])
  with pytest.raises(ValueError, match="No episode scores to plot for task "
                     "'dmc_walker_walk'"):
    plot.make_figures(table, str(tmp_path / 'out'))


def test_cli_writes_files_and_rejects_unmatched_glob(synthetic, tmp_path):
  runs, reference = synthetic
  out = tmp_path / 'cli'
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.plot', f'--runs={runs}',
       f'--reference={reference}', '--tasks=dmc:walker_walk', f'--out={out}',
       '--bins=2', '--reps=10'],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert sorted(os.listdir(out)) == ['dmc_walker_walk.png',
                                     'dmc_walker_walk.svg', 'grid.png',
                                     'grid.svg']
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.plot', f'--runs={tmp_path}/none-*',
       f'--out={out}'],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
  assert proc.returncode != 0
  assert 'No run directories match' in proc.stderr
