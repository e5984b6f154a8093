"""The training loop: collect, train by ratio, evaluate, report, log.

Spec §4.1-§4.2, §8.13. Every iteration the env driver steps each worker
once with the compiled policy (its `on_step` stores the transition in
replay, its `on_episode` logs the score), then the loop runs the updates the
train ratio asks for and writes each update's self-describing replay values
(recomputed latents, by step id) back. Evaluation, reports, console lines
and checkpoints run on their own clocks. The train ratio is defined once,
in `TrainRatio`; the loop's settings come in one `Settings` object.

`Loop` holds no files: the caller (`run/train.py`) builds the parts and the
checkpoint of named parts (`Loop.parts()` + agent, replay, envs, logger).

Failures are loud (issue 15, nothing lost, nothing silent). The errors of
`run/failures.py` (a crash-looping env, a bad env output, too many skipped
updates) leave the run at its last good step: the loop writes a checkpoint
of it, notes the policy step on the error and re-raises it. Other
exceptions propagate without a checkpoint: the state they leave is
unknown. Skipped
updates are logged (`train/nonfinite_loss`) and said on the console at the
1st, 2nd, 4th, 8th, ... one; the run stops at `max_nonfinite` of them, and
a run whose skipped share of updates reaches `max_nonfinite_share` when it
ends raises rather than return as if it had trained.
"""
import dataclasses
import signal
import time

import numpy as np

from dreamer_tf import replay as replay_lib
from dreamer_tf.run import driver as driver_lib
from dreamer_tf.run import failures
from dreamer_tf.run import memory
from dreamer_tf.run import report as report_lib
from dreamer_tf.run import workers as workers_lib

# Open-loop reports (§4.4): sequences shown, steps observed before imagining.
REPORT_SEQUENCES, REPORT_OBSERVE = 6, 16
EVAL_STREAM = 1  # First word of evaluation's RNG key (reports use 2 words).


class TrainRatio:
  """Replayed steps per policy step (spec §1.1, §4.2; issue #154).

  One update replays B*T steps, so after `policy_steps` new policy steps
  `policy_steps * ratio / (B*T)` updates are due. Counting starts when
  training starts (no burst of catch-up updates for the prefill).
  """

  def __init__(self, ratio, batch_steps):
    self.ratio, self.batch_steps = float(ratio), int(batch_steps)
    self.start = None  # Policy step at which training started.
    self.updates = 0

  def due(self, policy_steps):
    """Updates to run now so that updates = (steps - start) ratio / (B*T)."""
    if self.start is None:  # Training (re)starts: nothing is due yet.
      self.start = (policy_steps - self.updates * self.batch_steps / self.ratio
                    if self.updates else policy_steps)
    target = int((policy_steps - self.start) * self.ratio / self.batch_steps)
    return max(0, target - self.updates)

  def reanchor(self):
    """Training pauses until the next `due` (the replay refills after it
    was lost): the steps in between owe no updates."""
    self.start = None

  def state(self):
    return dict(start=self.start, updates=self.updates)

  def restore(self, state):
    self.start, self.updates = state['start'], state['updates']


@dataclasses.dataclass(frozen=True)
class Settings:
  """How long and how often (the `train` gin parameters of the same names).

  steps: policy steps over all envs; frames_per_step: env frames per policy
  step; log_every / save_every / report_every: seconds (report 0: never);
  save_every_steps: policy steps (0: off); eval_every: policy steps between
  evaluations (0: none) of eval_episodes episodes (policy mode if
  eval_mode); max_nonfinite: skipped updates before the run stops;
  max_nonfinite_share: the share of skipped updates at which a run that
  ends (budget spent or stopped) raises instead of returning.
  """
  steps: int
  train_ratio: float = 512.0
  frames_per_step: int = 1
  log_every: float = 60.0
  save_every: float = 600.0
  save_every_steps: int = 0
  report_every: float = 300.0
  eval_every: int = 0
  eval_episodes: int = 1
  eval_mode: bool = False
  max_nonfinite: int = 100
  max_nonfinite_share: float = 0.5


