"""Flags that several launchers share, defined once.

absl flags live in one process-wide registry, so a flag defined by two
launchers could not be imported twice into one process (the tests import
them all). Each launcher imports this module for the flags below and
documents in its own docstring what they mean for it.
"""
from absl import flags

flags.DEFINE_multi_string(
    'gin_file', None, 'Gin config file(s), applied in order (launch.train and '
    'launch.sweep default to gin_configs/default.gin).')
flags.DEFINE_multi_string('gin_param', [],
                          'Gin binding(s), e.g. RSSM.deter=512.')
flags.DEFINE_string('logdir', None, 'Run directory.')
flags.DEFINE_string('root', None, 'Sweep directory (launch.sweep: where the '
                    'runs go; launch.results: where they are read).')
flags.DEFINE_integer('seed', 0, 'Seed (of the run, the eval envs, or the '
                     'bootstrap).')
flags.DEFINE_list('tasks', [], 'Env ids / task keys, comma-separated.')
flags.DEFINE_string('out', None, 'Output path.')
flags.DEFINE_integer('batch_size', None, 'Batch size (launch.benchmark: '
                     'sequences per update, default 16; launch.export: fixed '
                     'batch dimension, default any).')
flags.DEFINE_bool('policy_mode', False, 'Act with the policy mode instead of '
                  'sampling (the paper samples).')
