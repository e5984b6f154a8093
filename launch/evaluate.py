"""Evaluate a trained run: N episodes, scores, summary and a video.

  python -m launch.evaluate --logdir=runs/cartpole --episodes=10
  python -m launch.evaluate --logdir=runs/walker --policy_mode --num_envs=4 \
      --outdir=runs/walker/eval_mode --novideo

Reads <logdir>/config.gin and the newest checkpoint in <logdir>/ckpt; writes
scores.jsonl, summary.json and video.mp4 (the first episode) into --outdir
(default <logdir>/eval) and prints the summary JSON.
"""
import json

from absl import app
from absl import flags

from launch import common_flags  # --gin_file, --seed, ...
from launch import errors

flags.DEFINE_integer('episodes', 10, 'Episodes to run.', lower_bound=1)
flags.DEFINE_integer('num_envs', 1, 'Env worker processes.', lower_bound=1)
flags.DEFINE_string('outdir', None, 'Output directory (default <logdir>/eval).')
flags.DEFINE_bool('video', True, 'Record the first episode.')
flags.mark_flag_as_required('logdir')
FLAGS = flags.FLAGS


@errors.exits_on_user_error('launch.evaluate')
def main(argv):
  del argv
  with errors.user_input():  # Before TensorFlow loads, or too late.
    common_flags.start_compile_cache()
  from dreamer_tf.run import evaluate  # pylint: disable=import-outside-toplevel
  summary = evaluate.evaluate(
      FLAGS.logdir, episodes=FLAGS.episodes, mode=FLAGS.policy_mode,
      num_envs=FLAGS.num_envs, video=FLAGS.video, seed=FLAGS.seed,
      outdir=FLAGS.outdir)
  print(json.dumps(summary))


if __name__ == '__main__':
  app.run(main)
