"""Shared test helpers: tiny model configs and synthetic replay batches."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import gin
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny model for plumbing tests (seconds to compile and run on 2 cores).
TINY = [
    'RSSM.deter = 64', 'RSSM.hidden = 16', 'RSSM.classes = 4',
    'RSSM.stoch = 4', 'WorldModel.depth = 2', 'WorldModel.units = 16',
    'Actor.units = 16', 'Critic.units = 16', 'Actor.layers = 1',
    'Critic.layers = 1', 'WorldModel.enc_layers = 1',
    'WorldModel.dec_layers = 1',
]


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def bind(*bindings):
  gin.parse_config_files_and_bindings([], list(bindings))


def make_batch(agent, batch, rng=None):
  """Random replay batch [B, C + T] matching the agent's spaces."""
  rng = rng or np.random.default_rng(0)
  length = agent.batch_length + agent.replay_context
  data = {}
  for key, space in {**agent.obs_space, **agent.act_space}.items():
    shape = (batch, length, *space.shape)
    if space.discrete:
      data[key] = rng.integers(0, space.classes, shape).astype(space.dtype)
    elif space.dtype == 'uint8':
      data[key] = rng.integers(0, 256, shape).astype(np.uint8)
    elif space.dtype == 'bool':
      data[key] = np.zeros(shape, bool)
    else:
      data[key] = rng.normal(size=shape).astype(np.float32)
  data['is_first'][:, 0] = True
  if agent.replay_context:
    rssm = agent.wm.rssm
    data['deter'] = rng.normal(size=(batch, length, rssm.deter_size)).astype(
        np.float32) * 0.1
    index = rng.integers(0, rssm.classes, (batch, length, rssm.stoch_size))
    data['stoch'] = np.eye(rssm.classes, dtype=np.float32)[index]
  return data
