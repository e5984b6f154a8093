"""Hard-exploration results of a sweep: first success, found and solved
fractions of seeds, success-rate curves (DeepSea's treasure).

  python -m launch.exploration --runs=runs/xp_deepsea --out=results/deepsea
  python -m launch.exploration --runs=runs/xp_deepsea --methods=baseline,latent_fixed \
      --last_episodes=200 --rate=0.9 --out=results/deepsea_strict

Per task and method (runs of an experiment sweep are named by their
experiment unless --label is given): seeds; episodes to the first success
(episode score > --threshold) per seed and their median over seeds (">= N"
when a seed that never succeeded could move it up); the fraction
of seeds that found a success and that solved the task (success rate of
their last --last_episodes episodes >= --rate), each with a 95% Wilson interval;
the episode at which each seed's trailing --last_episodes first reached
--rate ("solved at": the time to solve, where a first success may be luck)
and their median, censored like the first success;
the final success rate (last --last_episodes episodes, mean over seeds [95%
bootstrap CI]). See dreamer_tf/analysis/exploration.py.

Writes <out>.md, <out>.csv and the success-rate curves
<out>/success_rate/<task>.png/.svg and grid.png/.svg (launch/plot.py: per
method the mean over seeds with a 95% bootstrap band and a thin line per
seed; x = env frames, which for DeepSea N x N is N per episode).
"""
import math
import os

from absl import app
from absl import flags

from dreamer_tf.analysis import exploration
from dreamer_tf.analysis import results
from launch import errors
from launch import plot
from launch import score_flags  # noqa: F401  (--runs, --methods, ...)

flags.DEFINE_float('threshold', exploration.THRESHOLD,
                   'An episode with a score above this succeeded.')
flags.DEFINE_integer('last_episodes', exploration.WINDOW,
                     'Last episodes of a run that decide `solved` and the '
                     'final success rate.', lower_bound=1)
flags.DEFINE_float('rate', exploration.RATE,
                   'Success rate over the last --last_episodes episodes that '
                   'counts as solved.', lower_bound=0.0, upper_bound=1.0)
FLAGS = flags.FLAGS

COLUMNS = ['task', 'method', 'seeds', 'episodes_min', 'found', 'found_low',
           'found_high', 'solved', 'solved_low', 'solved_high',
           'median_first_success', 'median_censored', 'first_success',
           'median_solved_at', 'median_solved_censored', 'solved_at',
           'final_rate', 'final_rate_low', 'final_rate_high',
           'without_episodes']


def build(table, threshold, window, rate, reps=2000, seed=0):
  """One row per task x method of {task: {method: [Run]}}."""
  rows = []
  for task, methods in table.items():
    for method, runs in methods.items():
      if not any(r.ys.size for r in runs):  # An arm that has just started.
        rows.append(dict(task=task, method=method, seeds=0,
                         without_episodes=' '.join(str(r.seed) for r in runs)))
        continue
      s = exploration.summary(runs, threshold, window, rate, reps, seed)
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
          without_episodes=' '.join(map(str, s['without_episodes']))))
  return rows


def _per_seed(episodes):
  """'154 - 2385': an episode number per seed, - for never."""
  return ' '.join('-' if e is None else str(e) for e in episodes)


def _median(value, censored):
  if math.isnan(value):
    return 'n/a'
  return f'>= {value:g}' if censored else f'{value:g}'


def markdown(rows, threshold, window, rate):
  """The rows as one Markdown table per task."""
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
  for task in dict.fromkeys(r['task'] for r in rows):
    lines += ['', f'### {task}', '',
              '| method | seeds | found | solved | first success: median '
              '(per seed) | solved at: median (per seed) | final success '
              'rate |',
              '|---|---|---|---|---|---|---|']
    task_rows = [r for r in rows if r['task'] == task]
    for r in (r for r in task_rows if r['seeds']):
      first = _median(r['median_first_success'], r['median_censored'])
      solve = _median(r['median_solved_at'], r['median_solved_censored'])
      lines.append(
          f'| {r["method"]} | {r["seeds"]} | {_fraction(r, "found")} | '
          f'{_fraction(r, "solved")} | {first} ({r["first_success"]}) | '
          f'{solve} ({r["solved_at"]}) | '
          f'{r["final_rate"]:.2f} [{r["final_rate_low"]:.2f}, '
          f'{r["final_rate_high"]:.2f}] |')
    left_out = [f'{r["method"]} (seeds {r["without_episodes"]})'
                for r in task_rows if r['without_episodes']]
    if left_out:
      lines += ['', 'Left out, no episode yet: ' + ', '.join(left_out) + '.']
  return '\n'.join(lines) + '\n'


def _fraction(row, name):
  count = round(row[name] * row['seeds'])
  return (f'{count}/{row["seeds"]} [{row[name + "_low"]:.2f}, '
          f'{row[name + "_high"]:.2f}]')


def make_results(out=''):
  """(rows, Markdown, figure paths) the flags ask for."""
  if FLAGS['final_episodes'].present:
    raise ValueError('launch.exploration takes --last_episodes; '
                     '--final_episodes is for launch.tables, plot and results.')
  table = score_flags.select(score_flags.collect_and_save())
  rows = build(table, FLAGS.threshold, FLAGS.last_episodes, FLAGS.rate, FLAGS.reps,
               FLAGS.seed)
  text = markdown(rows, FLAGS.threshold, FLAGS.last_episodes, FLAGS.rate)
  paths = []
  if out:
    rates = {task: {method: [exploration.successes(r, FLAGS.threshold)
                             for r in runs]
                    for method, runs in methods.items()}
             for task, methods in table.items()}
    paths = plot.make_figures(
        rates, os.path.join(out, 'success_rate'), reps=FLAGS.reps,
        seed=FLAGS.seed, ylabel='success rate',
        colors=plot.colors_of(table))
  return rows, text, paths


@errors.exits_on_user_error('launch.exploration')
def main(argv):
  del argv
  with errors.user_input():
    rows, text, paths = make_results(FLAGS.out)
  print(text)
  if FLAGS.out:
    print('\n'.join(score_flags.write_tables(
        FLAGS.out, text, results.to_csv(rows, COLUMNS)) + paths))


if __name__ == '__main__':
  app.run(main)
