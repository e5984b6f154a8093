"""Hard-exploration results of a sweep: first success, found and solved
fractions of seeds, success-rate curves (DeepSea's treasure).

  python -m launch.exploration --runs=runs/xp_deepsea --out=results/deepsea
  python -m launch.exploration --runs=runs/xp_deepsea \
      --methods=baseline,latent_fixed --last_episodes=200 --rate=0.9 \
      --out=results/deepsea_strict --compare_to=baseline

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
bootstrap CI]); with --compare_to=<method>, the two-sided p of Fisher's
exact test of each other method's found and solved fractions against that
method's (a difference in seeds that find the treasure; with 3 seeds per
arm no split goes below p = 0.10). The statistics are
dreamer_tf/analysis/exploration.py's, the table
dreamer_tf/analysis/exploration_table.py's.

Writes <out>.md, <out>.csv and the success-rate curves
<out>/success_rate/<task>.png/.svg and grid.png/.svg (launch/plot.py: per
method the mean over seeds with a 95% bootstrap band and a thin line per
seed; x = env frames, which for DeepSea N x N is N + 1 per episode: the
first observation and N moves), and in <out>/found/ the fraction of
seeds that have found a success by each frame (time to the first
success: a seed counts 0 until its first success and 1 from then to the
last frame of any run; one that never found one and ended early is left
out after its end, its future unknown).

DeepSea runs whose directory holds their replay also give the diagonal
depth of every episode (--depth, on by default): the deepest diagonal
cell (r, r) it reached, i.e. its opening run of right moves
(dreamer_tf/analysis/replay_moves.py). The treasure needs depth N - 1 and
one more right move, so where no seed finds it, depth tells how close
each method came and when. The tables add the deepest row per seed and
its median; <out>/diagonal_depth/ plots the deepest row reached so far.
Since the deepest row can be one lucky episode, a second table per task
counts the episodes that reached at least each of --reach_rows (default
rows N // 2 - 1 to N - 1), per seed and summed over seeds, in all
episodes or each seed's first --reach_episodes (e.g. those before another
seed's find), with the episodes counted per seed; the CSV has them as
columns reached_episodes and reached_row<r> (per seed).
--save_depths keeps the depths in a score file, as --save_scores keeps the
scores, and --depth_reference reads it back without the runs.

DeepSea scores also give the right moves of every episode (each costs
the run's move cost / N, --move_cost to override; dreamer_tf/analysis/
exploration.py `right_moves`): the
tables add their mean over the last --last_episodes episodes per seed and
over seeds, and <out>/right_moves/ plots them over training. A method
that goes right more often explores towards the treasure; one whose
count falls towards 0 is learning to avoid the move cost (the arms that
did fell to ~1 by 45k steps, docs/benchmarks/xp-deepsea.md).
--save_right_moves keeps them in a score file, so that `launch.tables
--reference=<file> --window=lo,hi` gives their mean over any window.
"""
import os
import warnings

from absl import app
from absl import flags
import numpy as np

from dreamer_tf.analysis import exploration
from dreamer_tf.analysis import exploration_table
from dreamer_tf.analysis import replay_moves
from dreamer_tf.analysis import results
from dreamer_tf.analysis import scores
from dreamer_tf.run import record as record_lib
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
flags.DEFINE_bool('depth', True, 'Also the diagonal depth of the episodes '
                  'of DeepSea runs that hold their replay.')
flags.DEFINE_string('save_depths', None, 'Also write the per-episode '
                    'diagonal depths to this score file (as --save_scores), '
                    'which --depth_reference reads back.')
flags.DEFINE_multi_string('depth_reference', [], 'Score files of per-episode '
                          'diagonal depths written by --save_depths.')
flags.DEFINE_list('reach_rows', [], 'Diagonal rows r (0..N-1) whose '
                  '"episodes that reached at least row r" the depth tables '
                  'count. Default: N // 2 - 1 to N - 1 of each DeepSea N.')
flags.DEFINE_integer('reach_episodes', None, 'Count --reach_rows in each '
                     'seed\'s first this many episodes (default: all).',
                     lower_bound=1)
flags.DEFINE_string('compare_to', None, 'A method (e.g. baseline) whose '
                    'found and solved fractions of seeds each other '
                    'method\'s are tested against per task: two-sided p of '
                    'Fisher\'s exact test (columns found_p, solved_p).')
flags.DEFINE_string('save_right_moves', None, 'Also write the right moves '
                    'per episode of the DeepSea runs to this score file '
                    '(as --save_scores): `launch.tables --reference=<it> '
                    '--window=lo,hi` gives their mean over any window.')
flags.DEFINE_float('move_cost', None, 'DeepSea\'s unscaled move cost '
                   '(DeepSeaEnv.unscaled_move_cost, > 0): a right move costs '
                   'this / N. Right moves are counted from the scores with '
                   'it. Default: each run\'s own (its run.json env_kwargs), '
                   f'else bsuite\'s {exploration.MOVE_COST:g}.')
