"""CI learning test: a tiny agent learns a small task within minutes.

The task (`tests/sign_env.py`) pays 1 per step for naming the sign of the
observation, with the reward arriving one step later, so the world model
has to remember the observation and the action, and the policy must learn
in imagination from the predicted rewards. A random policy scores 8 per
16-step episode (the test measures it); the trained agent must average at
least 13 over its last 10 training episodes, more than seven standard
deviations of a 10-episode random average above chance.
"""
import json

import gymnasium as gym
import numpy as np
import pytest

from dreamer_tf import config
from dreamer_tf.run import train as train_lib
from tests import sign_env
from tests.conftest import TINY

# The tiny preset, a little wider, with a learning rate for few updates.
LEARN = TINY + [
    "train.env = 'gym:tests.sign_env:SignBandit-v0'",
    'RSSM.hidden = 32', 'RSSM.classes = 8', 'RSSM.stoch = 8',
    'WorldModel.units = 32', 'Actor.units = 32', 'Critic.units = 32',
    'Agent.batch_size = 8', 'Agent.batch_length = 16',
    'LaProp.lr = 1e-3', 'LaProp.warmup = 0',
    'train.train_ratio = 256', 'train.log_every = 1e9',
    'train.save_every = 1e9', 'train.report_every = 0',
]


def random_policy_score(episodes=200, seed=0):
  env = sign_env.SignBandit()
  rng = np.random.default_rng(seed)
  scores = []
  for i in range(episodes):
    env.reset(seed=seed * 1000 + i)
    total, done = 0.0, False
    while not done:
      _, reward, terminated, truncated, _ = env.step(rng.integers(2))
      total += reward
      done = terminated or truncated
    scores.append(total)
  return float(np.mean(scores))


@pytest.mark.slow
def test_tiny_agent_beats_a_random_policy_by_a_wide_margin(tmp_path):
  assert 'SignBandit-v0' in gym.registry
  chance = random_policy_score()
  assert abs(chance - sign_env.LENGTH / 2) < 0.5
  config.parse([], LEARN)
  result = train_lib.train(str(tmp_path), steps=800)
  scores = [json.loads(l)['episode/score']
            for l in open(tmp_path / 'scores.jsonl')]
  first, last = np.mean(scores[:10]), np.mean(scores[-10:])
  assert result['updates'] > 1000
  assert first < chance + 2.5, scores  # It starts at chance ...
  assert last >= 13.0, scores  # ... and learns the task.
