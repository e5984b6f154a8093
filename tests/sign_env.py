"""Small tasks for the CI learning tests (`gym:tests.sign_env:<id>`).

`SignBandit-v0`: each step shows x in {-1, +1}; the action pays 1 if it
names the sign of x (action 1 for +1, action 0 for -1), else 0. The reward
of an action arrives with the next observation, so the world model must
remember x and the action to predict it. Episodes are cut at 16 steps
(truncation, not termination). A random policy scores 8 per episode, the
best policy 16.

`CrashOnce-v0`: SignBandit whose process dies at its `crash_at`-th step
unless the file `marker` exists (it creates it first), to test the restart
of crashed env workers.

`NanReward-v0`, `InfReward-v0`: SignBandit paying NaN or +inf (bad env
output, which stops a run). `RaiseInStep-v0`: SignBandit whose `step`
raises at its 3rd step of every episode (a crash loop).

`SignSteer-v0`: the same task with a continuous action a in [-1, 1] that
pays (1 + x clip(a)) / 2, so a zero-mean random policy scores 8 and the
best policy (a = x) 16. It exercises the continuous (bounded normal) actor.
"""
import os

import gymnasium as gym
import numpy as np

LENGTH = 16


class SignBandit(gym.Env):
  observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
  action_space = gym.spaces.Discrete(2)

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    self._t = 0
    self._x = self._draw()
    return self._x, {}

  def step(self, action):
    reward = float(int(action) == int(self._x[0] > 0))
    self._t += 1
    self._x = self._draw()
    return self._x, reward, False, self._t >= LENGTH, {}

  def _draw(self):
    return np.array([self.np_random.choice([-1.0, 1.0])], np.float32)


if 'SignBandit-v0' not in gym.registry:
  gym.register('SignBandit-v0', entry_point=SignBandit)


class SignSteer(SignBandit):
  action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

  def step(self, action):
    a = float(np.clip(np.asarray(action, np.float32).reshape(-1)[0], -1, 1))
    reward = 0.5 * (1.0 + float(self._x[0]) * a)
    self._t += 1
    self._x = self._draw()
    return self._x, reward, False, self._t >= LENGTH, {}


if 'SignSteer-v0' not in gym.registry:
  gym.register('SignSteer-v0', entry_point=SignSteer)


class BadReward(SignBandit):
  """SignBandit whose every reward is `reward` (NaN, +inf: bad env output)."""

  def __init__(self, reward):
    self._reward = reward

  def step(self, action):
    obs, _, terminated, truncated, info = super().step(action)
    return obs, self._reward, terminated, truncated, info


for _name, _reward in (('NanReward-v0', float('nan')),
                       ('InfReward-v0', float('inf'))):
  if _name not in gym.registry:
    gym.register(_name, entry_point=BadReward, kwargs=dict(reward=_reward))


class RaiseInStep(SignBandit):
  """Raises at the 3rd step of every episode: it never finishes one."""

  def step(self, action):
    if self._t == 2:
      raise RuntimeError(f'simulator exploded at step {self._t + 1}')
    return super().step(action)


if 'RaiseInStep-v0' not in gym.registry:
  gym.register('RaiseInStep-v0', entry_point=RaiseInStep)


class CrashOnce(SignBandit):
  """Kills its own process once, at step `crash_at` (see module doc)."""

  def __init__(self, marker, crash_at=5):
    self._marker, self._crash_at, self._steps = marker, crash_at, 0

  def step(self, action):
    self._steps += 1
    if self._steps == self._crash_at and not os.path.exists(self._marker):
      open(self._marker, 'w').close()
      os._exit(3)  # A crash: no exception, no cleanup.
    return super().step(action)


if 'CrashOnce-v0' not in gym.registry:
  gym.register('CrashOnce-v0', entry_point=CrashOnce)