FLAGS = flags.FLAGS


def parse_reach_rows(values, tasks):
  """The rows (sorted ints) of --reach_rows `values`, each a diagonal row
  of every DeepSea task of `tasks`; ValueError naming the first that is
  not."""
  rows = set()
  for value in values:
    try:
      rows.add(int(value))
    except ValueError:
      raise ValueError(f'--reach_rows={value!r}: use whole diagonal rows, '
                       'e.g. --reach_rows=6,9,12,13.') from None
  for task in tasks:
    size = exploration.deepsea_task_size(task)
    bad = [row for row in sorted(rows) if size and not 0 <= row < size]
    if bad:
      raise ValueError(
          f'--reach_rows: row {bad[0]} is not a diagonal row of {task} (0 '
          f'to {size - 1}). With several DeepSea sizes pick rows below the '
          'smallest N, or leave --reach_rows unset: each N gets its own '
          'rows N // 2 - 1 to N - 1.')
  return sorted(rows)


def collect_depths(table, references=()):
  """{task: {method: [Run]}} of per-episode diagonal depths (x: the frames
  the scores log, y: the depth): of every run of `table` on a DeepSea task
  whose directory holds its replay, and of the score files `references`
  (--save_depths) for the tasks, methods and seeds of `table` that no
  replay gave. A replay that cannot give them (a multi-machine run, a
  truncated replay, one that does not match the run's scores) is left out
  with a warning that names it."""
  depths, found = {}, set()
  for task, methods in table.items():
    size = exploration.deepsea_task_size(task)
    for method, runs in methods.items():
      for run in runs:
        replay = os.path.join(run.source, 'replay')
        if size is None or not os.path.isdir(replay):
          continue
        try:
          xs, ys = _run_depths(run, replay, size)
        except (ValueError, OSError) as e:
          warnings.warn(f'Diagonal depths of {run.source} left out: {e} '
                        '(--nodepth leaves out every run\'s.)')
          continue
        depths.setdefault(task, {}).setdefault(method, []).append(
            scores.Run(task, method, run.seed, xs, ys, run.source))
        found.add((task, method, str(run.seed)))
  for path in references:
    for run in scores.load_reference(path):
      seeds = {str(r.seed) for r in table.get(run.task, {}).get(run.method,
                                                                 [])}
      if (str(run.seed) in seeds
          and (run.task, run.method, str(run.seed)) not in found):
        depths.setdefault(run.task, {}).setdefault(run.method, []).append(run)
        found.add((run.task, run.method, str(run.seed)))
  return depths


def collect_right_moves(table, move_cost=None):
  """{task: {method: [Run]}} of the right moves per episode of every run
  of `table` on a DeepSea task (`exploration.right_moves`), with
  `move_cost`, or (None) each run's own cost: its run.json's env_kwargs
  `unscaled_move_cost`, else bsuite's. A run of the windy variant (env_kwargs
  deterministic=False), or whose scores are not those of deterministic
  DeepSea with the cost, is left out with a warning that names it."""
  moves = {}
  for task, methods in table.items():
    size = exploration.deepsea_task_size(task)
    if size is None:
      continue
    for method, runs in methods.items():
      for run in runs:
        kwargs = _env_kwargs(run)
        try:
          if not kwargs.get('deterministic', True):
            raise ValueError('it ran the windy variant (deterministic=False), '
                             'whose scores do not count right moves.')
          cost = move_cost or kwargs.get('unscaled_move_cost',
                                         exploration.MOVE_COST)
          counted = exploration.right_moves(run, size, cost)
        except ValueError as e:
          warnings.warn(f'Right moves of {run.source or run.seed} left '
                        f'out: {e}')
          continue
        moves.setdefault(task, {}).setdefault(method, []).append(counted)
  return moves


def _env_kwargs(run):
  """The env_kwargs of the run directory a scores.Run came from ({} for
  one read from a score file)."""
  if run.source and os.path.isfile(os.path.join(run.source, record_lib.FILE)):
    return record_lib.load(run.source).env_kwargs
  return {}


def _run_depths(run, replay, size):
  """(frames [E], depth [E]) float64 of one run's replay, checked against
  the episodes its scores log."""
  record = record_lib.load(run.source)
  if record.workers > 1:
    raise ValueError(f'a run on {record.workers} machines keeps one '
                     "machine's share of the steps in each replay")
  steps, depth = replay_moves.diagonal_depths(replay, size,
                                              envs=record.num_envs)
  xs = (steps * record.frames_per_step).astype(np.float64)
  if len(xs) > len(run.xs) or not np.array_equal(xs, run.xs[:len(xs)]):
    raise ValueError(
        f'its replay holds {len(xs)} finished episodes that do not match '
        f'the first of the {len(run.xs)} its scores log (a replay lost '
        'and refilled, or not this run\'s)')
  return xs, depth.astype(np.float64)


