"""launch/plot.py: binned curves with bootstrap bands and the figure files."""
import os
import subprocess
import sys

import numpy as np
import pytest

from dreamer_tf.analysis import scores
from launch import plot
from tests.analysis import fakes
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
  x, mean, low, high, seeds, per_seed = series['dreamer_tf']
  np.testing.assert_array_equal(x, [25, 75])
  # Bin [0, 50): seed 0 mean(1, 3) = 2, seed 1 3; bin [50, 100]: 6 and 9.
  np.testing.assert_allclose(mean, [2.5, 7.5])
  np.testing.assert_allclose(per_seed, [[2, 6], [3, 9]])  # The thin lines.
  assert seeds == 2
  assert np.all(low >= [2, 6]) and np.all(high <= [3, 9])
  x, mean, low, high, seeds, _ = series['dreamerv3']
  np.testing.assert_allclose(mean, [0.0, np.nan])  # Null and x=200 dropped.
  default = plot.curves(table['atari_pong'], bins=2, reps=10)
  np.testing.assert_array_equal(default['dreamer_tf'][0], [50, 150])


def test_curves_bin_by_the_last_point_on_request(synthetic):
  runs, reference = synthetic
  _, table = scores.collect([runs], [reference], ['atari_pong'])
  series = plot.curves(table['atari_pong'], bins=2, max_frames=100, reps=100,
                       reduce='last')
  # Bin [0, 50): seed 0's last point 3, seed 1's 3; [50, 100]: 7 and 9.
  np.testing.assert_allclose(series['dreamer_tf'].per_seed, [[3, 7], [3, 9]])
  np.testing.assert_allclose(series['dreamer_tf'].mean, [3, 8])


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


def test_frame_ticks_read_in_k_and_m():
  labels = [plot.frames_label(x) for x in (0, 500, 1000, 12500, 250000,
                                            999999.99, 1.5e6, 2e8, 1e9)]
  assert labels == ['0', '500', '1k', '12.5k', '250k', '1M', '1.5M', '200M',
                    '1B']


def _series(max_frames):
  x = np.linspace(0, max_frames, 30)
  mean = np.sqrt(x)
  return {'dreamer_tf': (x, mean, mean - 1, mean + 1, 3),
          'a much longer reference method name': (x, mean / 2, mean / 2 - 1,
                                                  mean / 2 + 1, 5)}


def _shown_ticks(axis):
  """The tick labels of `axis` inside its view (matplotlib draws only
  those)."""
  lo, hi = sorted(axis.get_view_interval())
  return [label for x, label in zip(axis.get_ticklocs(),
                                    axis.get_ticklabels()) if lo <= x <= hi]


def _label_boxes(fig):
  """{text: window extent in pixels} of the texts a reader needs: titles,
  axis and tick labels, legend entries."""
  fig.canvas.draw()
  texts = []
  for ax in fig.axes:
    if not ax.axison:
      continue
    texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
    texts += _shown_ticks(ax.xaxis) + _shown_ticks(ax.yaxis)
  for legend in fig.legends + [ax.get_legend() for ax in fig.axes]:
    if legend is not None:
      texts += legend.get_texts()
  renderer = fig.canvas.get_renderer()
  return {t.get_text(): t.get_window_extent(renderer) for t in texts
          if t.get_text() and t.get_visible()}


