"""Score tables at a frame budget: per task, and aggregated over tasks.

  python -m launch.tables --runs='runs/atari100k_*' \
      --reference=../shared/reference/scores/atari100k-dreamerv3.json.gz \
      --window=390000,400000 --out=results/atari100k

Per task and method: the mean over seeds of each seed's mean episode score
with frames in the window (spec §5.6), its 95% bootstrap CI over seeds and
the seed count; reference runs use the same window. Atari tasks are also
human-normalised (random / human gamer scores, or --baselines); each
suite gets mean, median and IQM over its tasks with stratified bootstrap
CIs (Atari human-normalised, other suites raw). Prints Markdown and writes
<out>.md and <out>.csv.
"""
import csv
import io
import os

from absl import app
from absl import flags
import numpy as np

from dreamer_tf.analysis import scores
from launch import score_flags  # noqa: F401  (--runs, --reference, ...)

flags.DEFINE_list('window', None, 'Frame window lo,hi, e.g. 390000,400000.')
flags.DEFINE_string('baselines', None,
                    'baselines.yaml for Atari bounds (default: built in).')
FLAGS = flags.FLAGS

COLUMNS = ['section', 'name', 'method', 'value', 'ci_low', 'ci_high',
           'count', 'normalised']


def suite(task):
  """'atari_pong' -> 'atari'."""
  return task.split('_')[0]


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
      row = dict(section='task', name=task, method=method, value=np.nan,
                 ci_low=np.nan, ci_high=np.nan, count=0, normalised=np.nan)
      rows.append(row)
      try:
        _, values = scores.budget_score(runs, lo, hi)
      except scores.EmptyWindowError:
        continue
      row['value'], row['ci_low'], row['ci_high'] = scores.bootstrap_ci(
          values, reps=reps, seed=seed)
      row['count'] = values.size
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
      rows.append(dict(section='aggregate', name=f'{name}/{kind}_{stat}',
                       method=method, value=value, ci_low=low,
                       ci_high=high, count=stats['tasks'],
                       normalised=np.nan))
  return rows


def _cell(row, percent=False):
  if not row or not np.isfinite(row['value']):
    return 'n/a'
  scale, unit = (100, '%') if percent else (1, '')
  value, low, high = (scale * row[k] for k in ('value', 'ci_low', 'ci_high'))
  return f"{value:.1f}{unit} [{low:.1f}, {high:.1f}] ({row['count']})"


def markdown(rows, lo, hi):
  """Two Markdown tables: tasks x methods, and aggregates x methods."""
  methods = list(dict.fromkeys(r['method'] for r in rows))
  index = {(r['section'], r['name'], r['method']): r for r in rows}
  norm_methods = [m for m in methods if any(
      r['method'] == m and np.isfinite(r['normalised']) for r in rows)]
  lines = [f'Scores at frames [{lo:g}, {hi:g}]: mean over seeds '
           '[95% bootstrap CI] (seeds); human-normalised in %.', '',
           '| Task | ' + ' | '.join(
               methods + [f'{m} (norm.)' for m in norm_methods]) + ' |',
           '|---' * (1 + len(methods) + len(norm_methods)) + '|']
  for task in dict.fromkeys(r['name'] for r in rows
                            if r['section'] == 'task'):
    cells = [_cell(index.get(('task', task, m))) for m in methods]
    for m in norm_methods:
      row = index.get(('task', task, m))
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
    cells = [_cell(index.get(('aggregate', name, m)), percent)
             for m in methods]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def to_csv(rows):
  """CSV text with the COLUMNS header (NaN written as empty)."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, COLUMNS, lineterminator='\n')
  writer.writeheader()
  for row in rows:
    writer.writerow({k: ('' if isinstance(v, float) and not np.isfinite(v)
                         else v) for k, v in row.items()})
  return buffer.getvalue()


def parse_window(values):
  """['390000', '400000'] -> (390000.0, 400000.0)."""
  if not values or len(values) != 2:
    raise ValueError(f'--window needs lo,hi frames, got {values}.')
  lo, hi = (float(v) for v in values)
  if lo > hi:
    raise ValueError(f'--window lo {lo:g} > hi {hi:g}.')
  return lo, hi


def main(argv):
  del argv
  lo, hi = parse_window(FLAGS.window)
  _, table = scores.collect(
      FLAGS.runs, FLAGS.reference, FLAGS.tasks,
      None if FLAGS.kind == 'all' else FLAGS.kind, FLAGS.label)
  baselines = FLAGS.baselines and scores.load_baselines(FLAGS.baselines)
  rows = build(table, lo, hi, baselines or None, FLAGS.reps, FLAGS.seed)
  text = markdown(rows, lo, hi)
  print(text)
  if FLAGS.out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out + '.md', 'w') as f:
      f.write(text)
    with open(FLAGS.out + '.csv', 'w') as f:
      f.write(to_csv(rows))


if __name__ == '__main__':
  flags.mark_flag_as_required('window')
  app.run(main)
