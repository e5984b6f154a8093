"""Learning curves of our runs, with official reference runs overlaid.

  python -m launch.plot --runs='runs/atari100k_*' \
      --reference=../shared/reference/scores/atari100k-dreamerv3.json.gz \
      --out=results/curves
  # An experiment sweep: scores relative to the baseline, and two losses:
  python -m launch.plot --runs=runs/xp1 --normalize=baseline \
      --metrics=loss/dyn,loss/policy --methods=baseline,prioritized \
      --out=results/xp1_curves

Episode scores of every seed are binned on a common frame grid (x = env
frames, ticks as 250k, 1.5M); each method's curve is the mean over seeds
with a 95% bootstrap band, and each seed is a thin line of its colour.
Writes <out>/<task>.png and .svg per task and <out>/grid.png/.svg with all
tasks, cropped so that no label is cut off.

Runs of an experiment sweep are named by their experiment unless --label
is given; --methods keeps only the named methods. --normalize=<method>
divides every score of a task by that method's final score there (mean
over its seeds of the mean of each seed's last --final_episodes episodes);
it fails with a message when that score is not clearly positive (zero, ~0
or negative), since the ratio would then be meaningless.
--normalize_by=difference subtracts that score instead, for tasks whose
baseline scores <= 0 (DeepSea without the treasure, MountainCar).

--metrics plots logged metrics (metrics.jsonl) the same way, x = frames:
<out>/<metric>/<task>.png/.svg and grid.png/.svg, '/' in the metric's name
written as '_'. A metric's y axis is logarithmic when every value drawn is
positive and the largest is more than 100 times the smallest (it spans
more than two decades); otherwise it is linear.
"""
import math
import os
import typing

from absl import app
from absl import flags
import numpy as np

from dreamer_tf.analysis import metrics as metrics_lib
from dreamer_tf.analysis import scores
from launch import errors
from launch import score_flags  # noqa: F401  (--runs, --reference, ...)

flags.DEFINE_integer('bins', 30, 'Bins of the frame grid.')
flags.DEFINE_float('max_frames', None,
                   'Right end of the x axis (default: the last episode).')
flags.DEFINE_integer('cols', 4, 'Columns of the grid figure.')
flags.DEFINE_string('normalize', None,
                    'Method whose final score per task the scores are '
                    'relative to (e.g. baseline); how: --normalize_by.')
flags.DEFINE_enum('normalize_by', 'ratio', scores.NORMALIZE_MODES,
                  'ratio: score / the method\'s final score (which must '
                  'be clearly positive); difference: score - it (any '
                  'sign, e.g. DeepSea, MountainCar).')
FLAGS = flags.FLAGS

# A positive metric whose largest value is more than this many times its
# smallest is drawn on a log axis.
LOG_RANGE = 100.0


class Curve(typing.NamedTuple):
  """One method's curve on one task: bin centres, mean over seeds and its
  95% bootstrap band ([K] each), the seed count, and the seeds' own binned
  curves ([seeds, K]; None: not drawn)."""
  x: np.ndarray
  mean: np.ndarray
  low: np.ndarray
  high: np.ndarray
  seeds: int
  per_seed: typing.Optional[np.ndarray] = None


def curves(methods, bins=30, max_frames=None, reps=1000, seed=0, task='',
           what='episode scores', reduce='mean'):
  """{method: Curve} of one task.

  methods: {method: [Run]}; the grid spans [0, max_frames] (default: the
  last point of any run) in `bins` bins, x at the bin centres, each seed's
  points reduced per bin by `reduce` (`scores.bin_curve`). `what` names
  the points in the error for a task without any.
  """
  if max_frames is None:
    max_frames = scores.last_frame(methods)
    if max_frames <= 0:
      raise ValueError(f'No {what} to plot for task {task!r}: '
                       'its runs have none past frame 0.')
  edges = scores.frame_grid(max_frames, bins)
  centres = (edges[:-1] + edges[1:]) / 2
  result = {}
  for method, runs in methods.items():
    binned = scores.bin_runs(runs, edges, reduce)
    mean, low, high = scores.bootstrap_band(binned, reps=reps, seed=seed)
    result[method] = Curve(centres, mean, low, high, len(runs), binned)
  return result


def log_scale(series):
  """Whether a task's curves ({method: Curve}) want a log y axis: every
  finite value drawn (means, bands, seeds' curves) is positive and the
  largest exceeds LOG_RANGE times the smallest."""
  values = []
  for curve in series.values():
    curve = Curve(*curve)
    parts = [curve.mean, curve.low, curve.high]
    if curve.per_seed is not None:
      parts.append(np.ravel(curve.per_seed))
    values += [np.asarray(p, np.float64) for p in parts]
  values = np.concatenate(values) if values else np.zeros(0)
  values = values[np.isfinite(values)]
  return bool(values.size and values.min() > 0 and
              values.max() > LOG_RANGE * values.min())


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


def constant_level(curve):
  """The value of a curve whose mean and band hold one value over all its
  finite bins (a success rate of 0 throughout, say), else None."""
  values = np.concatenate([curve.mean, curve.low, curve.high])
  values = values[np.isfinite(values)]
  if values.size and np.all(values == values[0]):
    return float(values[0]) + 0.0  # -0.0 -> 0.0
  return None


