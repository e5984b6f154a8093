"""Train DreamerV3: `python -m launch.train` runs the embedded default.

  python -m launch.train                     # CartPole-v1, 20k steps, ~1.5 h
  python -m launch.train --logdir=runs/walker \
      --gin_file=gin_configs/suites/dmc_proprio.gin \
      --gin_param="train.env='dmc:walker_walk'" --seed=1

Rerunning the same command with the same --logdir resumes from the last
checkpoint. The resolved gin config, including `train.seed`, is written to
<logdir>/config.gin (once the checkpoint, if any, accepted it). The seed is
--seed, else a `train.seed` binding, else 0.

The tf.distribute strategy is --strategy, else a `train.strategy` binding,
else auto; the CPU split --cpu_replicas, else `train.cpu_replicas`, else 1
(no split). A flag overrides the binding (unlike --seed, which must agree
with train.seed: the seed defines the experiment, the strategy does not)
and is bound in its place, so config.gin names what the run was given.

  python -m launch.train --strategy=mirrored --cpu_replicas=2   # 2 replicas, no GPU

Several machines: the same command on every worker, each with its
TF_CONFIG task (or as the tasks of a SLURM job step), trains one run with
MultiWorkerMirroredStrategy (`--strategy=multi_worker`, or auto in a
cluster; README "Many GPUs and machines", dreamer_tf/run/workers.py).

The run prints the resolved strategy, its replica count and devices, and
records them in run.json (dreamer_tf/run/distribute.py).

The config (bindings, their types, the seed, the env id) and the logdir
are checked before anything starts: a bad one ends the run with one line
naming it (launch/errors.py; --debug shows the traceback).
"""
import json
import os

from absl import app
from absl import flags
import gin

from dreamer_tf import envs
from dreamer_tf.run import distribute
from launch import common_flags  # noqa: F401  (--gin_file, --seed, ...)
from launch import errors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GIN = [os.path.join(ROOT, 'gin_configs', 'default.gin')]

FLAGS = flags.FLAGS


def make_logdir(logdir):
  """Creates the run directory (and its parents); UserError naming the
  path in the way, or the directory that is not writable, if it cannot."""
  if os.path.exists(logdir) and not os.path.isdir(logdir):
    raise errors.UserError(
        f'--logdir={logdir} is a file, not a directory: pass a new directory '
        '(or the --logdir of a run to resume).')
  try:
    os.makedirs(logdir, exist_ok=True)
  except OSError as e:
    parent = _existing_ancestor(logdir)
    if not os.path.isdir(parent):
      reason = f'{parent} is a file, so no directory can be made below it'
    else:
      reason = f'{parent} is not writable ({e.strerror})'
    raise errors.UserError(
        f'--logdir={logdir} cannot be created: {reason}. Pass a --logdir '
        'in a directory you can write to.') from e
  if not os.access(logdir, os.W_OK | os.X_OK):
    raise errors.UserError(
        f'--logdir={logdir} is not writable. Pass a --logdir you can write '
        'to (a new one, or make this one writable to resume it).')


def _existing_ancestor(path):
  """The longest prefix of `path` that exists."""
  path = os.path.abspath(path)
  while not os.path.lexists(path):
    path = os.path.dirname(path)
  return path


def bind_strategy(defaults):
  """Binds --strategy and --cpu_replicas, when given, over the gin
  bindings train.strategy and train.cpu_replicas; checks the result
  (`defaults`: train's {parameter: default}). Raises UserError, or
  StrategyError (a ConfigError) for a bad value."""
  with gin.unlock_config():
    if FLAGS['strategy'].present:
      gin.bind_parameter('train.strategy', FLAGS.strategy)
    if FLAGS['cpu_replicas'].present:
      if len(FLAGS.cpu_replicas) != 1:
        raise errors.UserError(
            f'--cpu_replicas={",".join(FLAGS.cpu_replicas)}: launch.train '
            'takes one count, e.g. --cpu_replicas=2 (a list is for '
            'launch.benchmark).')
      gin.bind_parameter('train.cpu_replicas', int(FLAGS.cpu_replicas[0]))
  distribute.check(_binding('train.strategy', defaults['strategy']),
                   _binding('train.cpu_replicas', defaults['cpu_replicas']))


def _binding(name, default=None):
  """The value gin binds to `name`, or `default` (not bound)."""
  try:
    return gin.query_parameter(name)
  except ValueError:
    return default


@errors.exits_on_user_error('launch.train')
def main(argv):
  del argv
  logdir = FLAGS.logdir
  if logdir:  # Before TensorFlow loads: a bad --logdir fails at once.
    make_logdir(logdir)
  with errors.user_input():  # Before TensorFlow loads, or too late.
    common_flags.start_compile_cache()
  # TensorFlow loads here, not at import: spawned env workers re-import this
  # main module and must stay free of TensorFlow (memory, and dm_control's
  # EGL renderer aborts in a process that has loaded it).
  from dreamer_tf import config  # pylint: disable=import-outside-toplevel
  from dreamer_tf.run import train as train_lib  # pylint: disable=import-outside-toplevel
  with errors.user_input():
    config.parse(FLAGS.gin_file or DEFAULT_GIN, FLAGS.gin_param)
    seed = config.resolve_seed(FLAGS.seed, FLAGS['seed'].present)
    bind_strategy(config.defaults(train_lib.train))
    env = _binding('train.env', envs.DEFAULT)
    # The env id's form and suite, and its action repeat (the workers
    # build the env itself).
    envs.frames_per_step(env, _binding('train.env_kwargs'),
                         _binding('train.frames_per_step'))
  if not logdir:
    logdir = os.path.join(
        'runs', f"{env.replace(':', '_').replace('/', '_')}-{seed}")
    make_logdir(logdir)
  # A resume this config may not do, or another run on this logdir, ends
  # with its message (launch/errors.py).
  print(json.dumps(train_lib.train(logdir, seed=seed)))


if __name__ == '__main__':
  app.run(main)