def _save_and_check(fig, stem):
  """Saves `fig` (plot.save_figure) and checks that every label lies inside
  the PNG: bbox_inches='tight' crops to the figure's tight bbox plus the
  padding, in pixels at plot.DPI (the figure's DPI)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  boxes = _label_boxes(fig)
  tight = fig.get_tightbbox(fig.canvas.get_renderer())  # Inches.
  paths = plot.save_figure(fig, stem)
  pad = 0.05
  left, bottom = (tight.x0 - pad) * plot.DPI, (tight.y0 - pad) * plot.DPI
  with Image.open(paths[0]) as image:
    width, height = image.size
  assert abs(width - (tight.width + 2 * pad) * plot.DPI) <= 2
  assert abs(height - (tight.height + 2 * pad) * plot.DPI) <= 2
  for text, box in boxes.items():
    assert left - 1 <= box.x0 and box.x1 <= left + width + 1, text
    assert bottom - 1 <= box.y0 and box.y1 <= bottom + height + 1, text
  return boxes, paths


def test_figures_label_frames_in_k_and_m_and_clip_nothing(tmp_path):
  colors = {'dreamer_tf': 'C0', 'a much longer reference method name': 'C1'}
  series = _series(1.5e6)
  fig = plot.task_figure('atari_a_task_with_a_long_name', series, colors)
  fig.canvas.draw()
  ax = fig.axes[0]
  ticks = [label.get_text() for label in _shown_ticks(ax.xaxis)]
  assert ticks[:2] == ['0', '200k'] and '1M' in ticks, ticks
  assert all(t == '0' or t[-1] in 'kM' for t in ticks), ticks
  assert not ax.xaxis.get_offset_text().get_text()  # No '1e6' offset.
  boxes, paths = _save_and_check(fig, str(tmp_path / 'task'))
  assert {'env frames', 'episode return', '1M',
          'atari_a_task_with_a_long_name'} <= set(boxes)
  assert [os.path.basename(p) for p in paths] == ['task.png', 'task.svg']
  grid = plot.grid_figure({'a': series, 'b': _series(4e5), 'c': series},
                          colors, cols=2)
  boxes, _ = _save_and_check(grid, str(tmp_path / 'grid'))
  assert {'a much longer reference method name', '400k', '1.4M'} <= set(
      boxes)


def test_legend_names_the_value_of_curves_that_hide_each_other():
  # Two arms that never found the treasure draw one line at 0; the third
  # varies, and NaN bins (no episode yet) do not count.
  x = np.arange(4.0)
  zeros, nan = np.zeros(4), np.array([np.nan, 0, 0, 0])
  rising = np.array([0, 0, 0.5, 0.9])
  series = {'baseline': (x, zeros, zeros, zeros, 2),
            'prioritized': (x, nan, nan, nan, 1),
            'prioritized_embed': (x, rising, rising - 0.1, rising + 0.1, 1),
            'flat_mean_wide_band': (x, zeros, zeros - 1, zeros + 1, 3)}
  colors = dict(zip(series, ['C0', 'C1', 'C2', 'C3']))
  fig = plot.task_figure('deepsea_14', series, colors, 'success rate')
  labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert labels == ['baseline (2), 0 throughout',
                    'prioritized (1), 0 throughout', 'prioritized_embed (1)',
                    'flat_mean_wide_band (3)']


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


@pytest.fixture(name='experiments')
def experiments_fixture(tmp_path):
  """An experiment sweep in tmp_path/xp1: baseline and prioritized x seeds
  0, 1 on walker. Final scores (last 10 episodes): baseline 2 and 4 (mean
  3). loss/model falls from 1000 to 1 (three decades), loss/value from 50
  to 1, loss/policy crosses zero."""
  runs = fakes.plan(tmp_path / 'xp1', fakes.write_experiments(tmp_path / 'xp'))
  for i, run in enumerate(runs):
    metrics = [{'step': step, 'train/loss/model': model,
                'train/loss/value': value, 'train/loss/policy': policy}
               for step, model, value, policy in (
                   (25, 1000.0 + i, 50.0, -0.5), (50, 100.0, 20.0, 0.1),
                   (100, 1.0, 1.0 + i, 0.5))]
    fakes.write_run(run, [(50, 1.0), (100, 2.0 + 2 * (i % 2) + 3 * (i // 2))],
                    metrics)
  return str(tmp_path / 'xp1')


def test_log_scale_rule():
  def series(*values):
    values = np.asarray(values, float)
    return {'m': plot.Curve(np.arange(values.size), values, values, values,
                            1, values[None])}
  assert plot.log_scale(series(1000.0, 1.0))  # Three decades.
  assert plot.log_scale(series(100.1, 1.0))
  assert not plot.log_scale(series(100.0, 1.0))  # Exactly two: linear.
  assert not plot.log_scale(series(1000.0, -1.0))  # Not positive.
  assert not plot.log_scale(series(1000.0, 0.0))
  assert plot.log_scale(series(1000.0, np.nan, 1.0))  # Gaps ignored.


def test_metric_figures_per_seed_lines_log_axis_and_method_filter(
    experiments, tmp_path, monkeypatch):
  drawn = {}
  task_figure = plot.task_figure

  def spy(task, series, colors, ylabel='episode return', log=False):
    drawn[ylabel] = (log, list(series))
    fig = task_figure(task, series, colors, ylabel, log)
    ax = fig.axes[0]
    drawn[ylabel] += (ax.get_yscale(), len(ax.get_lines()))
    return fig
  monkeypatch.setattr(plot, 'task_figure', spy)
  _, table = scores.collect([experiments])
  table = scores.select_methods(table, ['prioritized'])
  out = str(tmp_path / 'figures')
  paths = plot.make_metric_figures(
      table, ['loss/model', 'loss/value', 'train/loss/policy'], out, bins=4,
      reps=20)
  assert sorted(os.path.relpath(p, out) for p in paths) == sorted(
      f'{d}/{f}.{e}' for d in ('loss_model', 'loss_value',
                               'train_loss_policy')
      for f in ('dmc_walker_walk', 'grid') for e in ('png', 'svg'))
  assert all(os.path.getsize(p) > 1000 for p in paths)
  # One method (the filter); two thin seed lines and the mean per figure.
  assert drawn['loss/model'] == (True, ['prioritized'], 'log', 3)
  assert drawn['loss/value'] == (False, ['prioritized'], 'linear', 3)
  assert drawn['train/loss/policy'] == (False, ['prioritized'], 'linear', 3)
  with pytest.raises(ValueError, match=r"No run logs the metric "
                     r"'loss/modl' \(did you mean 'train/loss/model'"):
    plot.make_metric_figures(table, ['loss/modl'], out)


def test_scores_normalised_by_the_baseline(experiments):
  _, table = scores.collect([experiments])
  relative = scores.relative_to(table, 'baseline', 10)
  # Baseline final scores: seed 0 (1 + 2) / 2 = 1.5, seed 1 (1 + 4) / 2 =
  # 2.5: mean 2.
  first = relative['dmc_walker_walk']['prioritized'][0]
  np.testing.assert_allclose(first.ys, [0.5, 2.5])  # (1, 5) / 2.


def test_cli_metrics_methods_and_normalize(experiments, tmp_path):
  out = tmp_path / 'cli'
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.plot', f'--runs={experiments}',
       f'--out={out}', '--bins=2', '--reps=10', '--metrics=loss/model',
       '--normalize=baseline', '--methods=prioritized',
       f'--save_scores={tmp_path}/kept.json'],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  # The saved scores remake the figure: the baseline is kept for it.
  kept = scores.load_reference(f'{tmp_path}/kept.json')
  assert sorted({r.method for r in kept}) == ['baseline', 'prioritized']
  remade = subprocess.run(
      [sys.executable, '-m', 'launch.plot', f'--reference={tmp_path}/kept.json',
       f'--out={tmp_path}/remade', '--bins=2', '--reps=10',
       '--normalize=baseline', '--methods=prioritized'],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
  assert remade.returncode == 0, remade.stderr[-2000:]
  assert sorted(os.listdir(out)) == ['dmc_walker_walk.png',
                                     'dmc_walker_walk.svg', 'grid.png',
                                     'grid.svg', 'loss_model']
  svg = (out / 'dmc_walker_walk.svg').read_text()
  assert 'prioritized (2)' in svg and 'baseline (' not in svg
  assert 'episode return / baseline final' in svg
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.plot', f'--runs={experiments}',
       f'--out={out}', '--bins=2', '--reps=10', '--normalize=baseline',
       '--normalize_by=difference'],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'episode return - baseline final' in (
      out / 'dmc_walker_walk.svg').read_text()
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.plot', f'--runs={experiments}',
       f'--out={out}', '--normalize=nobody'],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
  assert proc.returncode != 0
  assert proc.stderr.startswith(
      "launch.plot: Cannot normalise 'dmc_walker_walk' by 'nobody'")