def draw(ax, task, series, colors, ylabel='episode return', log=False):
  """One task's curves on a matplotlib axis: per method a thin line per
  seed, the mean and its band; a log y axis if `log`. Curves of one value
  throughout hide each other, so their line's label (the legend entry of
  a task figure; a grid's shared legend names the methods only) says the
  value."""
  from matplotlib import ticker  # pylint: disable=import-outside-toplevel
  for method, curve in series.items():
    x, mean, low, high, seeds, per_seed = Curve(*curve)
    color = colors[method]
    for seed_curve in [] if per_seed is None else per_seed:
      keep = np.isfinite(seed_curve)
      ax.plot(x[keep], seed_curve[keep], color=color, lw=0.6, alpha=0.35)
    keep = np.isfinite(mean)
    label = f'{method} ({seeds})'
    level = constant_level(Curve(*curve))
    if level is not None:
      label += f', {level:g} throughout'
    ax.plot(x[keep], mean[keep], color=color, lw=1.5, label=label)
    ax.fill_between(x[keep], low[keep], high[keep], color=color, alpha=0.2,
                    lw=0)
  if log:
    ax.set_yscale('log')
  ax.set_title(task, fontsize=10)
  ax.set_xlabel('env frames', fontsize=8)
  ax.set_ylabel(ylabel, fontsize=8)
  ax.tick_params(labelsize=7)
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(frames_label))
  ax.grid(alpha=0.3)


def pyplot():
  """matplotlib.pyplot on the Agg backend (files only, no display)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  return pyplot


def task_figure(task, series, colors, ylabel='episode return', log=False):
  """One task's curves with a legend of methods (and seed counts)."""
  fig, ax = pyplot().subplots(figsize=(4.5, 3.2), dpi=DPI,
                              constrained_layout=True)
  draw(ax, task, series, colors, ylabel, log)
  ax.legend(fontsize=7)
  return fig


def grid_figure(series, colors, cols=4, ylabel='episode return', logs=None):
  """All tasks' curves in a grid, one legend of methods below it; `logs`:
  {task: log y axis} (default: linear)."""
  from matplotlib import lines  # pylint: disable=import-outside-toplevel
  cols = max(1, min(cols, len(series)))
  rows = math.ceil(len(series) / cols)
  fig, axes = pyplot().subplots(
      rows, cols, figsize=(3.6 * cols, 2.8 * rows + 0.4), dpi=DPI,
      squeeze=False, constrained_layout=True)
  for ax, (task, task_series) in zip(axes.flat, series.items()):
    draw(ax, task, task_series, colors, ylabel, (logs or {}).get(task, False))
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


def colors_of(table):
  """{method: colour}, one per method of the table in first-seen order."""
  methods = list(dict.fromkeys(m for t in table.values() for m in t))
  palette = pyplot().rcParams['axes.prop_cycle'].by_key()['color']
  return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


def make_figures(table, out, bins=30, max_frames=None, cols=4, reps=1000,
                 seed=0, ylabel='episode return', log=False, colors=None,
                 what='episode scores', reduce='mean'):
  """Writes one PNG and SVG per task and a grid of all tasks to `out`.

  table: {task: {method: [Run]}} (scores.collect). log: True, False, or
  'auto' (per task, `log_scale`). colors: {method: colour} (default
  `colors_of(table)`). reduce: how a seed's points are binned
  (`scores.bin_curve`; 'last' for running maxima). Returns the paths.
  """
  if not table:
    raise ValueError('No tasks to plot.')
  os.makedirs(out, exist_ok=True)
  colors = colors or colors_of(table)
  series = {task: curves(m, bins, max_frames, reps, seed, task, what,
                         reduce)
            for task, m in table.items()}
  logs = {task: log_scale(s) if log == 'auto' else bool(log)
          for task, s in series.items()}
  paths = []
  for task, task_series in series.items():
    paths += save_figure(
        task_figure(task, task_series, colors, ylabel, logs[task]),
        os.path.join(out, task.replace('/', '_')))
  paths += save_figure(grid_figure(series, colors, cols, ylabel, logs),
                       os.path.join(out, 'grid'))
  return paths


def make_metric_figures(table, metrics, out, **kwargs):
  """make_figures of each logged metric of `metrics` (names, see
  dreamer_tf/analysis/metrics.py) into <out>/<metric>/ ('/' -> '_'), y axis
  log when `log_scale` says so. Colours follow the score figures'."""
  paths = []
  for name in metrics:
    paths += make_figures(
        metrics_lib.metric_table(table, name),
        os.path.join(out, name.replace('/', '_')), ylabel=name, log='auto',
        colors=colors_of(table), what=f'values of {name!r}', **kwargs)
  return paths


@errors.exits_on_user_error('launch.plot')
def main(argv):
  del argv
  # Plots only read the user's runs and flags: their ValueErrors are about
  # those (launch/errors.py).
  with errors.user_input():
    paths = make_plots()
  print('\n'.join(paths))


def make_plots():
  """The figures the flags ask for; returns their paths."""
  table = score_flags.collect_and_save(
      also=[FLAGS.normalize] if FLAGS.normalize else [])
  ylabel = 'episode return'
  if FLAGS.normalize:
    table = scores.relative_to(table, FLAGS.normalize, FLAGS.final_episodes,
                               FLAGS.normalize_by)
    sign = '/' if FLAGS.normalize_by == 'ratio' else '-'
    ylabel = f'episode return {sign} {FLAGS.normalize} final'
  table = score_flags.select(table)
  options = dict(bins=FLAGS.bins, max_frames=FLAGS.max_frames,
                 cols=FLAGS.cols, reps=FLAGS.reps, seed=FLAGS.seed)
  paths = make_figures(table, FLAGS.out, ylabel=ylabel, **options)
  paths += make_metric_figures(table, metrics_lib.parse_names(FLAGS.metrics),
                               FLAGS.out, **options)
  return paths


if __name__ == '__main__':
  flags.mark_flag_as_required('out')
  app.run(main)
