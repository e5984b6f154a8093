"""The training loop: collect, train by ratio, evaluate, log, checkpoint.

Spec §4.1-§4.2, §8.13. One loop iteration steps every env worker once with
the compiled policy, stores the transitions (obs_t, a_t chosen at obs_t and
the agent's latent at t) in replay, and then runs the updates the train
ratio asks for. The train ratio is defined once, in `TrainRatio`.
"""
import functools
import os
import signal
import time
import warnings

import gin
import numpy as np

from dreamer_tf.model import agent as agent_lib
from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf import envs as envs_lib
from dreamer_tf.run import logger as log_lib
from dreamer_tf import replay as replay_lib
from dreamer_tf.run import report as report_lib
from dreamer_tf.envs import parallel
from dreamer_tf.run import DONE_FILE
from dreamer_tf.run import evaluate as evaluate_lib

# Open-loop reports (§4.4): sequences shown, steps observed before imagining.
REPORT_SEQUENCES, REPORT_OBSERVE = 6, 16
EVAL_STREAM = 1  # First word of evaluation's RNG key (reports use 2 words).

# Env frames per policy step of each suite's default action repeat.
FRAMES_PER_STEP = {'gym': 1, 'atari': 4, 'atari100k': 4, 'dmc': 2,
                   'dmc_vision': 2, 'crafter': 1}


def env_frames_per_step(suite, env_kwargs, frames_per_step=None):
  """Env frames per policy step: the env's action repeat.

  An explicit `repeat` in env_kwargs wins over the suite's default; a
  `frames_per_step` that contradicts it is an error (it would shift every
  curve's x-axis).
  """
  repeat = env_kwargs.get('repeat')
  if frames_per_step and repeat and frames_per_step != repeat:
    raise ValueError(
        f'train.frames_per_step={frames_per_step} contradicts '
        f"train.env_kwargs={{'repeat': {repeat}}}: frames are policy steps "
        'x action repeat. Drop train.frames_per_step (it follows the '
        'repeat) or make them equal.')
  return frames_per_step or repeat or FRAMES_PER_STEP.get(suite, 1)


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
    if self.start is None:
      self.start = policy_steps
    target = int((policy_steps - self.start) * self.ratio / self.batch_steps)
    return max(0, target - self.updates)

  def state(self):
    return dict(start=self.start, updates=self.updates)

  def restore(self, state):
    self.start, self.updates = state['start'], state['updates']


@gin.configurable
def train(
    logdir, env=envs_lib.DEFAULT, env_kwargs=None, num_envs=1,
    steps=int(1e5),
    train_ratio=512.0, frames_per_step=None, log_every=60.0,
    save_every=600.0, save_every_steps=0, report_every=300.0,
    eval_every=0, eval_episodes=1,
    eval_mode=False, replay_capacity=int(5e6), seed=0, max_nonfinite=100):
  """Trains one agent until `steps` policy steps; resumes from `logdir`.

  env: 'suite:task' id (see dreamer_tf.envs), env_kwargs for its
  constructor (e.g. {'repeat': 2}); num_envs worker processes.
  steps: policy steps over all envs (frames = steps * frames_per_step).
  eval_every: policy steps between evaluations (0: none), each running
  `eval_episodes` episodes on separate eval envs (stochastic policy unless
  eval_mode). Checkpoints every `save_every` seconds, every
  `save_every_steps` policy steps (0: off) and at exit. Every
  `report_every` seconds (0: never) an open-loop report (§4.4) logs the
  prediction errors and, for image observations, a TensorBoard video.
  Returns the final counters.
  """
  os.makedirs(logdir, exist_ok=True)
  suite = envs_lib.parse(env)[0]
  env_kwargs = dict(env_kwargs or {})
  frames_per_step = env_frames_per_step(suite, env_kwargs, frames_per_step)
  ctors = [functools.partial(envs_lib.make, env, seed=seed * 1000 + i,
                             **env_kwargs) for i in range(num_envs)]
  pool = parallel.ParallelEnvs(ctors)
  eval_pool = parallel.ParallelEnvs([
      functools.partial(envs_lib.make, env, seed=10**6 + seed * 1000 + i,
                        **env_kwargs)
      for i in range(min(eval_episodes, 4))]) if eval_every else None
  logger = log_lib.Logger(logdir)
  try:
    agent = agent_lib.Agent(pool.obs_space, pool.act_space, seed=seed)
    replay = replay_lib.Replay(
        os.path.join(logdir, 'replay'), capacity=replay_capacity,
        length=agent.batch_length + agent.replay_context, seed=seed)
    loop = _Loop(agent, pool, replay, logger, logdir, env, seed, steps,
                 train_ratio, frames_per_step, max_nonfinite)
    loop.eval_pool = eval_pool
    loop.save_every_steps = save_every_steps
    loop.report_every = report_every
    # After the checkpoint accepted this config: a refused resume must not
    # overwrite the run's record of its config.
    _write_config(logdir)
    result = loop.run(log_every, save_every, eval_every, eval_episodes,
                      eval_mode)
    if result['policy_steps'] >= steps:
      _write_done(logdir, result)
    return result
  finally:
    pool.close()
    if eval_pool:
      eval_pool.close()
    logger.close()


