"""Crafter adapter: spaces, the env protocol, terminal vs time limit."""
import sys

import numpy as np
import pytest

from dreamer_tf import envs
from dreamer_tf.envs import crafter as crafter_env

pytest.importorskip('crafter')


def test_spaces_and_protocol():
  env = envs.make('crafter:reward', seed=0)
  assert env.obs_space['image'].shape == (64, 64, 3)
  assert env.act_space['action'].classes == 17
  obs = env.step({'action': 0})
  assert obs['is_first'] and obs['image'].dtype == np.uint8
  rng = np.random.default_rng(0)
  rewards = []
  for _ in range(50):
    obs = env.step({'action': int(rng.integers(17))})
    assert not obs['is_first'] and obs['image'].shape == (64, 64, 3)
    rewards.append(obs['reward'])
  assert np.isfinite(rewards).all()


def test_time_limit_is_last_not_terminal():
  env = envs.make('crafter:noreward', seed=1, length=5)
  env.step({'action': 0})
  flags = []
  for _ in range(5):
    obs = env.step({'action': 0})  # noop: the player survives 5 steps
    flags.append((bool(obs['is_last']), bool(obs['is_terminal'])))
    assert obs['reward'] == 0.0
  assert flags[-1] == (True, False) and not any(f[0] for f in flags[:-1])
  assert env.step({'action': 0})['is_first']  # Auto-reset.


def test_same_seed_same_world():
  a = envs.make('crafter:reward', seed=3).step({'action': 0})
  b = envs.make('crafter:reward', seed=3).step({'action': 0})
  np.testing.assert_array_equal(a['image'], b['image'])


def test_no_exact_state_so_resume_restarts_episodes():
  assert envs.make('crafter:reward', seed=0).get_state() is None


def test_bad_task_and_missing_package(monkeypatch):
  with pytest.raises(ValueError, match="did you mean 'reward'"):
    envs.make('crafter:rewrd')
  monkeypatch.setitem(sys.modules, 'crafter', None)
  with pytest.raises(ImportError, match=r"pip install -e '\.\[crafter\]'"):
    crafter_env.Crafter('reward')
