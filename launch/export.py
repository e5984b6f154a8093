"""Export a trained run's policy as a TensorFlow SavedModel.

  python -m launch.export --logdir=runs/cartpole --out=exported/cartpole
  python -m launch.export --logdir=runs/cartpole --out=exported/mode --policy_mode
  saved_model_cli show --dir=exported/cartpole --all

Reads <logdir>/config.gin and the newest checkpoint; see dreamer_tf/export.py
for the signatures (serving_default, initial_state) and the loaded object's
policy / initial_state / metadata functions. Prints the metadata JSON.
"""
import json

from absl import app
from absl import flags

from launch import common_flags  # noqa: F401  (--gin_file, --seed, ...)

flags.mark_flags_as_required(['logdir', 'out'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from dreamer_tf.run import export  # pylint: disable=import-outside-toplevel
  module = export.export_run(FLAGS.logdir, FLAGS.out, mode=FLAGS.policy_mode,
                             batch_size=FLAGS.batch_size)
  print(json.dumps(dict(module.describe(), out=FLAGS.out)))


if __name__ == '__main__':
  app.run(main)
