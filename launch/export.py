"""Export a trained run's policy as a TensorFlow SavedModel.

  python -m launch.export --logdir=runs/cartpole --out=exported/cartpole
  python -m launch.export --logdir=runs/cartpole --out=exported/mode --policy_mode
  saved_model_cli show --dir=exported/cartpole --all

Reads <logdir>/config.gin and the newest checkpoint; see
dreamer_tf/run/export.py for the signatures (serving_default,
initial_state) and the loaded object's policy / initial_state / metadata
functions. Prints the metadata JSON.

--out must be a new or empty directory, or a previous export (it is
written over); --overwrite writes into any other directory too (its other
files are kept).
"""
import json

from absl import app
from absl import flags

from launch import common_flags  # --gin_file, --seed, ...
from launch import errors

flags.DEFINE_bool('overwrite', False, 'Write the SavedModel into --out even '
                  'if it holds other files than a previous export.')
flags.mark_flags_as_required(['logdir', 'out'])
FLAGS = flags.FLAGS


@errors.exits_on_user_error('launch.export')
def main(argv):
  del argv
  with errors.user_input():  # Before TensorFlow loads, or too late.
    common_flags.start_compile_cache()
  from dreamer_tf.run import export  # pylint: disable=import-outside-toplevel
  module = export.export_run(FLAGS.logdir, FLAGS.out, mode=FLAGS.policy_mode,
                             batch_size=FLAGS.batch_size,
                             overwrite=FLAGS.overwrite)
  print(json.dumps(dict(module.describe(), out=FLAGS.out)))


if __name__ == '__main__':
  app.run(main)
