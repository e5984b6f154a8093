"""`tests.sign_env:SignBandit-v0`, a small task for the CI learning test.

Each step shows x in {-1, +1}; the action pays 1 if it names the sign of x
(action 1 for +1, action 0 for -1), else 0. The reward of an action arrives
with the next observation, so the world model must remember x and the
action to predict it. Episodes are cut at 16 steps (truncation, not
termination). A random policy scores 8 per episode, the best policy 16.
"""
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


class NanReward(SignBandit):
  """SignBandit whose rewards are NaN: every update's loss is non-finite."""

  def step(self, action):
    obs, _, terminated, truncated, info = super().step(action)
    return obs, float('nan'), terminated, truncated, info


if 'NanReward-v0' not in gym.registry:
  gym.register('NanReward-v0', entry_point=NanReward)
