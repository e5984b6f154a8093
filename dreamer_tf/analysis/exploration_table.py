"""The hard-exploration table of a sweep: one row per task x method with
the found and solved fractions of seeds, the first success and the time
to solve, the final success rate, and on DeepSea the diagonal depth, the
episodes that reached each deep row and the right moves per episode
(launch/exploration.py makes it from run directories; the statistics
are dreamer_tf/analysis/exploration.py's).

`build` makes the rows from {task: {method: [scores.Run]}} of scores,
depths and right moves; `compare` adds, per method, Fisher's exact test of
its found and solved fractions against a reference method's; `markdown`
writes them as one table per task (and one of the reach counts);
`csv_table` gives the rows and columns of the CSV.
"""
import math

import numpy as np

from dreamer_tf.analysis import exploration
from dreamer_tf.envs.base import suggest

COLUMNS = ['task', 'method', 'seeds', 'episodes_min', 'found', 'found_low',
           'found_high', 'solved', 'solved_low', 'solved_high',
           'median_first_success', 'median_censored', 'first_success',
           'median_solved_at', 'median_solved_censored', 'solved_at',
           'final_rate', 'final_rate_low', 'final_rate_high',
           'median_deepest', 'deepest', 'right_moves', 'right_moves_seeds',
           'without_episodes']


def build(table, threshold, window, rate, reps=2000, seed=0, depths=None,
          moves=None, reach_rows=(), reach_episodes=None):
  """One row per task x method of {task: {method: [Run]}}; `depths`, the
  same of per-episode diagonal depths (launch/exploration.py
  `collect_depths`), adds the deepest row per seed and their median
  where it has the method, and per
  row r of `reach_rows` (default: `default_reach_rows` of the task's N)
  the episodes (of each seed's first `reach_episodes`, None: all) that
  reached at least row r (`reached_row<r>`: per seed; `reached_total`:
  {r: sum over seeds}; `reached_episodes`: the episodes counted per seed);
  `moves`, the same of right moves per episode (launch/exploration.py
  `collect_right_moves`), their mean over each seed's last `window`
  episodes and over those seeds."""
  rows = []
  for task, methods in table.items():
    for method, runs in methods.items():
      if not any(r.ys.size for r in runs):  # An arm that has just started.
        rows.append(dict(task=task, method=method, seeds=0,
                         without_episodes=' '.join(str(r.seed) for r in runs)))
        continue
      s = exploration.summary(runs, threshold, window, rate, reps, seed)
      extra = {}
      depth_runs = (depths or {}).get(task, {}).get(method)
      if depth_runs:  # Per seed in the order of the scores' seeds.
        d = exploration.depth_summary(depth_runs)
        by_seed = {str(r.seed): v for r, v in zip(depth_runs, d['deepest'])}
        extra = dict(median_deepest=d['median_deepest'], deepest=_per_seed(
            [by_seed.get(str(r.seed)) for r in runs if r.ys.size]))
        extra.update(_reached(task, runs, depth_runs, reach_rows,
                              reach_episodes))
      by_seed = {str(r.seed): float(np.mean(r.ys[-window:]))
                 for r in (moves or {}).get(task, {}).get(method, [])
                 if r.ys.size}
      if by_seed:  # Per seed in the order of the scores' seeds.
        extra.update(
            right_moves=float(np.mean(list(by_seed.values()))),
            right_moves_seeds=_per_seed(
                [None if str(r.seed) not in by_seed
                 else f'{by_seed[str(r.seed)]:.1f}'
                 for r in runs if r.ys.size]))
      rows.append(dict(
          task=task, method=method, seeds=s['seeds'],
          episodes_min=min(s['episodes']), found=s['found'] / s['seeds'],
          found_low=s['found_ci'][0], found_high=s['found_ci'][1],
          solved=s['solved'] / s['seeds'], solved_low=s['solved_ci'][0],
          solved_high=s['solved_ci'][1],
          median_first_success=s['median_first'],
          median_censored=s['median_censored'],
          first_success=_per_seed(s['first_success']),
          median_solved_at=s['median_solved_at'],
          median_solved_censored=s['median_solved_censored'],
          solved_at=_per_seed(s['solved_at']),
          final_rate=s['final_rate'], final_rate_low=s['final_rate_ci'][0],
          final_rate_high=s['final_rate_ci'][1],
          without_episodes=' '.join(map(str, s['without_episodes'])),
          **extra))
  return rows


