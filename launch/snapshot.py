"""Copy each checkpoint of a training run aside as it is written.

  python -m launch.snapshot --logdir=runs/walker &   # beside launch.train
  python -m launch.evaluate --logdir=runs/walker/snapshots/s00040000 --novideo
  python -m launch.probe_deepsea --logdirs='runs/deepsea/snapshots/s*'

A run keeps only its newest 2 checkpoints. This polls the run every
--every_seconds and copies its newest valid checkpoint to
<out>/s<policy steps> (dreamer_tf/run/snapshots.py), a run directory of
its own that the evaluation and probe launchers read; it runs until
interrupted, or makes one pass with --once. Start it when the run starts:
a checkpoint replaced before it is copied is not recoverable.
--priorities also copies the step priorities of the replay save each
checkpoint names (replay_priorities.npz, 4 bytes per replay step), which
launch.probe_deepsea reads: what prioritized replay favoured, and when.
"""
import time

from absl import app
from absl import flags

from dreamer_tf.run import snapshots
# --logdir, --out (default <logdir>/snapshots), --debug:
from launch import common_flags  # pylint: disable=unused-import
from launch import errors

flags.DEFINE_integer('every_seconds', 60, 'Seconds between polls.',
                     lower_bound=1)
flags.DEFINE_bool('once', False, 'Copy the newest checkpoint (if new) and '
                  'exit.')
flags.DEFINE_bool('priorities', False, 'Also copy the step priorities of '
                  "the checkpoint's replay save (replay_priorities.npz).")
flags.mark_flag_as_required('logdir')
FLAGS = flags.FLAGS


@errors.exits_on_user_error('launch.snapshot')
def main(argv):
  del argv
  out = FLAGS.out or f'{FLAGS.logdir.rstrip("/")}/snapshots'
  with errors.user_input():
    snapshots.check_run_dir(FLAGS.logdir)
  try:
    while True:
      path = snapshots.copy_newest(FLAGS.logdir, out, FLAGS.priorities)
      if path:
        print(time.strftime('%H:%M:%S'), path, flush=True)
      if FLAGS.once:
        return
      time.sleep(FLAGS.every_seconds)
  except KeyboardInterrupt:  # Ctrl-C ends it; a partial copy is a .tmp
    return                   # directory that the next run removes.


if __name__ == '__main__':
  app.run(main)
