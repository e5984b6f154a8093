"""Train DreamerV3: `python -m launch.train` runs the embedded default.

  python -m launch.train                     # CartPole-v1, 20k steps, ~1.5 h
  python -m launch.train --logdir=runs/walker \
      --gin_file=gin_configs/suites/dmc_proprio.gin \
      --gin_param="train.env='dmc:walker_walk'" --seed=1

Rerunning the same command with the same --logdir resumes from the last
checkpoint. The resolved gin config, including `train.seed`, is written to
<logdir>/config.gin (once the checkpoint, if any, accepted it). The seed is
--seed, else a `train.seed` binding, else 0.
"""
import json
import os
import sys

from absl import app
from absl import flags
import gin

from dreamer_tf import envs
from launch import common_flags  # noqa: F401  (--gin_file, --seed, ...)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GIN = [os.path.join(ROOT, 'gin_configs', 'default.gin')]

FLAGS = flags.FLAGS


def main(argv):
  del argv
  # TensorFlow loads here, not at import: spawned env workers re-import this
  # main module and must stay free of TensorFlow (memory, and dm_control's
  # EGL renderer aborts in a process that has loaded it).
  from dreamer_tf import config  # pylint: disable=import-outside-toplevel
  from dreamer_tf.run import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from dreamer_tf.run import lock as lock_lib  # pylint: disable=import-outside-toplevel
  from dreamer_tf.run import record as record_lib  # pylint: disable=import-outside-toplevel
  from dreamer_tf.run import train as train_lib  # pylint: disable=import-outside-toplevel
  config.parse(FLAGS.gin_file or DEFAULT_GIN, FLAGS.gin_param)
  try:
    seed = config.resolve_seed(FLAGS.seed, FLAGS['seed'].present)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  env = (gin.query_parameter('train.env') if config.is_bound('train.env')
         else envs.DEFAULT)
  logdir = FLAGS.logdir or os.path.join(
      'runs', f"{env.replace(':', '_').replace('/', '_')}-{seed}")
  try:
    result = train_lib.train(logdir, seed=seed)
  except (ckpt_lib.CheckpointError, record_lib.RunRecordError,
          lock_lib.RunLockedError) as e:
    # A resume this config may not do, or another run on this logdir.
    sys.exit(f'launch.train: {e}')
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
