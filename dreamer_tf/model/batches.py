"""Random replay batches matching an agent's spaces, for tests and benchmarks.

A batch has the layout `Agent.train` reads: {key: [B, C + T, ...]} with
C = `Agent.replay_context` leading context steps (§4.3) and T =
`Agent.batch_length` trained steps. It holds every observation and action
key, `is_first` at the first step of each row, `is_terminal` only where
`is_last`, and stored latents `deter` [B, C+T, D] and `stoch` [B, C+T, S, K]
(one-hot). It carries no `stepid`: it names no replay steps.
"""
import numpy as np


def random_batch(agent, rng, batch_size=None):
  """A batch [B, C+T] of random observations, actions and stored latents.

  agent: an `Agent` (its spaces, batch_length, replay_context and RSSM
  sizes); rng: a `np.random.Generator`; batch_size: B, by default
  `agent.batch_size`.
  """
  length = agent.sequence_length
  b = batch_size or agent.batch_size
  data = {}
  for key, space in {**agent.obs_space, **agent.act_space}.items():
    shape = (b, length, *space.shape)
    if space.discrete:
      data[key] = rng.integers(0, space.classes, shape).astype(space.dtype)
    elif space.dtype == 'uint8':
      data[key] = rng.integers(0, 256, shape).astype(np.uint8)
    elif space.dtype == 'bool':
      data[key] = rng.random(shape) < 0.01
    else:
      data[key] = rng.normal(size=shape).astype(np.float32)
  data['is_first'][:, 0] = True
  data['is_terminal'] &= data['is_last']
  rssm = agent.wm.rssm
  data['deter'] = rng.normal(size=(b, length, rssm.deter_size)).astype(
      np.float32) * 0.1
  index = rng.integers(0, rssm.classes, (b, length, rssm.stoch_size))
  data['stoch'] = np.eye(rssm.classes, dtype=np.float32)[index]
  return data