class Counters:
  """Checkpoint part: the run's counters, its seed, the loop's RNG and the
  intrinsic-weight schedule's state (`run/schedules.py`).

  Restoring refuses a checkpoint of a run with another seed (before any
  other part changes anything, see `checkpoint.Checkpoint`).
  """

  def __init__(self, seed, env, ratio, directory, schedule=None,
               rng_seed=None):
    self.seed, self.env, self.ratio = seed, env, ratio
    self.directory, self.schedule = directory, schedule
    # The loop's RNG (policy sampling seeds): the run's seed, or a worker's
    # own stream of it (run/train.py).
    self.rng = np.random.default_rng(seed if rng_seed is None else rng_seed)
    self.policy_steps = self.episodes = self.nonfinite = 0
    self.last_score = None

  def get_state(self):
    return dict(
        policy_steps=self.policy_steps, episodes=self.episodes,
        last_score=self.last_score, nonfinite=self.nonfinite,
        ratio=self.ratio.state(), rng=self.rng.bit_generator.state,
        env=self.env, seed=self.seed,
        schedule=self.schedule.get_state() if self.schedule else None)

  def set_state(self, state):
    # pylint: disable-next=import-outside-toplevel
    from dreamer_tf.run import checkpoint as ckpt_lib
    if state['seed'] != self.seed:
      raise ckpt_lib.CheckpointError(
          f'The checkpoint in {self.directory} belongs to a run with seed '
          f"{state['seed']}, not {self.seed}: pass --seed={state['seed']} "
          f"(or bind train.seed = {state['seed']}) to resume it, or use a "
          'new --logdir.')
    self.policy_steps, self.episodes = state['policy_steps'], state[
        'episodes']
    self.last_score, self.nonfinite = state['last_score'], state[
        'nonfinite']
    self.ratio.restore(state['ratio'])
    self.rng.bit_generator.state = state['rng']
    if self.schedule and state.get('schedule') is not None:
      try:
        self.schedule.set_state(state['schedule'])
      except ValueError as e:
        raise ckpt_lib.CheckpointError(
            f'The checkpoint in {self.directory}: {e}') from None


