"""The env driver: a pool of env workers stepped by the agent's policy.

Training and evaluation both act through a `Driver` (spec §4.1). One
`step` is

  observe:  account the latest observation of every env [N, ...]: episode
            return and length; `on_episode(worker, Episode)` for each env
            whose episode ended (is_last)
  act:      the compiled policy picks a_t at obs_t (posterior and action
            sampled, or the policy's mode)
  env step: every worker steps once; auto-reset envs start new episodes;
            then `on_step(transition)` sees {obs keys, action keys, latent
            keys: [N, ...]}, i.e. obs_t, a_t and the agent's latent at t
            (what replay stores), and obs_{t+1} and the carry take over.

A failed env step (a crash loop or a bad observation, envs/parallel.py,
which checks every observation) raises before anything changed: the driver
keeps obs_t and its carry, and the callbacks have not seen the step, so the
run's state is still that of its last good step (the loop checkpoints it).

The driver's state (`get_state`/`set_state`) is the latest observation, the
policy carry, the episode accumulators and every env's serialised state, so
a resumed run continues the very same episodes. Envs that cannot be
serialised (e.g. Crafter) start new episodes after a resume, with a warning.
This module needs no TensorFlow itself (the agent brings it).
"""
import typing
import warnings

import numpy as np


class Episode(typing.NamedTuple):
  """A finished episode: return, length and its final `log/` scalars."""
  score: float
  length: int
  logs: dict


def episode_logs(obs, i):
  """{key: value} of env i's scalar `log/` observations (e.g. Crafter's
  achievement counts) in a batched obs dict; frames are not scalars."""
  return {k: v[i].item() for k, v in obs.items()
          if k.startswith('log/') and np.ndim(v) == 1}


def episode_quotas(episodes, envs):
  """Episodes per env, as equal as possible: [episodes // envs (+1)]."""
  return [episodes // envs + (i < episodes % envs) for i in range(envs)]


class Driver:
  """Steps `pool` (envs.parallel.ParallelEnvs) with `agent`'s policy."""

  def __init__(self, agent, pool):
    self.agent, self.pool = agent, pool
    self._on_step, self._on_episode = [], []
    self.obs = self.carry = None
    n = len(pool)
    self.score, self.length = np.zeros(n), np.zeros(n, np.int64)

  def __len__(self):
    return len(self.pool)

  def on_step(self, callback):
    """Calls `callback(transition)` for every step (see the module doc)."""
    self._on_step.append(callback)

  def on_episode(self, callback):
    """Calls `callback(worker, Episode)` for every finished episode."""
    self._on_episode.append(callback)

  def reset(self):
    """Every worker starts (or continues) with a zero action; zero carry.

    Workers at the end of an episode start a new one; workers in the middle
    of one take the zero action as their next step.
    """
    n = len(self.pool)
    self.carry = self.agent.initial_carry(n)
    self.obs = self.pool.step({k: np.zeros((n, *s.shape), s.dtype)
                               for k, s in self.agent.act_space.items()})
    self.score, self.length = np.zeros(n), np.zeros(n, np.int64)

  def step(self, seed, mode=False):
    """observe, then act with int32[2] `seed`; returns finished episodes."""
    episodes = self.observe()
    self.act(seed, mode)
    return episodes

  def observe(self):
    """Accounts the latest observations; returns [(worker, Episode)]."""
    obs = self.obs
    self.score += obs['reward']
    self.length += 1
    episodes = [(int(i), Episode(float(self.score[i]), int(self.length[i]),
                                 episode_logs(obs, i)))
                for i in np.flatnonzero(obs['is_last'])]
    self.score[obs['is_first']] = 0.0
    self.length[obs['is_first']] = 0
    for worker, episode in episodes:
      for callback in self._on_episode:
        callback(worker, episode)
    return episodes

  def act(self, seed, mode=False):
    """The policy acts on the latest observations; the envs step once.

    If the env step raises, the driver's state is left as it was (module
    doc).
    """
    agent = self.agent
    act, carry, latent = agent.policy(
        {k: self.obs[k] for k in agent.obs_space}, self.carry, seed, mode)
    act = {k: np.asarray(v) for k, v in act.items()}
    obs = self.pool.step(act)
    if self._on_step:
      transition = {k: self.obs[k] for k in agent.obs_space}
      transition.update(act)
      transition.update({k: np.asarray(v) for k, v in latent.items()})
      for callback in self._on_step:
        callback(transition)
    self.obs, self.carry = obs, carry

  # --- State -------------------------------------------------------------

  def get_state(self):
    """{name: array}: observation, carry, accumulators and env states."""
    state = {f'obs/{k}': np.asarray(v) for k, v in self.obs.items()}
    state.update({f'carry/{k}': np.asarray(v)
                  for k, v in self.carry.items()})
    state.update(score=np.asarray(self.score),
                 length=np.asarray(self.length))
    state.update(env_states(self.pool))
    return state

  def set_state(self, state):
    """Continues the saved episodes; without saved env states (envs that
    cannot be serialised) starts new ones, with a warning."""
    if not restore_env_states(self.pool, state):
      warnings.warn('The envs could not be serialised at the checkpoint: '
                    'the resumed run starts new episodes.')
      self.reset()
      return
    self.obs = {k[4:]: v for k, v in state.items() if k.startswith('obs/')}
    self.carry = {k[6:]: v for k, v in state.items()
                  if k.startswith('carry/')}
    self.score, self.length = state['score'], state['length']


def env_states(pool):
  """{'env/<i>': uint8 array} of every env's pickled state, or {} unless
  all envs of the pool can be serialised."""
  states = pool.get_states()
  if any(st is None for st in states):
    return {}
  return {f'env/{i}': np.frombuffer(st, np.uint8)
          for i, st in enumerate(states)}


def restore_env_states(pool, state):
  """Restores `env_states` output into `pool`; False unless all n saved."""
  saved = [state.get(f'env/{i}') for i in range(len(pool))]
  if any(st is None for st in saved):
    return False
  pool.set_states([np.asarray(st).tobytes() for st in saved])
  return True


class EnvPoolState:
  """Checkpoint part of a pool whose episodes restart at every use (the
  in-training evaluation envs): only the envs' states, so evaluations after
  a resume replay the same episodes. `pool` None (no evaluation) saves
  nothing; a pool restored from a state without envs starts fresh."""

  def __init__(self, pool):
    self.pool = pool

  def get_state(self):
    return env_states(self.pool) if self.pool else {}

  def set_state(self, state):
    if self.pool:
      restore_env_states(self.pool, state)


def run_episodes(agent, pool, quotas, mode, rng, frame_key=None):
  """Steps all envs until env i finished quotas[i] episodes.

  Envs may be mid-episode (a reused pool): only episodes that start here
  count, and env i contributes its first quotas[i] such episodes (counting
  the first N to finish would favour short episodes). Returns
  ([Episode] in completion order, frames of env 0's first episode when the
  observations carry `frame_key`).
  """
  driver = Driver(agent, pool)
  driver.reset()
  quotas = np.asarray(quotas)
  done = np.zeros(len(pool), np.int64)
  started = np.zeros(len(pool), bool)
  results, frames = [], []
  while True:
    started |= driver.obs['is_first']
    if frame_key in driver.obs and not done[0]:
      frames.append(driver.obs[frame_key][0])
    for i, episode in driver.observe():
      if started[i] and done[i] < quotas[i]:
        results.append(episode)
        done[i] += 1
    if (done >= quotas).all():
      return results, frames
    driver.act(rng.integers(0, 2**31 - 1, 2).astype(np.int32), mode)
