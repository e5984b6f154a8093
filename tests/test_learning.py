"""CI learning tests: a tiny agent learns a small task within minutes.

The tasks (`tests/sign_env.py`) pay up to 1 per step for naming the sign of
the observation, with the reward arriving one step later, so the world
model has to remember the observation and the action, and the policy must
learn in imagination from the predicted rewards. One task has a discrete
action (categorical actor), the other a continuous one (bounded normal
actor). A random policy scores 8 per 16-step episode (each test measures
it); the trained agent must average at least 13 over its last 10 training
episodes, more than six standard deviations of a 10-episode random average
above chance.
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
    'RSSM.hidden = 32', 'RSSM.classes = 8', 'RSSM.stoch = 8',
    'WorldModel.units = 32', 'Actor.units = 32', 'Critic.units = 32',
    'Agent.batch_size = 8', 'Agent.batch_length = 16',
    'LaProp.lr = 1e-3', 'LaProp.warmup = 0',
    'train.train_ratio = 256', 'train.log_every = 1e9',
    'train.save_every = 1e9', 'train.report_every = 0',
    "Agent.jit_compile = 'auto'",  # XLA: thousands of updates.
]


def random_policy_scores(env, episodes=200, seed=0):
  """Returns of uniformly random actions (sampled from the action space)."""
  env.action_space.seed(seed)
  scores = []
  for i in range(episodes):
    env.reset(seed=seed * 1000 + i)
    total, done = 0.0, False
    while not done:
      _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
      total += reward
      done = terminated or truncated
    scores.append(total)
  return np.array(scores)


@pytest.mark.slow
@pytest.mark.parametrize('env_id', ['SignBandit-v0', 'SignSteer-v0'])
def test_tiny_agent_beats_a_random_policy_by_a_wide_margin(tmp_path, env_id):
  assert env_id in gym.registry
  random = random_policy_scores(gym.make(env_id).unwrapped)
  chance = random.mean()
  assert abs(chance - sign_env.LENGTH / 2) < 0.5
  # The pass mark is far outside the spread of a 10-episode random average.
  assert 13.0 > chance + 6 * random.std() / np.sqrt(10)
  config.parse([], LEARN + [f"train.env = 'gym:tests.sign_env:{env_id}'"])
  result = train_lib.train(str(tmp_path), steps=800)
  scores = [json.loads(l)['episode/score']
            for l in open(tmp_path / 'scores.jsonl')]
  first, last = np.mean(scores[:10]), np.mean(scores[-10:])
  assert result['updates'] > 1000
  assert first < chance + 2.5, scores  # It starts at chance ...
  assert last >= 13.0, scores  # ... and learns the task.
