"""The Env protocol: auto-reset, flags, action and obs checks (spec §4.1)."""
import numpy as np
import pytest

from dreamer_tf import spaces
from dreamer_tf.envs import base


class Counter(base.Env):
  """Counts actions; terminates at `end`, is cut at `limit` steps."""

  def __init__(self, end=3, limit=10):
    self.end, self.limit, self.resets, self.received = end, limit, 0, []

  @property
  def obs_space(self):
    return base.with_flags({'count': spaces.Space((1,), 'float32')})

  @property
  def act_space(self):
    return {'action': spaces.Space((), 'int32', classes=5)}

  def _values(self):
    return {'count': np.array([self.count], np.float32)}

  def _reset(self):
    self.resets += 1
    self.count, self.steps = 0, 0
    return base.observation(self._values(), is_first=True)

  def _step(self, action):
    self.received.append(int(action['action']))
    self.count += int(action['action'])
    self.steps += 1
    terminal = self.count >= self.end
    return base.observation(
        self._values(), reward=1.0, is_terminal=terminal,
        is_last=terminal or self.steps >= self.limit)


def test_first_step_resets_and_ignores_action():
  env = Counter()
  obs = env.step({'action': 4})
  base.check_obs(obs, env.obs_space)
  assert obs['is_first'] and not obs['is_last'] and not obs['is_terminal']
  assert obs['reward'] == 0 and obs['reward'].dtype == np.float32
  assert obs['count'][0] == 0 and env.received == [] and env.resets == 1


def test_auto_reset_after_is_last():
  env = Counter(end=3)
  env.step(None)  # The first action is ignored, None included.
  flags = []
  for action in [1, 2, 4, 1]:
    obs = env.step({'action': action})
    base.check_obs(obs, env.obs_space)
    flags.append((bool(obs['is_first']), bool(obs['is_last']),
                  bool(obs['is_terminal'])))
  # Steps: +1, +2 -> terminal; then a reset ignoring 4; then +1.
  assert flags == [(False, False, False), (False, True, True),
                   (True, False, False), (False, False, False)]
  assert env.received == [1, 2, 1] and env.resets == 2


def test_time_limit_is_last_without_terminal():
  env = Counter(end=100, limit=2)
  env.step(None)
  env.step({'action': 0})
  obs = env.step({'action': 0})
  assert obs['is_last'] and not obs['is_terminal']
  assert env.step({'action': 0})['is_first']


def test_action_checks_name_the_problem():
  env = Counter()
  env.step(None)
  with pytest.raises(ValueError, match=r"lacks keys \['action'\]"):
    env.step({'act': 1})
  with pytest.raises(ValueError, match=r'outside \[0, 5\)'):
    env.step({'action': 5})
  with pytest.raises(ValueError, match='shape'):
    env.step({'action': np.zeros(2)})
  with pytest.raises(ValueError, match='not integral'):
    env.step({'action': 1.5})


def test_check_obs_rejects_wrong_dtype_shape_and_keys():
  space = base.with_flags({'x': spaces.Space((2,), 'float32')})
  good = base.observation({'x': np.zeros(2, np.float32)})
  base.check_obs(good, space)
  with pytest.raises(ValueError, match='dtype float64'):
    base.check_obs({**good, 'x': np.zeros(2)}, space)
  with pytest.raises(ValueError, match=r'shape \(3,\)'):
    base.check_obs({**good, 'x': np.zeros(3, np.float32)}, space)
  with pytest.raises(ValueError, match='keys'):
    base.check_obs({**good, 'y': np.zeros(2, np.float32)}, space)


def test_with_flags_rejects_reserved_keys():
  with pytest.raises(ValueError, match="'reward'.*reserved"):
    base.with_flags({'reward': spaces.Space((1,), 'float32')})


def test_bad_reset_is_caught():
  class BadReset(Counter):
    def _reset(self):
      super()._reset()
      return base.observation(self._values(), is_first=False)

  with pytest.raises(AssertionError, match='is_first=True'):
    BadReset().step(None)
