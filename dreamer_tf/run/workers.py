"""The workers of a run agree on what all of them do, at the same iteration.

A multi-worker run (`run/distribute.py`, `multi_worker`) is one process per
worker, each with its own envs, replay shard, checkpoint directory and
loop. They stay in lockstep because every decision of the loop that leads
to a collective is taken identically on all of them:

* what follows from the counters (updates due under the train ratio,
  checkpoints every `save_every_steps`, the budget): the policy-step count
  is global (each iteration adds every worker's envs), so it is the same
  on every worker;
* what does not (training starts when every replay shard holds a batch
  share; a checkpoint is due by the clock; a stop was requested by SIGINT
  or SIGTERM to any worker): decided by a vote, an all-gather of a few
  integers, at agreed iterations (`Cluster.agree`);
* where to resume: the newest checkpoint that every worker has
  (`Cluster.common`);
* what the update's inputs depend on beyond the counters, at every update:
  the intrinsic reward's weight is the mean of the workers' schedules (a
  returns-driven schedule sees only its worker's episodes) and
  importance weights are divided by the largest over all shards (both
  in one all-gather, `Cluster.mean_and_max`), so every replica trains on
  the same objective.

A worker that dies is noticed by the others at their next collective
(TensorFlow names its task in the error; `Cluster.collective` turns that
into a `WorkerLostError` naming the worker and the fix). They stop without
a checkpoint: their state is one update ahead of the lost worker's, and a
rerun of the command on every worker resumes from the newest checkpoint all
of them have.

`Solo` is the one-process case: every vote is its own, and nothing
crosses a process.
"""
import contextlib
import re

import numpy as np

from dreamer_tf.run import failures

# Iterations between votes while no update is due (an update's iteration
# always votes).
VOTE_EVERY = 16
# Checkpoint positions exchanged per worker (more than `Checkpointer.keep`).
POSITIONS = 8

_TASK = re.compile(r'/job:(\w+)/replica:\d+/task:(\d+)')
# The peer a collective failed to reach (gRPC's "remote target"); the bare
# task pattern also matches this worker's own devices in op names.
_REMOTE_TASK = re.compile(r'remote target /job:(\w+)/replica:\d+/task:(\d+)')
WorkerLostError = failures.WorkerLostError


class Solo:
  """One process: no other worker to agree with."""
  worker, workers, is_chief = 0, 1, True

  def agree(self, stop, save):
    """(stop, save) decided for all workers: here, as asked."""
    return bool(stop), bool(save)

  def all_ready(self, ready):
    return bool(ready)

  def votes(self, iteration, updates_due):
    """Whether the loop votes at this iteration: always (it is free)."""
    del iteration, updates_due
    return True

  def common(self, positions):
    """The checkpoint position to resume: the newest one."""
    return max(positions) if positions else None

  def mean_and_max(self, mean_of, max_of):
    """(the mean of every worker's `mean_of`, the largest of every
    worker's `max_of`), floats: here, the two values."""
    return float(mean_of), float(max_of)

  def collective(self):
    return contextlib.nullcontext()


class Cluster(Solo):
  """The workers of a MultiWorkerMirroredStrategy (distribute.Distribution
  with workers > 1); votes are all-gathers over its replicas."""

  def __init__(self, distribution):
    self.strategy = distribution.strategy
    self.worker, self.workers = distribution.worker, distribution.workers
    self.is_chief = distribution.is_chief
    self.local = self.strategy.num_replicas_in_sync // self.workers
    # This process's own task, never named as the lost one.
    resolver = getattr(self.strategy, 'cluster_resolver', None)
    self.task = (None if resolver is None else
                 (str(resolver.task_type), str(resolver.task_id)))

  def gather(self, values, dtype=np.int64):
    """[workers, len(values)] `dtype`: every worker's `values`, by rank."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    values = np.asarray(values, dtype)
    with self.collective():
      per_replica = self.strategy.experimental_distribute_values_from_function(
          lambda ctx: tf.constant(values))
      gathered = self.strategy.gather(per_replica, axis=0).numpy()
    # One row per replica, worker-major; a worker's replicas sent the same.
    return gathered.reshape(self.workers, self.local, len(values))[:, 0]

  def agree(self, stop, save):
    """A stop or a checkpoint asked by any worker is done by all."""
    votes = self.gather([int(bool(stop)), int(bool(save))])
    return bool(votes[:, 0].any()), bool(votes[:, 1].any())

  def all_ready(self, ready):
    """True when every worker is ready (its replay holds a batch share)."""
    return bool(self.gather([int(bool(ready))]).all())

  def votes(self, iteration, updates_due):
    return bool(updates_due) or iteration % VOTE_EVERY == 0

  def mean_and_max(self, mean_of, max_of):
    """One all-gather for both: the mean over workers of `mean_of`
    (float64, summed by rank, so every worker gets the same bits) and the
    largest of their `max_of`."""
    rows = self.gather([mean_of, max_of], np.float64)
    return float(rows[:, 0].mean()), float(rows[:, 1].max())

  def common(self, positions):
    """The newest checkpoint position (policy steps) that every worker
    has, None when no worker has one. Raises CheckpointError when some
    have checkpoints and none is common."""
    # pylint: disable-next=import-outside-toplevel
    from dreamer_tf.run import checkpoint as ckpt_lib
    mine = sorted(positions)[-POSITIONS:]
    rows = self.gather(mine + [-1] * (POSITIONS - len(mine)))
    have = [set(int(p) for p in row if p >= 0) for row in rows]
    if not any(have):
      return None
    common = set.intersection(*have)
    if not common:
      listing = '; '.join(
          f'worker {w}: {sorted(h) or "none"}' for w, h in enumerate(have))
      raise ckpt_lib.CheckpointError(
          'The workers have no checkpoint in common (policy steps of each '
          f'worker\'s checkpoints: {listing}), so they cannot resume '
          'together. Restore the missing worker directories from a backup, '
          'or start a new --logdir.')
    return max(common)

  @contextlib.contextmanager
  def collective(self):
    """Turns TensorFlow's error for a lost peer into WorkerLostError."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    try:
      yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.AbortedError, tf.errors.CancelledError) as e:
      raise WorkerLostError(self.describe_loss(e)) from e

  def describe_loss(self, error):
    """The message for a collective that failed on a lost worker."""
    found = (_REMOTE_TASK.findall(str(error)) or _TASK.findall(str(error)))
    tasks = sorted({f'/job:{job}/task:{task}' for job, task in found
                    if (job, task) != self.task})
    who = (f'Worker {", ".join(tasks)}' if tasks else
           'Another worker')
    reason = str(error).strip().splitlines()
    reason = next((line.strip() for line in reason if 'aborted by' in line
                   or 'heartbeat' in line.lower()), reason[0] if reason
                  else type(error).__name__)
    return (f'{who} of this {self.workers}-worker run stopped responding '
            f'(worker {self.worker} saw: {reason}). This worker stops '
            'without a checkpoint. Once every worker is reachable, rerun '
            'the same command on all of them: they resume from the newest '
            'checkpoint every worker has.')
