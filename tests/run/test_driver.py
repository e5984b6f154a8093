"""The env driver (`dreamer_tf/run/driver.py`): episodes in fixed quotas,
recording frames, the driver's state."""
import functools

import numpy as np
import pytest

from dreamer_tf import spaces
from dreamer_tf.envs import base
from dreamer_tf.envs import parallel
from dreamer_tf.run import driver as driver_lib
from dreamer_tf.run import recording


class _Counter(base.Env):
  """Episodes of `length` steps; obs 'image' shows the step count (gray),
  `log/steps` counts the steps too (a log-only scalar)."""

  def __init__(self, length):
    self.length, self.t = length, 0

  @property
  def obs_space(self):
    return base.with_flags({'image': spaces.Space((4, 6, 1), 'uint8'),
                            'log/steps': spaces.Space((), 'int32')})

  @property
  def act_space(self):
    return {'action': spaces.Space((), 'int32', classes=2)}

  def _obs(self, **flags):
    image = np.full((4, 6, 1), self.t, np.uint8)
    return base.observation({'image': image, 'log/steps': np.int32(self.t)},
                            reward=1.0, **flags)

  def _reset(self):
    self.t = 0
    return {**self._obs(is_first=True), 'reward': np.float32(0)}

  def _step(self, action):
    self.t += 1
    return self._obs(is_last=self.t == self.length)


class _Pool:
  """ParallelEnvs' interface over in-process envs."""

  def __init__(self, envs_):
    self.envs = envs_
    self.obs_space = envs_[0].obs_space

  def __len__(self):
    return len(self.envs)

  def step(self, actions):
    obs = [env.step({k: v[i] for k, v in actions.items()})
           for i, env in enumerate(self.envs)]
    return {k: np.stack([o[k] for o in obs]) for k in obs[0]}


class _Agent:
  obs_space = _Counter(1).obs_space
  act_space = _Counter(1).act_space

  def initial_carry(self, n):
    return np.zeros(n)

  def policy(self, obs, carry, seed, mode=False):
    del seed, mode
    return {'action': np.zeros(len(obs['is_first']), np.int32)}, carry, {}


def test_episodes_are_counted_in_fixed_quotas_per_env():
  # Env 0 has short episodes: only its quota of them counts, no more.
  pool = _Pool([_Counter(2), _Counter(5)])
  results, frames = driver_lib.run_episodes(
      _Agent(), pool, [2, 2], False, np.random.default_rng(0))
  assert sorted(results, key=lambda e: e.score) == [
      (2.0, 2, {'log/steps': 2})] * 2 + [(5.0, 5, {'log/steps': 5})] * 2
  assert frames == []  # No FRAME_KEY in these observations.


def test_recorder_adds_rgb_frames_from_the_image_observation():
  env = recording.Recorder(functools.partial(_Counter, 3))
  assert env.obs_space[recording.FRAME_KEY].shape == (4, 6, 3)
  pool = _Pool([env])
  results, frames = driver_lib.run_episodes(
      _Agent(), pool, [1], False, np.random.default_rng(0),
      recording.FRAME_KEY)
  # The frame is no scalar log: only log/steps reaches the episode's logs.
  assert results == [(3.0, 3, {'log/steps': 3})]
  assert [int(f[0, 0, 0]) for f in frames] == [0, 1, 2, 3]
  assert all(f.shape == (4, 6, 3) for f in frames)


class _FailingPool(_Pool):
  """_Pool whose `fail_at`-th step raises (as ParallelEnvs does for a bad
  observation or a crash loop), after stepping its envs."""

  def __init__(self, envs_, fail_at):
    super().__init__(envs_)
    self.fail_at, self.steps = fail_at, 0

  def step(self, actions):
    obs = super().step(actions)
    self.steps += 1
    if self.steps == self.fail_at:
      raise parallel.EnvOutputError("'reward' = nan is not finite")
    return obs


class _CountingAgent(_Agent):
  """The carry counts the policy's calls."""

  def policy(self, obs, carry, seed, mode=False):
    act, _, latent = super().policy(obs, carry, seed, mode)
    return act, carry + 1, latent


def test_a_failed_env_step_leaves_the_driver_at_its_last_good_step():
  driver = driver_lib.Driver(_CountingAgent(), _FailingPool([_Counter(9)], 4))
  stored = []
  driver.on_step(lambda transition: stored.append(transition['image'][0]))
  driver.reset()  # Pool step 1.
  for _ in range(2):  # Pool steps 2 and 3.
    driver.step(np.zeros(2, np.int32))
  obs, carry = driver.obs, driver.carry
  with pytest.raises(parallel.EnvOutputError):
    driver.step(np.zeros(2, np.int32))  # Pool step 4 raises.
  # The latest good observation and its carry; replay did not see the step.
  assert driver.obs is obs and driver.carry is carry
  assert carry.tolist() == [2] and int(obs['image'][0, 0, 0, 0]) == 2
  assert [int(image[0, 0, 0]) for image in stored] == [0, 1]
