"""Learning curves of our runs, with official reference runs overlaid.

  python -m launch.plot --runs='runs/atari100k_*' \
      --reference=../shared/reference/scores/atari100k-dreamerv3.json.gz \
      --out=results/curves

Episode scores of every seed are binned on a common frame grid (x = env
frames); each method's curve is the mean over seeds with a 95% bootstrap
band. Writes <out>/<task>.png and .svg per task and <out>/grid.png/.svg
with all tasks.
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


def draw(ax, task, series, colors):
  """One task's mean lines and bands on a matplotlib axis."""
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
  ax.ticklabel_format(axis='x', style='sci', scilimits=(0, 0))
  ax.grid(alpha=0.3)


def make_figures(table, out, bins=30, max_frames=None, cols=4, reps=1000,
                 seed=0):
  """Writes one PNG and SVG per task and a grid of all tasks to `out`.

  table: {task: {method: [Run]}} (scores.collect). Returns the paths.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  from matplotlib import lines  # pylint: disable=import-outside-toplevel
  from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel
  if not table:
    raise ValueError('No tasks to plot.')
  os.makedirs(out, exist_ok=True)
  methods = list(dict.fromkeys(m for t in table.values() for m in t))
  palette = plt.rcParams['axes.prop_cycle'].by_key()['color']
  colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
  series = {task: curves(m, bins, max_frames, reps, seed, task)
            for task, m in table.items()}
  paths = []

  def save(fig, name):
    for ext in ('png', 'svg'):
      path = os.path.join(out, f'{name}.{ext}')
      fig.savefig(path, dpi=120)
      paths.append(path)
    plt.close(fig)

  for task, task_series in series.items():
    fig, ax = plt.subplots(figsize=(4.5, 3.2), constrained_layout=True)
    draw(ax, task, task_series, colors)
    ax.legend(fontsize=7)
    save(fig, task.replace('/', '_'))
  cols = max(1, min(cols, len(series)))
  rows = math.ceil(len(series) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows + 0.4),
                           squeeze=False, constrained_layout=True)
  for ax, (task, task_series) in zip(axes.flat, series.items()):
    draw(ax, task, task_series, colors)
  for ax in list(axes.flat)[len(series):]:
    ax.axis('off')
  handles = [lines.Line2D([], [], color=colors[m], lw=2)
             for m in methods]
  fig.legend(handles, methods, loc='outside lower center',
             ncol=min(len(methods), 4), fontsize=8)
  save(fig, 'grid')
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
