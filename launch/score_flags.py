"""Flags shared by launch/plot.py and launch/tables.py, defined once.

Both launchers import this module, so they can also be imported together
(the tests do) without absl's DuplicateFlagError.
"""
from absl import flags

from dreamer_tf import scores

flags.DEFINE_multi_string('runs', [], 'Glob(s) of run directories.')
flags.DEFINE_multi_string('reference', [], 'Official score file(s).')
flags.DEFINE_list('tasks', [],
                  'Tasks (env ids or keys; default: those of --runs, else all).')
flags.DEFINE_string('kind', 'train',
                    "Episodes of --runs: 'train', 'eval' or 'all'.")
flags.DEFINE_multi_string('label', [scores.METHOD],
                          'Method name of --runs, or one per --runs glob (e.g. grid points).')
flags.DEFINE_integer('reps', 2000, 'Bootstrap resamples.')
flags.DEFINE_integer('seed', 0, 'Bootstrap seed.')
flags.DEFINE_string('out', None,
                    'Output: figure directory (plot.py), file prefix (tables.py).')