def compare(rows, reference):
  """The rows with, per task, each other method's found and solved
  fractions tested against `reference`'s (`exploration.fisher_exact`,
  two-sided): `found_p`, `solved_p` and `compared_to`. A method without
  episodes yet gets none, and so does every method of a task where
  `reference` has none yet (`markdown` says so under its table).
  ValueError when `reference` has episodes on no task."""
  by_task = {}
  for r in rows:
    by_task.setdefault(r['task'], {})[r['method']] = r
  def has_episodes(task):
    return by_task[task].get(reference, {}).get('seeds', 0) > 0
  if not any(has_episodes(task) for task in by_task):
    methods = sorted({r['method'] for r in rows if r['seeds']})
    raise ValueError(
        f'Cannot compare with {reference!r}{suggest(reference, methods)}: '
        f'it has no run with episodes; the methods that have: {methods}.')
  out = []
  for r in rows:
    if (r['method'] == reference or not r['seeds']
        or not has_episodes(r['task'])):
      out.append(r)
      continue
    ref = by_task[r['task']][reference]
    p = {f'{name}_p': exploration.fisher_exact(
        _count(r, name), r['seeds'], _count(ref, name), ref['seeds'])
        for name in ('found', 'solved')}
    out.append(dict(r, compared_to=reference, **p))
  return out


def _count(row, name):
  """Seeds of the row that found (or solved) it."""
  return round(row[name] * row['seeds'])