def _write_config(logdir):
  """<logdir>/config.gin: the resolved gin config, written atomically."""
  path = os.path.join(logdir, 'config.gin')
  with open(path + '.tmp', 'w') as f:
    f.write(gin.config_str())
  os.replace(path + '.tmp', path)


class _Loop:
  """State of one run; `run` is the loop, `save`/`restore` its checkpoint."""

  def __init__(self, agent, pool, replay, logger, logdir, env, seed, steps,
               train_ratio, frames_per_step, max_nonfinite):
    self.agent, self.pool, self.replay, self.logger = agent, pool, replay, logger
    self.env, self.seed, self.steps = env, seed, int(steps)
    self.frames_per_step, self.max_nonfinite = frames_per_step, max_nonfinite
    self.ratio = TrainRatio(train_ratio,
                            agent.batch_size * agent.batch_length)
    self.checkpointer = ckpt_lib.Checkpointer(os.path.join(logdir, 'ckpt'))
    self.rng = np.random.default_rng(seed)
    self.policy_steps = 0
    self.nonfinite = 0
    self.episodes = 0
    self.last_score = None
    self.save_every_steps = 0
    self.report_every = 0
    self.eval_pool = None
    self.lost_logged = 0  # Entries of pool.lost_episodes already logged.
    self.openloop = report_lib.OpenLoop(
        agent, max(1, min(REPORT_OBSERVE, agent.batch_length // 2)))
    self.restore()

  # --- Checkpoints -------------------------------------------------------

  def restore(self):
    """Loads the newest checkpoint, if any (agent, counters, RNG, envs)."""
    self.resumed = None
    loaded = self.checkpointer.load()
    if loaded is None:
      return
    tensors, state = loaded
    diff = ckpt_lib.signature_diff(state['signature'],
                                   _jsonable(self.agent.signature()))
    if diff:
      raise ckpt_lib.CheckpointError(
          f'The checkpoint in {self.checkpointer.directory} was written by '
          'a different model configuration:\n  ' + '\n  '.join(diff) +
          '\nUse the original gin bindings or a new --logdir.')
    if state.get('seed', self.seed) != self.seed:
      raise ckpt_lib.CheckpointError(
          f'The checkpoint in {self.checkpointer.directory} belongs to a run '
          f"with seed {state['seed']}, not {self.seed}: pass "
          f"--seed={state['seed']} (or bind train.seed = {state['seed']}) to "
          'resume it, or use a new --logdir.')
    count = state['agent_tensors']
    self.agent.set_state(tensors[:count])
    self.policy_steps = state['policy_steps']
    self.episodes = state['episodes']
    self.last_score = state['last_score']
    self.nonfinite = state['nonfinite']
    self.ratio.restore(state['ratio'])
    self.rng.bit_generator.state = state['rng']
    self.resumed = dict(zip(state['loop_arrays'], tensors[count:]))
    if 'logger' in state:  # Records after the checkpoint come again.
      self.logger.rewind(state['logger'])

  def save(self, loop_arrays):
    """Checkpoints agent, replay, counters, RNG and the loop's live state.

    loop_arrays: the current obs, policy carry, episode accumulators and the
    env states (pickled, as uint8 arrays), so a resumed run continues the
    very same episodes. Envs that cannot be serialised restart episodes.
    The eval envs' states are saved too: later evaluations replay the same
    episodes. The logger's position lets a resume drop the records that a
    killed run wrote after this checkpoint.
    """
    self.replay.save()
    pools = [('env_state', self.pool)]
    if self.eval_pool:
      pools.append(('eval_env_state', self.eval_pool))
    for prefix, pool in pools:
      states = pool.get_states()
      if all(st is not None for st in states):
        for i, st in enumerate(states):
          loop_arrays[f'{prefix}/{i}'] = np.frombuffer(st, np.uint8)
    names = sorted(loop_arrays)
    agent_state = self.agent.get_state()
    self.checkpointer.save(
        agent_state + [loop_arrays[k] for k in names], dict(
            signature=_jsonable(self.agent.signature()),
            agent_tensors=len(agent_state), loop_arrays=names,
            policy_steps=self.policy_steps, episodes=self.episodes,
            last_score=self.last_score, nonfinite=self.nonfinite,
            ratio=self.ratio.state(), rng=self.rng.bit_generator.state,
            env=self.env, seed=self.seed, logger=self.logger.position()))

  def _start(self):
    """(obs, carry, score, length): resumed exactly, or new episodes."""
    agent, n = self.agent, len(self.pool)
    arrays = self.resumed or {}
    eval_states = self.eval_pool and _saved_states(
        arrays, 'eval_env_state', len(self.eval_pool))
    if eval_states:
      self.eval_pool.set_states(eval_states)
    env_states = _saved_states(arrays, 'env_state', n)
    if env_states:
      self.pool.set_states(env_states)
      obs = {k[4:]: v for k, v in arrays.items() if k.startswith('obs/')}
      carry = {k[6:]: v for k, v in arrays.items()
               if k.startswith('carry/')}
      return obs, carry, arrays['score'], arrays['length']
    if arrays:
      warnings.warn('The envs could not be serialised at the checkpoint: '
                    'the resumed run starts new episodes.')
    carry = agent.initial_carry(n)
    actions = {k: np.zeros((n, *s.shape), s.dtype)
               for k, s in agent.act_space.items()}
    obs = self.pool.step(actions)  # Every worker starts an episode.
    return obs, carry, np.zeros(n), np.zeros(n, np.int64)

  # --- Loop ------------------------------------------------------------------

  def run(self, log_every, save_every, eval_every, eval_episodes, eval_mode):
    obs, carry, score, length = self._start()
    with _StopFlag() as stop:
      self._collect_and_train(stop, obs, carry, score, length, log_every,
                              save_every, eval_every, eval_episodes,
                              eval_mode)
    return dict(policy_steps=self.policy_steps, frames=self.frames,
                updates=self.ratio.updates, episodes=self.episodes,
                last_score=self.last_score)

  def _collect_and_train(self, stop, obs, carry, score, length, log_every,
                         save_every, eval_every, eval_episodes, eval_mode):
    """The loop body until the budget is spent or a stop is requested."""
    agent, n = self.agent, len(self.pool)
    min_items = agent.batch_size * agent.batch_length
    last_log = last_save = last_report = time.time()
    window = dict(start=time.time(), steps=self.policy_steps, updates=0)
    metrics = {}
    while self.policy_steps < self.steps and not stop.requested:
      seed = self.rng.integers(0, 2**31 - 1, 2).astype(np.int32)
      act, carry, latent = agent.policy(
          {k: obs[k] for k in agent.obs_space}, carry, seed)
      act = {k: np.asarray(v) for k, v in act.items()}
      latent = {k: np.asarray(v) for k, v in latent.items()}
      for i in range(n):
        step = {k: obs[k][i] for k in agent.obs_space}
        step.update({k: act[k][i] for k in act})
        step.update({k: latent[k][i] for k in latent})
        self.replay.add(step, worker=i)
      score += obs['reward']
      length += 1
      for i in np.flatnonzero(obs['is_last']):
        self.episodes += 1
        self.last_score = float(score[i])
        self.logger.score(score[i], length[i], self.frames,
                          **evaluate_lib.episode_logs(obs, i))
      score[obs['is_first']] = 0.0
      length[obs['is_first']] = 0
      obs = self.pool.step(act)
      self.policy_steps += n
      self._log_lost_episodes()
      if len(self.replay) >= min_items:
        for _ in range(self.ratio.due(self.policy_steps)):
          metrics = self._update()
          window['updates'] += 1
      if eval_every and self.policy_steps % eval_every < n:
        self._evaluate(eval_episodes, eval_mode)
      now = time.time()
      if now - last_log >= log_every:
        self._log(metrics, window, now)
        window = dict(start=now, steps=self.policy_steps, updates=0)
        last_log = now
      if (self.report_every and now - last_report >= self.report_every
          and self.ratio.updates):
        self._report()
        last_report = now
      by_steps = (self.save_every_steps and
                  self.policy_steps % self.save_every_steps < n)
      if now - last_save >= save_every or by_steps:
        self.save(_live(obs, carry, score, length))
        last_save = now
    self.save(_live(obs, carry, score, length))

  def _log_lost_episodes(self):
    """Logs the episodes of crashed env workers since the last call (the
    pool restarted them and warned on the console), as they happen: a
    killed run must not lose them."""
    for lost in self.pool.lost_episodes[self.lost_logged:]:
      self.logger.scalars({'env/lost_episode_steps': lost.steps,
                           'env/lost_episode_worker': lost.worker},
                          self.frames)
    self.lost_logged = len(self.pool.lost_episodes)

  @property
  def frames(self):
    return self.policy_steps * self.frames_per_step

  def _update(self):
    batch, keys = self.replay.sample(self.agent.batch_size)
    metrics, updates = self.agent.train(batch)
    if float(metrics['opt/skipped']):
      # The agent skipped the update; its latents are not written back.
      self.nonfinite += 1
      self.logger.scalars({'train/nonfinite_loss': float(
          metrics['opt/loss'])}, self.frames)
      if self.nonfinite >= self.max_nonfinite:
        raise FloatingPointError(
            f'{self.nonfinite} updates had a non-finite loss or gradient '
            'and were skipped; stopping. Check the inputs (rewards, '
            'observations) or lower LaProp.lr.')
    else:
      self.replay.update(keys, {k: np.asarray(v) for k, v in updates.items()},
                         offset=self.agent.replay_context)
    self.ratio.updates += 1
    return metrics

  def _evaluate(self, episodes, mode):
    """Runs `episodes` episodes on the eval envs; logs them as 'eval'.

    Env i contributes its first quotas[i] episodes (counting the first N to
    finish would favour short episodes); see `evaluate.run_episodes`.
    """
    quotas = evaluate_lib.episode_quotas(episodes, len(self.eval_pool))
    # Its own RNG, keyed by the step: evaluating leaves the training
    # trajectory alone, and a resumed run evaluates exactly as before.
    rng = np.random.default_rng([EVAL_STREAM, self.seed, self.policy_steps])
    results, _ = evaluate_lib.run_episodes(
        self.agent, self.eval_pool, quotas, mode, rng)
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
    key = [self.seed, self.ratio.updates]
    data = self.replay.peek(REPORT_SEQUENCES, agent.replay_context + length,
                            np.random.default_rng(key))
    preds = self.openloop(data, np.array(key, np.int32))
    discrete = [k for k in preds if agent.obs_space[k].discrete]
    self.logger.scalars({f'report/openloop/{k}': v for k, v in
                         report_lib.errors(preds, observe, discrete).items()},
                        self.frames)
    for name in report_lib.image_keys(agent.obs_space):
      self.logger.video(f'report/openloop/{name}',
                        report_lib.video_grid(*preds[name], observe),
                        self.frames)

  def _log(self, metrics, window, now):
    seconds = max(now - window['start'], 1e-9)
    fps = (self.policy_steps - window['steps']) * self.frames_per_step
    values = {f'train/{k}': v for k, v in metrics.items()}
    values.update({
        'fps/policy': fps / seconds,
        'fps/train': window['updates'] * self.agent.batch_size *
                     self.agent.batch_length / seconds,
        'counters/policy_steps': self.policy_steps,
        'counters/frames': self.frames,
        'counters/updates': self.ratio.updates,
        'counters/replay_ratio': (
            self.ratio.updates * self.agent.batch_size *
            self.agent.batch_length / max(self.policy_steps, 1)),
        'counters/nonfinite_updates': self.nonfinite,
    })
    values.update({f'replay/{k}': v for k, v in self.replay.stats().items()})
    self.logger.scalars(values, self.frames)
    self.logger.progress(self.frames, self.steps * self.frames_per_step,
                         fps / seconds, self.last_score, self.ratio.updates,
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


def _live(obs, carry, score, length):
  """The loop's live arrays by checkpoint name."""
  arrays = {f'obs/{k}': np.asarray(v) for k, v in obs.items()}
  arrays.update({f'carry/{k}': np.asarray(v) for k, v in carry.items()})
  arrays.update(score=np.asarray(score), length=np.asarray(length))
  return arrays


def _saved_states(arrays, prefix, n):
  """The pickled env states `<prefix>/<i>` of n envs in a checkpoint's loop
  arrays, or None unless all n were saved."""
  states = [arrays.get(f'{prefix}/{i}') for i in range(n)]
  if any(st is None for st in states):
    return None
  return [st.tobytes() for st in states]


def _write_done(logdir, result):
  """Marks a run whose budget is spent: `<logdir>/done.json` (atomic)."""
  import json  # pylint: disable=import-outside-toplevel
  path = os.path.join(logdir, DONE_FILE)
  with open(path + '.tmp', 'w') as f:
    json.dump(result, f)
  os.replace(path + '.tmp', path)


def _jsonable(value):
  """Round-trips through JSON so saved and current signatures compare."""
  import json  # pylint: disable=import-outside-toplevel
  return json.loads(json.dumps(value))
