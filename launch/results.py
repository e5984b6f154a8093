"""The results file of a sweep: one CSV row per run.

  python -m launch.results --root=runs/xp1 \
      --metrics=loss/policy,explore/intrinsic_weight --out=results/xp1

Writes <out>.csv (default <root>/results.csv) with a row per run below
--root: experiment, description, method, task, seed, logdir, status,
start, end, duration (s), frames, episodes, final_score (mean of the last
--final_episodes episodes of --kind), best_score (best mean of that many
consecutive episodes), the last logged value of each --metrics name, and
the run's gin config (`gin:<binding>` columns). What each column is read
from: dreamer_tf/analysis/results.py. Prints the path and a count of the
runs by status.
"""
import collections
import os

from absl import app
from absl import flags

from dreamer_tf.analysis import results
from dreamer_tf.analysis import scores
from launch import errors
from launch import score_flags  # noqa: F401  (--metrics, --kind, ...)

FLAGS = flags.FLAGS


def write(root, out=None, metrics=(), count=10, kind='train',
          label=scores.METHOD):
  """Reads the runs below `root` and writes <out>.csv; returns (path,
  rows). out defaults to <root>/results."""
  rows = results.read_results(root, metrics, count, kind, label)
  path = (out or os.path.join(root, 'results')) + '.csv'
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w') as f:
    f.write(results.to_csv(rows))
  return path, rows


@errors.exits_on_user_error('launch.results')
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.root:
    raise errors.UserError('--root is required (the --root of a sweep).')
  if FLAGS.save_scores:
    raise errors.UserError('launch.results writes the results CSV; '
                           '--save_scores is for launch.tables, plot and '
                           'exploration.')
  # The results file only reads the user's runs and flags: its ValueErrors
  # are about those (launch/errors.py).
  with errors.user_input():
    path, rows = write(FLAGS.root, FLAGS.out, FLAGS.metrics,
                       FLAGS.final_episodes, score_flags.kind(),
                       FLAGS.label[0])
  counts = collections.Counter(r['status'] for r in rows)
  print(f'{path}: {len(rows)} runs (' + ', '.join(
      f'{n} {s}' for s, n in sorted(counts.items())) + ').')


if __name__ == '__main__':
  app.run(main)
