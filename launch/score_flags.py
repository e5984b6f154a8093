"""Flags shared by launch/plot.py, launch/tables.py and launch/results.py,
defined once.

The launchers import this module, so they can also be imported together
(the tests do) without absl's DuplicateFlagError.
"""
import os

from absl import flags

from dreamer_tf.analysis import scores
from launch import common_flags  # noqa: F401  (--gin_file, --seed, ...)

flags.DEFINE_multi_string('runs', [], 'Glob(s) of run directories (a '
                          'directory of runs, e.g. a sweep root, stands for '
                          'every run below it).')
flags.DEFINE_multi_string('reference', [], 'Official score file(s).')
flags.DEFINE_string('kind', 'train',
                    "Episodes of --runs: 'train', 'eval' or 'all'.")
flags.DEFINE_multi_string('label', [scores.METHOD],
                          'Method name of --runs, or one per --runs glob (e.g. '
                          'grid points). Runs of an experiment sweep are named '
                          'by their experiment unless --label is given.')
flags.DEFINE_integer('reps', 2000, 'Bootstrap resamples.')
flags.DEFINE_list('metrics', [],
                  'Logged metrics (metrics.jsonl keys, or their tails after a '
                  "'/': loss/policy names train/loss/policy).")
flags.DEFINE_list('methods', [], 'Only these methods (default: all).')
flags.DEFINE_string('save_scores', None,
                    'Also write the selected runs\' episode scores to this '
                    'official-format score file (.json, or .json.gz '
                    'gzipped), which --reference reads back: the curves '
                    'without the run directories.')
flags.DEFINE_bool('finished_only', False,
                  'Read only the runs of --runs that have spent their budget '
                  '(done.json), e.g. with --save_scores while a sweep is '
                  'still running; a warning counts the others.')
flags.DEFINE_integer('final_episodes', 10,
                     'Episodes of a final score (mean of the last K) and of '
                     'a best score (best mean of K consecutive ones).',
                     lower_bound=1)


def kind():
  """--kind as the analysis functions take it (None: all episodes)."""
  return None if flags.FLAGS.kind == 'all' else flags.FLAGS.kind


def collect():
  """scores.collect of --runs, --reference, --tasks, --kind and --label:
  {task: {method: [Run]}} (all methods; see `select`)."""
  flag_values = flags.FLAGS
  _, table = scores.collect(
      flag_values.runs, flag_values.reference, flag_values.tasks, kind(),
      flag_values.label, by_experiment=not flag_values['label'].present,
      finished_only=flag_values.finished_only)
  return table


def select(table):
  """The table restricted to --methods (all without it)."""
  methods = flags.FLAGS.methods
  return scores.select_methods(table, methods) if methods else table


def collect_and_save(also=()):
  """`collect`, and with --save_scores the episode scores of its runs of
  --methods and of the methods `also` (e.g. a baseline the figures are
  normalised by) written to that file, as collected: before any
  normalisation. Returns the whole table."""
  table = collect()
  if flags.FLAGS.save_scores:
    keep = set(flags.FLAGS.methods or ()) | set(also)
    scores.save_reference(flags.FLAGS.save_scores, [
        run for task in table.values() for method, runs in task.items()
        if not flags.FLAGS.methods or method in keep for run in runs])
  return table


def write_tables(out, markdown, csv_text):
  """Writes <out>.md and <out>.csv (creating the folder); returns the
  paths."""
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  paths = [out + '.md', out + '.csv']
  for path, text in zip(paths, (markdown, csv_text)):
    with open(path, 'w') as f:
      f.write(text)
  return paths
