"""Flags that several launchers share, defined once.

absl flags live in one process-wide registry, so a flag defined by two
launchers could not be imported twice into one process (the tests import
them all). Each launcher imports this module for the flags below and
documents in its own docstring what they mean for it.
"""
from absl import flags

from dreamer_tf.run import MAX_SEED
from dreamer_tf.run import compile_cache
from dreamer_tf.run import distribute

flags.DEFINE_multi_string(
    'gin_file', None, 'Gin config file(s), applied in order (launch.train and '
    'launch.sweep default to gin_configs/default.gin).')
flags.DEFINE_multi_string('gin_param', [],
                          'Gin binding(s), e.g. RSSM.deter=512.')
flags.DEFINE_string('logdir', None, 'Run directory.')
flags.DEFINE_string('root', None, 'Sweep directory (launch.sweep: where the '
                    'runs go; launch.results: where they are read).')
flags.DEFINE_integer('seed', 0, 'Seed (of the run, the eval envs, or the '
                     'bootstrap).', lower_bound=0, upper_bound=MAX_SEED)
flags.DEFINE_list('tasks', [], 'Env ids / task keys, comma-separated.')
flags.DEFINE_string('out', None, 'Output path.')
flags.DEFINE_integer('batch_size', None, 'Batch size (launch.benchmark: '
                     'sequences per update, default 16; launch.export: fixed '
                     'batch dimension, default any).', lower_bound=1)
flags.DEFINE_bool('policy_mode', False, 'Act with the policy mode instead of '
                  'sampling (the paper samples).')
flags.DEFINE_bool('debug', False, 'Show the full Python traceback of a user '
                  'error (a bad flag, config, path or run directory) instead '
                  'of its one-line message (launch/errors.py).')
flags.DEFINE_enum(
    'strategy', None, distribute.STRATEGIES,
    'launch.train: the tf.distribute strategy (default: the train.strategy '
    'binding, else auto: a TF_CONFIG cluster or a SLURM job step of several '
    'tasks -> multi_worker; several local GPUs or --cpu_replicas>1 -> '
    'mirrored; else one device). dreamer_tf/run/distribute.py.')
flags.DEFINE_list(
    'cpu_replicas', None,
    'Split the CPU into N logical devices so that the mirrored strategy '
    'runs N replicas without GPUs (testing; they share the cores). '
    'launch.train: one N (default: the train.cpu_replicas binding, else 1: '
    'no split); launch.benchmark: the counts to measure, e.g. 1,2 '
    '(default 1).')
flags.register_validator(
    'cpu_replicas',
    lambda value: value is None or all(
        v.strip().isdigit() and int(v) >= 1 for v in value),
    message='--cpu_replicas takes integers >= 1, e.g. --cpu_replicas=2 '
    '(launch.benchmark: a list, e.g. 1,2).')
flags.DEFINE_string(
    'compile_cache', None,
    'Directory of the persistent XLA compile cache (launch.train, '
    'launch.evaluate, launch.export): a resumed or repeated run loads its '
    'compiled functions instead of compiling them again. Default: '
    f'${compile_cache.ENV_VAR}, else $XDG_CACHE_HOME/dreamer_tf/xla, else '
    '~/.cache/dreamer_tf/xla; --compile_cache= turns it off. '
    'dreamer_tf/run/compile_cache.py.')

FLAGS = flags.FLAGS


def enable_compile_cache():
  """Turns on the XLA compile cache that --compile_cache names; call it
  before TensorFlow loads. Returns the directory in use, or None (off, or
  the user's TF_XLA_FLAGS names one). A bad directory is a user error
  (CompileCacheError is a ValueError: call it inside errors.user_input())."""
  directory = FLAGS.compile_cache
  if directory is None:
    directory = compile_cache.default_directory()
  return compile_cache.enable(directory)


def start_compile_cache():
  """`enable_compile_cache`, and a line on stdout naming the cache in use
  (launch.train, evaluate and export; inside errors.user_input())."""
  cache = enable_compile_cache()
  if cache:
    print(compile_cache.describe(cache))
