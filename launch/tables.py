"""Score tables at a frame budget: per task, and aggregated over tasks.

  python -m launch.tables --runs='runs/atari100k_*' \
      --reference=../shared/reference/scores/atari100k-dreamerv3.json.gz \
      --window=390000,400000 --out=results/atari100k
  # An experiment sweep, by experiment x task, with logged metrics:
  python -m launch.tables --runs=runs/xp1 --window=90000,100000 \
      --metrics=loss/policy,loss/dyn --out=results/xp1_table

Per task and method: the mean over seeds of each seed's mean episode score
with frames in the window (spec §5.6), the standard deviation over seeds
(n - 1; none for one seed), its 95% bootstrap CI over seeds and the seed
count; reference runs use the same window. Atari tasks are also
human-normalised (random / human gamer scores, or --baselines); each
suite gets mean, median and IQM over its tasks with stratified bootstrap
CIs (Atari human-normalised, other suites raw). Prints Markdown and writes
<out>.md and <out>.csv.

Runs of an experiment sweep are grouped by experiment (their method)
unless --label is given; --methods keeps only the named methods. Each
--metrics name gets a table of the same statistics over seeds of every
run's mean of the values it logged in the window (section 'metric' in the
CSV; a run that logged none there has no value; a metric no run logs is
an error naming the closest logged ones).
"""
import os

from absl import app
from absl import flags
import numpy as np

from dreamer_tf.analysis import metrics as metrics_lib
from dreamer_tf.analysis import results
from dreamer_tf.analysis import scores
from launch import errors
from launch import score_flags  # noqa: F401  (--runs, --reference, ...)

flags.DEFINE_list('window', None, 'Frame window lo,hi, e.g. 390000,400000.')
flags.DEFINE_string('baselines', None,
                    'baselines.yaml for Atari bounds (default: built in).')
FLAGS = flags.FLAGS

COLUMNS = ['section', 'name', 'method', 'metric', 'value', 'std', 'ci_low',
           'ci_high', 'count', 'normalised']


def suite(task):
  """'atari_pong' -> 'atari'."""
  return task.split('_')[0]


def seed_stats(values, reps=2000, seed=0):
  """Statistics over seeds of per-seed `values`: mean (`value`), std (n - 1;
  NaN for one seed), 95% bootstrap CI of the mean and `count`."""
  values = np.asarray(values, np.float64)
  value, low, high = scores.bootstrap_ci(values, reps=reps, seed=seed)
  std = float(values.std(ddof=1)) if values.size > 1 else np.nan
  return dict(value=value, std=std, ci_low=low, ci_high=high,
              count=values.size)


def build(table, lo, hi, baselines=None, reps=2000, seed=0):
  """Rows (dicts with COLUMNS) of the task and aggregate tables.

  table: {task: {method: [Run]}} (scores.collect). Task rows: `value` =
  score at the budget, `count` = seeds with an episode in the window,
  `normalised` = human-normalised score (Atari tasks). Aggregate rows:
  name 'suite/statistic', `count` = tasks. Raises EmptyWindowError when no
  task of any method has an episode in the window.
  """
  baselines = scores.ATARI_GAMER if baselines is None else baselines
  rows, per_suite = [], {}
  for task, methods in table.items():
    for method, runs in methods.items():
      row = _empty_row('task', task, method)
      rows.append(row)
      try:
        _, values = scores.budget_score(runs, lo, hi)
      except scores.EmptyWindowError:
        continue
      row.update(seed_stats(values, reps, seed))
      name = suite(task)
      if name == 'atari' and task not in baselines:
        raise ValueError(
            f'No random/human scores for {task!r} in the baselines; add it '
            'to the --baselines file or leave --baselines unset (the '
            'built-in Atari-57 table).')
      if name == 'atari':
        row['normalised'] = float(scores.normalise(row['value'], task,
                                                   baselines))
        values = scores.normalise(values, task, baselines)
      per_suite.setdefault((name, method), {})[task] = values
  if not per_suite:
    raise scores.EmptyWindowError(
        f'No run of {sorted(table)} has an episode in [{lo:g}, {hi:g}] '
        'frames; check --window against the runs\' frames.')
  # Aggregates compare methods on the same tasks: those every method of
  # the suite has episodes for in the window.
  shared = {}
  for (name, _), per_task in per_suite.items():
    shared[name] = shared.get(name, set(per_task)) & set(per_task)
  for (name, method), per_task in per_suite.items():
    if not shared[name]:
      continue
    stats = scores.aggregate({t: per_task[t] for t in sorted(shared[name])},
                             reps=reps, seed=seed)
    kind = 'human_norm' if name == 'atari' else 'raw'
    for stat in ('mean', 'median', 'iqm'):
      value, low, high = stats[stat]
      rows.append(dict(_empty_row('aggregate', f'{name}/{kind}_{stat}',
                                  method), value=value, ci_low=low,
                       ci_high=high, count=stats['tasks']))
  return rows


def metric_rows(table, metrics, lo, hi, reps=2000, seed=0):
  """Rows (COLUMNS, section 'metric') of each of `metrics` per task and
  method: statistics over seeds of each seed's mean of the values it
  logged at frames in [lo, hi] (the scores' window; seeds without one are
  left out).

  table: {task: {method: [Run]}} (scores.collect); only our runs (run
  directories) count. Raises MissingMetricError when no run logs a metric,
  or none logs it in the window.
  """
  rows = []
  for name in metrics:
    series = metrics_lib.metric_table(table, name)  # Raises if none logs it.
    for task, methods in table.items():
      for method, runs in methods.items():
        if not any(os.path.isdir(r.source) for r in runs):
          continue
        values = [scores.window_mean(r, lo, hi)
                  for r in series.get(task, {}).get(method, [])]
        values = [v for v in values if np.isfinite(v)]
        row = dict(_empty_row('metric', task, method), metric=name)
        rows.append(row)
        if values:
          row.update(seed_stats(values, reps, seed))
    if not any(r['count'] for r in rows if r['metric'] == name):
      raise metrics_lib.MissingMetricError(
          f'The runs log {name!r} with no finite value at frames '
          f'[{lo:g}, {hi:g}] (--window).')
  return rows