class Loop:
  """One run's loop over its parts; `run()` until the budget or a stop.

  agent: model.agent.Agent; replay: replay.Replay; logger: run.logger.
  Logger; driver: run.driver.Driver over the training envs; eval_pool: a
  ParallelEnvs of evaluation envs or None; counters: Counters; settings:
  Settings; save: called to write a checkpoint; cluster: the run's
  workers (`run/workers.py`; default one process). With several workers
  each iteration adds every worker's envs to the policy steps, the loop
  samples its share of the global batch, and stops, checkpoints and the
  start of training are agreed by vote.
  """

  def __init__(self, agent, replay, logger, driver, eval_pool, counters,
               settings, save, cluster=None):
    self.agent, self.replay, self.logger = agent, replay, logger
    self.driver, self.eval_pool = driver, eval_pool
    self.counters, self.settings, self.save = counters, settings, save
    self.cluster = cluster or workers_lib.Solo()
    self.ratio = counters.ratio
    # This worker's share of the global batch (all of it with one worker).
    self.batch_share = agent.batch_size // self.cluster.workers
    self.lost_logged = 0  # Entries of pool.lost_episodes already logged.
    # Wall seconds spent in the agent's update (not checkpointed: a
    # statistic of this process, logged per window as time/update_share).
    self.update_seconds = 0.0
    # The first update of this process compiles it; the heap memory the
    # compile freed is given back after it (run/memory.py).
    self.trimmed = False
    self.openloop = report_lib.OpenLoop(
        agent, max(1, min(REPORT_OBSERVE, agent.batch_length // 2)))
    driver.on_step(self._store)
    driver.on_episode(self._log_episode)

  @property
  def frames(self):
    return self.counters.policy_steps * self.settings.frames_per_step

  def run(self):
    """Collects and trains until the budget is spent or a stop (SIGINT,
    SIGTERM) is requested; ends with a checkpoint, also when one of
    `failures.CHECKPOINTED_ERRORS` stops it (module doc). Returns the
    counters; raises NonFiniteError instead if too many of the updates
    were skipped."""
    with _StopFlag() as stop:
      try:
        self._collect_and_train(stop)
      except failures.CHECKPOINTED_ERRORS as error:
        self._save_after(error)
        raise
    self._check_trained()
    c = self.counters
    return dict(policy_steps=c.policy_steps, frames=self.frames,
                updates=self.ratio.updates, skipped_updates=c.nonfinite,
                episodes=c.episodes, last_score=c.last_score)

  def _save_after(self, error):
    """Logs the episodes lost until the error (a crash loop's last one
    too), checkpoints the last good state, notes where the run stopped."""
    self._log_lost_episodes()
    c = self.counters
    where = (f'The run stopped at policy step {c.policy_steps} (frame '
             f'{self.frames}, update {self.ratio.updates})')
    try:
      self.save()
    except Exception as save_error:  # pylint: disable=broad-except
      error.add_note(f'{where}; writing its checkpoint failed too: '
                     f'{type(save_error).__name__}: {save_error}')
      return
    error.add_note(
        f'{where}; its last good state is checkpointed in {c.directory}. '
        'Rerunning the same command resumes from there once the cause is '
        'fixed.')

  def _check_trained(self):
    """NonFiniteError when the share of skipped updates reached
    max_nonfinite_share (e.g. every update skipped: nothing trained)."""
    c, s, updates = self.counters, self.settings, self.ratio.updates
    if c.nonfinite and c.nonfinite >= s.max_nonfinite_share * updates:
      raise failures.NonFiniteError(
          f'{c.nonfinite} of the run\'s {updates} updates were skipped for a '
          f'non-finite loss or gradient (share {c.nonfinite / updates:.0%} '
          f'>= train.max_nonfinite_share = {s.max_nonfinite_share}): the '
          'agent did not train as asked. Check the inputs (rewards, '
          'observations) or lower LaProp.lr. The final checkpoint is '
          f'written in {c.directory}.')

  def _collect_and_train(self, stop):
    """The loop body until the budget is spent or a stop is requested."""
    s, c, cluster = self.settings, self.counters, self.cluster
    n = len(self.driver) * cluster.workers  # Policy steps per iteration.
    min_items = self.batch_share * self.agent.batch_length
    last_log = last_save = last_report = time.time()
    window = self._window(time.time())
    metrics, training, stopping = {}, False, False
    while c.policy_steps < s.steps and not stopping:
      self.driver.step(c.rng.integers(0, 2**31 - 1, 2).astype(np.int32))
      c.policy_steps += n
      self._log_lost_episodes()
      # Training starts once every worker's replay holds its batch share
      # (the replay only grows during a run).
      training = training or cluster.all_ready(len(self.replay) >= min_items)
      due = self.ratio.due(c.policy_steps) if training else 0
      for _ in range(due):
        metrics = self._update()
        window['updates'] += 1
      now = time.time()
      save = False
      if cluster.votes(c.policy_steps // n, due):
        stopping, save = cluster.agree(stop.requested,
                                       now - last_save >= s.save_every)
      if (self.eval_pool is not None and s.eval_every
          and c.policy_steps % s.eval_every < n):
        self._evaluate()
        now = time.time()
      if now - last_log >= s.log_every:
        self._log(metrics, window, now)
        window = self._window(now)
        last_log = now
      if (s.report_every and now - last_report >= s.report_every
          and self.ratio.updates):
        self._report()
        last_report = now
      by_steps = (s.save_every_steps and
                  c.policy_steps % s.save_every_steps < n)
      if save or by_steps:
        self.save()
        last_save = time.time()
    self.save()

  # --- Driver callbacks ----------------------------------------------------

  def _store(self, transition):
    """Adds every env's transition to its replay stream."""
    for i in range(len(self.driver)):
      self.replay.add({k: v[i] for k, v in transition.items()}, worker=i)

  def _log_episode(self, worker, episode):
    del worker
    self.counters.episodes += 1
    self.counters.last_score = episode.score
    if self.counters.schedule:
      self.counters.schedule.observe(episode.score)
    self.logger.score(episode.score, episode.length, self.frames,
                      **episode.logs)

  def _log_lost_episodes(self):
    """Logs the episodes of crashed env workers since the last call (the
    pool restarted them and warned on the console), as they happen: a
    killed run must not lose them."""
    lost = self.driver.pool.lost_episodes
    for episode in lost[self.lost_logged:]:
      self.logger.scalars({'env/lost_episode_steps': episode.steps,
                           'env/lost_episode_worker': episode.worker},
                          self.frames)
    self.lost_logged = len(lost)

  # --- Training ----------------------------------------------------------------

  def _update(self):
    """One update; writes its replay values back unless it was skipped.

    With exploration the schedule sets the intrinsic weight first (logged
    as `explore/intrinsic_weight` with every update; with several workers
    the mean of theirs), and importance weights are divided by their
    largest over all workers' rows; priorities are
    written back only when the replay draws by priority, and a skipped
    update restores the priorities of the items it drew
    (`Replay.restore_priorities`).
    """
    schedule = self.counters.schedule
    exploring = bool(schedule) and self.agent.ensemble is not None
    batch = self.replay.sample(self.batch_share, normalize=False)
    weighted = replay_lib.WEIGHT in batch
    if exploring or weighted:
      # One exchange (an all-gather with several workers) for one weight
      # for all workers, the mean of their schedules, and the largest raw
      # importance weight of the global batch. Both flags come from the
      # config, so every worker takes part.
      weight, largest = self.cluster.mean_and_max(
          schedule.value(self.ratio.updates) if exploring else 0.0,
          batch[replay_lib.WEIGHT].max() if weighted else 0.0)
    if exploring:
      self.agent.set_intrinsic_weight(weight)
      self.logger.scalars({'explore/intrinsic_weight': weight}, self.frames)
    if weighted:
      batch[replay_lib.WEIGHT] = (
          batch[replay_lib.WEIGHT] / largest).astype(np.float32)
    start = time.perf_counter()
    with self.cluster.collective():  # A lost worker is named.
      metrics, updates = self.agent.train(batch)
    skipped = float(metrics['opt/skipped'])  # Waits for the update.
    self.update_seconds += time.perf_counter() - start
    if not self.trimmed:
      self.trimmed = True
      memory.release_free_memory()
    if not self.replay.prioritized:
      updates.pop('priority', None)
    if skipped:
      # The agent skipped the update; its latents and priorities are not
      # written back, and the items it drew get their priority back.
      if self.replay.prioritized and 'stepid' in updates:
        self.replay.restore_priorities(updates['stepid'])
      c = self.counters
      c.nonfinite += 1
      self.logger.scalars({'train/nonfinite_loss': float(
          metrics['opt/loss'])}, self.frames)
      if c.nonfinite >= self.settings.max_nonfinite:
        raise failures.NonFiniteError(
            f'{c.nonfinite} updates had a non-finite loss or gradient '
            'and were skipped; stopping (train.max_nonfinite = '
            f'{self.settings.max_nonfinite}). Check the inputs (rewards, '
            'observations) or lower LaProp.lr.')
      if c.nonfinite & (c.nonfinite - 1) == 0:  # 1, 2, 4, 8, ...
        self.logger.warn(
            f'Update {self.ratio.updates + 1} skipped: its loss '
            f"({float(metrics['opt/loss'])}) or gradient is not finite. "
            f'{c.nonfinite} of {self.ratio.updates + 1} updates skipped so '
            f'far; the run stops at train.max_nonfinite = '
            f'{self.settings.max_nonfinite}. Check the inputs (rewards, '
            'observations) or lower LaProp.lr.')
    else:
      self.replay.update(updates)
    self.ratio.updates += 1
    return metrics

  def _evaluate(self):
    """Runs eval_episodes episodes on the eval envs; logs them as 'eval'.

    Its own RNG, keyed by the step: evaluating leaves the training
    trajectory alone, and a resumed run evaluates exactly as before.
    """
    s = self.settings
    quotas = driver_lib.episode_quotas(s.eval_episodes, len(self.eval_pool))
    rng = np.random.default_rng(
        [EVAL_STREAM, self.counters.seed, self.counters.policy_steps])
    results, _ = driver_lib.run_episodes(
        self.agent, self.eval_pool, quotas, s.eval_mode, rng)
    for episode in results:
      self.logger.score(episode.score, episode.length, self.frames,
                        kind='eval', **episode.logs)

  def _report(self):
    """Open-loop predictions on a few replayed sequences (§4.4).

    Reads replay with its own RNG and changes no agent state, so reports
    cannot alter the run (exact resume does not depend on their timing).
    """
    agent, observe = self.agent, self.openloop.observe
    length = min(agent.batch_length, 2 * observe)
    key = [self.counters.seed, self.ratio.updates]
    data = self.replay.peek(REPORT_SEQUENCES, agent.replay_context + length,
                            np.random.default_rng(key))
    data.pop('stepid', None)
    preds = self.openloop(data, np.array(key, np.int32))
    discrete = [k for k in preds if agent.obs_space[k].discrete]
    self.logger.scalars({f'report/openloop/{k}': v for k, v in
                         report_lib.errors(preds, observe, discrete).items()},
                        self.frames)
    for name in report_lib.image_keys(agent.obs_space):
      self.logger.video(f'report/openloop/{name}',
                        report_lib.video_grid(*preds[name], observe),
                        self.frames)

  def _window(self, now):
    """The counts at the start of a log window."""
    return dict(start=now, steps=self.counters.policy_steps, updates=0,
                update_seconds=self.update_seconds)

  def _log(self, metrics, window, now):
    """Logs the window's rates and the last update's metrics. Where the
    time goes: time/update_share is the share of the window's wall time
    spent in the agent's update (from handing it the batch to its result);
    the rest is the loop's (env steps, acting, replay, evaluation,
    checkpoints, logging)."""
    c, s = self.counters, self.settings
    seconds = max(now - window['start'], 1e-9)
    update_seconds = self.update_seconds - window['update_seconds']
    fps = (c.policy_steps - window['steps']) * s.frames_per_step
    replayed = self.agent.batch_size * self.agent.batch_length
    values = {f'train/{k}': v for k, v in metrics.items()}
    values.update({
        'fps/policy': fps / seconds,
        'fps/train': window['updates'] * replayed / seconds,
        'time/window_seconds': seconds,
        'time/update_share': update_seconds / seconds,
        'counters/policy_steps': c.policy_steps,
        'counters/frames': self.frames,
        'counters/updates': self.ratio.updates,
        'counters/replay_ratio': (
            self.ratio.updates * replayed / max(c.policy_steps, 1)),
        'counters/nonfinite_updates': c.nonfinite,
    })
    values.update({f'replay/{k}': v for k, v in self.replay.stats().items()})
    self.logger.scalars(values, self.frames)
    self.logger.progress(self.frames, s.steps * s.frames_per_step,
                         fps / seconds, c.last_score, self.ratio.updates,
                         now=now)


class _StopFlag:
  """While active, SIGINT/SIGTERM request a clean stop (a final checkpoint
  is written); the previous handlers come back afterwards."""

  def __init__(self):
    self.requested = False
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # Not the main thread.
        pass
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def _handle(self, *unused):
    self.requested = True
