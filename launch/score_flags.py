"""Flags shared by launch/plot.py and launch/tables.py, defined once.

Both launchers import this module, so they can also be imported together
(the tests do) without absl's DuplicateFlagError.
"""
from absl import flags

from dreamer_tf.analysis import scores
from launch import common_flags  # noqa: F401  (--gin_file, --seed, ...)

flags.DEFINE_multi_string('runs', [], 'Glob(s) of run directories.')
flags.DEFINE_multi_string('reference', [], 'Official score file(s).')
flags.DEFINE_string('kind', 'train',
                    "Episodes of --runs: 'train', 'eval' or 'all'.")
flags.DEFINE_multi_string('label', [scores.METHOD],
                          'Method name of --runs, or one per --runs glob (e.g. grid points).')
flags.DEFINE_integer('reps', 2000, 'Bootstrap resamples.')