def _empty_row(section, name, method):
  return dict(section=section, name=name, method=method, metric='',
              value=np.nan, std=np.nan, ci_low=np.nan, ci_high=np.nan,
              count=0, normalised=np.nan)


def _cell(row, percent=False, fmt='.1f'):
  """'value ± std [low, high] (count)' (no ± part without a std). A value
  that `fmt` would print as 0 (DeepSea's scores of -0.0007) gets three
  significant digits instead."""
  if not row or not np.isfinite(row['value']):
    return 'n/a'
  scale, unit = (100, '%') if percent else (1, '')
  value, std, low, high = (scale * row[k] for k in (
      'value', 'std', 'ci_low', 'ci_high'))
  if value and float(f'{value:{fmt}}') == 0:
    fmt = '.3g'
  spread = f' ± {std:{fmt}}{unit}' if np.isfinite(std) else ''
  return (f"{value:{fmt}}{unit}{spread} [{low:{fmt}}, {high:{fmt}}] "
          f"({row['count']})")


def markdown(rows, lo, hi):
  """Markdown tables: tasks x methods, aggregates x methods, and a tasks x
  methods table per metric of the 'metric' rows."""
  metric_names = list(dict.fromkeys(r['metric'] for r in rows
                                    if r['section'] == 'metric'))
  methods = list(dict.fromkeys(r['method'] for r in rows
                               if r['section'] != 'metric'))
  index = {(r['section'], r['name'], r['method'], r['metric']): r
           for r in rows}
  norm_methods = [m for m in methods if any(
      r['method'] == m and np.isfinite(r['normalised']) for r in rows)]
  lines = [f'Scores at frames [{lo:g}, {hi:g}]: mean ± std over seeds '
           '[95% bootstrap CI] (seeds); human-normalised in %.', '',
           '| Task | ' + ' | '.join(
               methods + [f'{m} (norm.)' for m in norm_methods]) + ' |',
           '|---' * (1 + len(methods) + len(norm_methods)) + '|']
  for task in dict.fromkeys(r['name'] for r in rows
                            if r['section'] == 'task'):
    cells = [_cell(index.get(('task', task, m, ''))) for m in methods]
    for m in norm_methods:
      row = index.get(('task', task, m, ''))
      norm = row['normalised'] if row else np.nan
      cells.append(f'{100 * norm:.1f}%' if np.isfinite(norm) else '—')
    lines.append(f'| {task} | ' + ' | '.join(cells) + ' |')
  names = list(dict.fromkeys(r['name'] for r in rows
                             if r['section'] == 'aggregate'))
  lines += ['', 'Aggregates over tasks [95% stratified bootstrap CI] '
            '(tasks).', '', '| Statistic | ' + ' | '.join(methods) + ' |',
            '|---' * (1 + len(methods)) + '|']
  for name in names:
    percent = 'human_norm' in name
    cells = [_cell(index.get(('aggregate', name, m, '')), percent)
             for m in methods]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  for metric in metric_names:
    own = [r for r in rows if r['metric'] == metric]
    own_methods = list(dict.fromkeys(r['method'] for r in own))
    lines += ['', f'`{metric}`, mean of each seed\'s values logged at '
              f'frames [{lo:g}, {hi:g}]: mean ± std over seeds [95% '
              'bootstrap CI] (seeds with a value there).', '',
              '| Task | ' + ' | '.join(own_methods) + ' |',
              '|---' * (1 + len(own_methods)) + '|']
    for task in dict.fromkeys(r['name'] for r in own):
      cells = [_cell(index.get(('metric', task, m, metric)), fmt='.4g')
               for m in own_methods]
      lines.append(f'| {task} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def to_csv(rows):
  """CSV text with the COLUMNS header (NaN written as empty)."""
  return results.to_csv(rows, COLUMNS)


def parse_window(values):
  """['390000', '400000'] -> (390000.0, 400000.0)."""
  if not values or len(values) != 2:
    raise ValueError(f'--window needs lo,hi frames, got {values}.')
  lo, hi = (float(v) for v in values)
  if lo > hi:
    raise ValueError(f'--window lo {lo:g} > hi {hi:g}.')
  return lo, hi


@errors.exits_on_user_error('launch.tables')
def main(argv):
  del argv
  # Tables only read the user's runs and flags: their ValueErrors are about
  # those (launch/errors.py).
  with errors.user_input():
    rows, text = make_tables(FLAGS.window)
  print(text)
  if FLAGS.out:
    score_flags.write_tables(FLAGS.out, text, to_csv(rows))


def make_tables(window):
  """(rows, Markdown) of the tables the flags ask for."""
  lo, hi = parse_window(window)
  table = score_flags.select(score_flags.collect_and_save())
  baselines = FLAGS.baselines and scores.load_baselines(FLAGS.baselines)
  rows = build(table, lo, hi, baselines or None, FLAGS.reps, FLAGS.seed)
  rows += metric_rows(table, metrics_lib.parse_names(FLAGS.metrics), lo,
                      hi, FLAGS.reps, FLAGS.seed)
  return rows, markdown(rows, lo, hi)

if __name__ == '__main__':
  flags.mark_flag_as_required('window')
  app.run(main)