def default_reach_rows(size):
  """Rows N // 2 - 1 to N - 1 of DeepSea N: the deeper half of the
  diagonal, where methods part."""
  return list(range(max(size // 2 - 1, 0), size))


def _reached(task, runs, depth_runs, reach_rows, reach_episodes):
  """The reach columns of one method's row (`build`): '-' for a seed
  without depths (or without an episode in them)."""
  size = exploration.deepsea_task_size(task)
  rows = list(reach_rows) or (default_reach_rows(size) if size else [])
  if not rows:  # Not DeepSea, and no rows asked for.
    return {}
  by_seed = {str(r.seed): r for r in depth_runs if r.ys.size}
  counts = {s: exploration.reach_counts(r, rows, reach_episodes)
            for s, r in by_seed.items()}
  seeds = [str(r.seed) for r in runs if r.ys.size]
  extra = {f'reached_row{row}': _per_seed(
      [counts[s][i] if s in counts else None for s in seeds])
           for i, row in enumerate(rows)}
  extra['reached_episodes'] = _per_seed(
      [min(by_seed[s].ys.size, reach_episodes or by_seed[s].ys.size)
       if s in by_seed else None for s in seeds])
  extra['reached_total'] = {row: sum(counts[s][i] for s in counts
                                     if s in seeds)
                            for i, row in enumerate(rows)}
  return extra


def _per_seed(values):
  """'154 - 2385': a value per seed, - for none."""
  return ' '.join('-' if v is None else str(v) for v in values)


def _median(value, censored):
  if math.isnan(value):
    return 'n/a'
  return f'>= {value:g}' if censored else f'{value:g}'


def markdown(rows, threshold, window, rate, reach_episodes=None):
  """The rows as one Markdown table per task, and one of the episodes
  that reached each row where the rows have them."""
  lines = [
      f'Success: episode score > {threshold:g}. Solved: success rate of the '
      f'last {window} episodes >= {rate:g} (a seed with fewer episodes is '
      'not solved; its final rate is over the episodes it has). Fractions '
      'of seeds with 95% Wilson intervals; first success in episodes, per '
      'seed (- never) and median over seeds (">=": a lower bound, a seed '
      'that never succeeded within its episodes could move it up); solved '
      f'at: the episode whose last {window} episodes first reached that '
      'rate, per seed and median (censored the same way); final '
      f'rate: last {window} episodes, mean over seeds [95% bootstrap CI].']
  if any('deepest' in r for r in rows):
    lines[0] += (' Deepest diagonal row: the deepest cell (r, r) an episode '
                 "reached, from the run's replay; median over seeds (per "
                 'seed, - without one).')
  if any('right_moves' in r for r in rows):
    lines[0] += (' Right moves: per episode (from its score), mean over '
                 f'the last {window} episodes of each seed and over seeds '
                 '(per seed, - without one).')
  reference = next((r['compared_to'] for r in rows if 'compared_to' in r),
                   None)
  if reference:
    lines[0] += (f' vs {reference}: two-sided p of Fisher\'s exact test '
                 f'that the method finds (solves) it as often as {reference} '
                 '(the smallest p seeds can give is that of all against '
                 'none: 0.33 at 2 seeds against 2, 0.10 at 3 against 3, '
                 '0.008 at 5 against 5).')
  for task in dict.fromkeys(r['task'] for r in rows):
    task_rows = [r for r in rows if r['task'] == task]
    # A column where any method has the values.
    deep = any('deepest' in r for r in task_rows)
    right = any('right_moves' in r for r in task_rows)
    versus = any('compared_to' in r for r in task_rows)
    lines += ['', f'### {task}', '',
              '| method | seeds | found | solved | first success: median '
              '(per seed) | solved at: median (per seed) | final success '
              'rate |' + (f' deepest diagonal row{_of(task)}: median (per '
                          'seed) |' if deep else '')
              + (f' right moves per episode, last {window}: mean (per '
                 'seed) |' if right else '')
              + (f' vs {reference}: p found, p solved |' if versus else ''),
              '|---|---|---|---|---|---|---|'
              + '---|' * (deep + right + versus)]
    for r in (r for r in task_rows if r['seeds']):
      first = _median(r['median_first_success'], r['median_censored'])
      solve = _median(r['median_solved_at'], r['median_solved_censored'])
      lines.append(
          f'| {r["method"]} | {r["seeds"]} | {_fraction(r, "found")} | '
          f'{_fraction(r, "solved")} | {first} ({r["first_success"]}) | '
          f'{solve} ({r["solved_at"]}) | '
          f'{r["final_rate"]:.2f} [{r["final_rate_low"]:.2f}, '
          f'{r["final_rate_high"]:.2f}] |'
          + (f' {_deepest(r)} |' if deep else '')
          + (f' {_right_moves(r)} |' if right else '')
          + (f' {_versus(r)} |' if versus else ''))
    if reference and not versus:
      lines += ['', f'No p-values: {reference} has no episode on {task} '
                'yet.']
    lines += _reach_table(task_rows, reach_episodes)
    left_out = [f'{r["method"]} (seeds {r["without_episodes"]})'
                for r in task_rows if r['without_episodes']]
    if left_out:
      lines += ['', 'Left out, no episode yet: ' + ', '.join(left_out) + '.']
  return '\n'.join(lines) + '\n'


def _reach_table(task_rows, reach_episodes):
  """Markdown lines of one task's reach counts ([] without any)."""
  reach_rows = sorted({row for r in task_rows
                       for row in r.get('reached_total', {})})
  if not reach_rows:
    return []
  which = ('all episodes' if reach_episodes is None else
           f'the first {reach_episodes} episodes of each seed')
  lines = ['', f'Episodes that reached at least diagonal row r ({which}): '
           'sum over seeds (per seed, - without depths); the episodes '
           'counted per seed.', '',
           '| method | seeds | episodes counted |'
           + ''.join(f' row {row} |' for row in reach_rows),
           '|---|---|---|' + '---|' * len(reach_rows)]
  for r in task_rows:
    if r['seeds'] and 'reached_total' in r:
      lines.append(f'| {r["method"]} | {r["seeds"]} | '
                   f'{r["reached_episodes"]} |' + ''.join(
          f' {r["reached_total"][row]} ({r[f"reached_row{row}"]}) |'
          for row in reach_rows))
  return lines


def _of(task):
  size = exploration.deepsea_task_size(task)
  return f' (of {size - 1})' if size else ''


def _deepest(row):
  if 'deepest' not in row:
    return 'n/a'
  return f'{row["median_deepest"]:g} ({row["deepest"]})'


def _right_moves(row):
  if 'right_moves' not in row:
    return 'n/a'
  return f'{row["right_moves"]:.1f} ({row["right_moves_seeds"]})'


def _versus(row):
  if 'compared_to' not in row:
    return '-'  # The reference itself.
  return f'{row["found_p"]:.2f}, {row["solved_p"]:.2f}'


def _fraction(row, name):
  return (f'{_count(row, name)}/{row["seeds"]} [{row[name + "_low"]:.2f}, '
          f'{row[name + "_high"]:.2f}]')


def csv_table(rows):
  """(rows, columns) of the CSV: COLUMNS and, where the rows have them,
  compared_to, found_p and solved_p (`compare`), then reached_episodes and
  reached_row<r> in row order (the per-seed columns; `reached_total` is
  left out, they hold it)."""
  versus = ['compared_to', 'found_p', 'solved_p'] * any(
      'compared_to' in r for r in rows)
  reach = sorted({k for r in rows for k in r if k.startswith('reached_row')},
                 key=lambda k: int(k[len('reached_row'):]))
  reach = ['reached_episodes'] * bool(reach) + reach
  return ([{k: v for k, v in r.items() if k != 'reached_total'}
           for r in rows], COLUMNS + versus + reach)
