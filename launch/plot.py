"""Learning curves of our runs, with official reference runs overlaid.

  python -m launch.plot --runs='runs/atari100k_*' \
      --reference=../shared/reference/scores/atari100k-dreamerv3.json.gz \
      --out=results/curves

Episode scores of every seed are binned on a common frame grid (x = env
frames, ticks as 250k, 1.5M); each method's curve is the mean over seeds
with a 95% bootstrap band. Writes <out>/<task>.png and .svg per task and
<out>/grid.png/.svg with all tasks, cropped so that no label is cut off.
"""
import math
import os

from absl import app
from absl import flags
import numpy as np

from dreamer_tf.analysis import scores
from launch import score_flags  # noqa: F401  (--runs, --reference, ...)

flags.DEFINE_integer('bins', 30, 'Bins of the frame grid.')
flags.DEFINE_float('max_frames', None,
                   'Right end of the x axis (default: the last episode).')
flags.DEFINE_integer('cols', 4, 'Columns of the grid figure.')
FLAGS = flags.FLAGS


def curves(methods, bins=30, max_frames=None, reps=1000, seed=0, task=''):
  """{method: (x [K], mean [K], low [K], high [K], seeds)} of one task.

  methods: {method: [Run]}; the grid spans [0, max_frames] (default: the
  last point of any run) in `bins` bins, x at the bin centres.
  """
  if max_frames is None:
    max_frames = max((r.xs.max() for runs in methods.values()
                      for r in runs if r.xs.size), default=0)
    if max_frames <= 0:
      raise ValueError(f'No episode scores to plot for task {task!r}: '
                       'its runs have no episodes past frame 0.')
  edges = scores.frame_grid(max_frames, bins)
  centres = (edges[:-1] + edges[1:]) / 2
  result = {}
  for method, runs in methods.items():
    mean, low, high = scores.bootstrap_band(
        scores.bin_runs(runs, edges), reps=reps, seed=seed)
    result[method] = (centres, mean, low, high, len(runs))
  return result


# Resolution of the PNG files; figures are made at it, so that display
# coordinates are the saved image's pixels.
DPI = 120


def frames_label(x, pos=None):
  """Tick label of a frame count: 0, 500, 250k, 1.5M, 2B."""
  del pos
  for scale, suffix in ((1e9, 'B'), (1e6, 'M'), (1e3, 'k')):
    if abs(x) >= scale * (1 - 5e-5):
      return f'{x / scale:.4g}{suffix}'
  return f'{x:.4g}'


def draw(ax, task, series, colors):
  """One task's mean lines and bands on a matplotlib axis."""
  from matplotlib import ticker  # pylint: disable=import-outside-toplevel
  for method, (x, mean, low, high, seeds) in series.items():
    keep = np.isfinite(mean)
    color = colors[method]
    ax.plot(x[keep], mean[keep], color=color, lw=1.5,
            label=f'{method} ({seeds})')
    ax.fill_between(x[keep], low[keep], high[keep], color=color, alpha=0.2,
                    lw=0)
  ax.set_title(task, fontsize=10)
  ax.set_xlabel('env frames', fontsize=8)
  ax.set_ylabel('episode return', fontsize=8)
  ax.tick_params(labelsize=7)
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(frames_label))
  ax.grid(alpha=0.3)


def pyplot():
  """matplotlib.pyplot on the Agg backend (files only, no display)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  return pyplot


def task_figure(task, series, colors):
  """One task's curves with a legend of methods (and seed counts)."""
  fig, ax = pyplot().subplots(figsize=(4.5, 3.2), dpi=DPI,
                              constrained_layout=True)
  draw(ax, task, series, colors)
  ax.legend(fontsize=7)
  return fig


def grid_figure(series, colors, cols=4):
  """All tasks' curves in a grid, one legend of methods below it."""
  from matplotlib import lines  # pylint: disable=import-outside-toplevel
  cols = max(1, min(cols, len(series)))
  rows = math.ceil(len(series) / cols)
  fig, axes = pyplot().subplots(
      rows, cols, figsize=(3.6 * cols, 2.8 * rows + 0.4), dpi=DPI,
      squeeze=False, constrained_layout=True)
  for ax, (task, task_series) in zip(axes.flat, series.items()):
    draw(ax, task, task_series, colors)
  for ax in list(axes.flat)[len(series):]:
    ax.axis('off')
  methods = list(colors)
  handles = [lines.Line2D([], [], color=colors[m], lw=2) for m in methods]
  fig.legend(handles, methods, loc='outside lower center',
             ncol=min(len(methods), 4), fontsize=8)
  return fig


def save_figure(fig, stem):
  """Writes `stem`.png and .svg, cropped to everything drawn (titles, axis
  and tick labels, legends: none is cut off), closes the figure and
  returns the paths."""
  paths = []
  for ext in ('png', 'svg'):
    path = f'{stem}.{ext}'
    fig.savefig(path, dpi=DPI, bbox_inches='tight', pad_inches=0.05)
    paths.append(path)
  pyplot().close(fig)
  return paths


def make_figures(table, out, bins=30, max_frames=None, cols=4, reps=1000,
                 seed=0):
  """Writes one PNG and SVG per task and a grid of all tasks to `out`.

  table: {task: {method: [Run]}} (scores.collect). Returns the paths.
  """
  if not table:
    raise ValueError('No tasks to plot.')
  os.makedirs(out, exist_ok=True)
  methods = list(dict.fromkeys(m for t in table.values() for m in t))
  palette = pyplot().rcParams['axes.prop_cycle'].by_key()['color']
  colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
  series = {task: curves(m, bins, max_frames, reps, seed, task)
            for task, m in table.items()}
  paths = []
  for task, task_series in series.items():
    paths += save_figure(task_figure(task, task_series, colors),
                         os.path.join(out, task.replace('/', '_')))
  paths += save_figure(grid_figure(series, colors, cols),
                       os.path.join(out, 'grid'))
  return paths


def main(argv):
  del argv
  _, table = scores.collect(
      FLAGS.runs, FLAGS.reference, FLAGS.tasks,
      None if FLAGS.kind == 'all' else FLAGS.kind, FLAGS.label)
  paths = make_figures(table, FLAGS.out, FLAGS.bins, FLAGS.max_frames,
                       FLAGS.cols, FLAGS.reps, FLAGS.seed)
  print('\n'.join(paths))


if __name__ == '__main__':
  flags.mark_flag_as_required('out')
  app.run(main)