def make_results(out=''):
  """(rows, Markdown, figure paths) the flags ask for."""
  if FLAGS['final_episodes'].present:
    raise ValueError('launch.exploration takes --last_episodes; '
                     '--final_episodes is for launch.tables, plot and results.')
  if FLAGS.move_cost is not None and not FLAGS.move_cost > 0:
    raise ValueError(f'--move_cost must be > 0 (bsuite\'s is 0.01): right '
                     f'moves are counted from their cost; got '
                     f'{FLAGS.move_cost:g}.')
  reach = FLAGS.reach_rows or FLAGS.reach_episodes
  if reach and not FLAGS.depth:
    raise ValueError('--nodepth leaves out the diagonal depths, which '
                     '--reach_rows and --reach_episodes count: drop it.')
  table = score_flags.select(score_flags.collect_and_save())
  reach_rows = parse_reach_rows(FLAGS.reach_rows, table)
  depths = {}
  if FLAGS.depth:
    depths = collect_depths(table, FLAGS.depth_reference)
    if reach and not depths:
      raise ValueError('--reach_rows and --reach_episodes count episodes by '
                       'their diagonal depth, and no run gave depths: they '
                       'need DeepSea runs that hold their replay, or '
                       '--depth_reference.')
  elif FLAGS.depth_reference or FLAGS.save_depths:
    raise ValueError('--nodepth leaves out the diagonal depths; drop it to '
                     'use --depth_reference or --save_depths.')
  if FLAGS.save_depths:
    scores.save_reference(FLAGS.save_depths, [
        run for task in depths.values() for runs in task.values()
        for run in runs])
  moves = collect_right_moves(table, FLAGS.move_cost)
  if FLAGS.save_right_moves:
    if not moves:
      raise ValueError('--save_right_moves: no DeepSea run whose scores give '
                       'right moves (task deepsea_<N>, deterministic, cost '
                       '--move_cost).')
    scores.save_reference(FLAGS.save_right_moves, [
        run for task in moves.values() for runs in task.values()
        for run in runs])
  rows = exploration_table.build(
      table, FLAGS.threshold, FLAGS.last_episodes, FLAGS.rate, FLAGS.reps,
      FLAGS.seed, depths, moves, reach_rows, FLAGS.reach_episodes)
  if FLAGS.compare_to:
    try:
      rows = exploration_table.compare(rows, FLAGS.compare_to)
    except ValueError as e:
      raise ValueError(f'--compare_to={FLAGS.compare_to}: {e}') from None
  text = exploration_table.markdown(rows, FLAGS.threshold,
                                    FLAGS.last_episodes, FLAGS.rate,
                                    FLAGS.reach_episodes)
  paths = []
  if out:
    colors = plot.colors_of(table)
    rates = {task: {method: [exploration.successes(r, FLAGS.threshold)
                             for r in runs]
                    for method, runs in methods.items()}
             for task, methods in table.items()}
    paths = plot.make_figures(
        rates, os.path.join(out, 'success_rate'), reps=FLAGS.reps,
        seed=FLAGS.seed, ylabel='success rate', colors=colors)
    found = {}
    for task, methods in table.items():
      until = scores.last_frame(methods)  # Found seeds count to the end.
      found[task] = {method: [exploration.found_so_far(
          r, FLAGS.threshold, until) for r in runs]
                     for method, runs in methods.items()}
    paths += plot.make_figures(
        found, os.path.join(out, 'found'), reps=FLAGS.reps, seed=FLAGS.seed,
        ylabel='fraction of seeds that found it', colors=colors,
        reduce='last')
    if depths:
      deepest = {task: {method: [exploration.deepest_so_far(r) for r in runs]
                        for method, runs in methods.items()}
                 for task, methods in depths.items()}
      paths += plot.make_figures(
          deepest, os.path.join(out, 'diagonal_depth'), reps=FLAGS.reps,
          seed=FLAGS.seed, ylabel='deepest diagonal row so far',
          colors=colors, what='diagonal depths', reduce='last')
    if moves:
      paths += plot.make_figures(
          moves, os.path.join(out, 'right_moves'), reps=FLAGS.reps,
          seed=FLAGS.seed, ylabel='right moves per episode', colors=colors,
          what='right moves')
  return rows, text, paths


@errors.exits_on_user_error('launch.exploration')
def main(argv):
  del argv
  with errors.user_input():
    rows, text, paths = make_results(FLAGS.out)
  print(text)
  if FLAGS.out:
    table, columns = exploration_table.csv_table(rows)
    print('\n'.join(score_flags.write_tables(
        FLAGS.out, text, results.to_csv(table, columns)) + paths))


if __name__ == '__main__':
  app.run(main)
