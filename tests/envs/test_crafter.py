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


def test_achievement_counts_are_log_observations():
  env = envs.make('crafter:reward', seed=0)
  keys = sorted(k for k in env.obs_space if k.startswith('log/achievement_'))
  assert len(keys) == 22 and 'log/achievement_collect_wood' in keys
  obs = env.step({'action': 0})
  assert all(obs[k] == 0 for k in keys)
  rng = np.random.default_rng(0)
  previous = {k: 0 for k in keys}
  for _ in range(300):
    obs = env.step({'action': int(rng.integers(17))})
    assert all(obs[k] >= previous[k] for k in keys)  # Counts only grow.
    previous = {k: int(obs[k]) for k in keys}
    if obs['is_last']:  # (The player dies after 117 steps with this seed.)
      break
  # They are the player's own counters.
  player = env._env._player  # pylint: disable=protected-access
  assert previous == {k: player.achievements[k[len('log/achievement_'):]]
                      for k in keys}
  assert sum(previous.values()) > 0


@pytest.mark.slow
def test_training_episodes_record_achievements(tmp_path):
  import gin  # pylint: disable=import-outside-toplevel
  from dreamer_tf import config  # pylint: disable=import-outside-toplevel
  from dreamer_tf.analysis import achievements  # pylint: disable=import-outside-toplevel
  from dreamer_tf.run import logger as log_lib  # pylint: disable=import-outside-toplevel
  from dreamer_tf.run import train as train_lib  # pylint: disable=import-outside-toplevel
  from tests.conftest import TINY  # pylint: disable=import-outside-toplevel
  gin.clear_config()
  config.parse([], TINY + [
      "train.env = 'crafter:reward'", "train.env_kwargs = {'length': 20}",
      'Agent.batch_size = 2', 'Agent.batch_length = 8',
      'train.train_ratio = 1', 'train.log_every = 1e9',
      'train.save_every = 1e9', 'train.report_every = 0'])
  train_lib.train(str(tmp_path), steps=45)
  records = log_lib.read_scores(str(tmp_path / 'scores.jsonl'))
  assert len(records) == 2  # Two 20-step episodes.
  rates = achievements.success_rates(records)
  assert len(rates) == 22 and set(rates.values()) <= {0.0, 50.0, 100.0}
