"""Open-loop reports (spec §4.4): how far ahead the world model sees.

For a few replayed sequences the posterior observes the first `observe`
steps; from its last state the prior then imagines the remaining steps with
the actions that were really taken, and the decoder renders both parts.
Images become a video grid (truth | model | error, green border while
observing, red while imagining); every decoded key also gets its mean
squared error over the observed and the imagined steps.
"""
import numpy as np
import tensorflow as tf

from dreamer_tf import spaces as spaces_lib

GREEN, RED = (0, 200, 0), (220, 0, 0)


class OpenLoop:
  """Compiled open-loop predictions of one agent."""

  def __init__(self, agent, observe=16):
    self.agent, self.observe = agent, observe
    self._fn = tf.function(self._predict, autograph=False)

  def __call__(self, data, seed):
    """data {key: [N, C + T, ...]} in replay format (C = replay_context).

    Returns {key: (truth [N, T, ...], model [N, T, ...])} for every decoded
    observation key; images in [0, 1], vectors in raw units.
    """
    length = data['is_first'].shape[1] - self.agent.replay_context
    if not self.observe < length:
      raise ValueError(f'An open-loop report needs more than {self.observe} '
                       f'steps after the context, got {length}.')
    out = self._fn({k: tf.convert_to_tensor(v) for k, v in data.items()},
                   tf.convert_to_tensor(seed, tf.int32))
    return {k: (truth.numpy(), model.numpy())
            for k, (truth, model) in out.items()}

  def _predict(self, data, seed):
    agent, observe = self.agent, self.observe
    rssm, wm = agent.wm.rssm, agent.wm
    obs, prev_actions, _, state = agent.split_context(data)
    obs_seed, img_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    seen = {k: v[:, :observe] for k, v in obs.items()}
    _, post = rssm.observe(state, wm.encode(seen), prev_actions[:, :observe],
                           seen['is_first'], obs_seed)
    # Imagined step t consumes a_{t-1} = prev_actions[:, t] (§3.3).
    future = tf.transpose(prev_actions[:, observe:], [1, 0, 2])  # [T-O, N, A]
    seeds = tf.random.experimental.stateless_split(
        img_seed, future.shape[0])

    def step(acc, inp):
      new, _ = rssm.img_step(dict(deter=acc[0], stoch=acc[1]), *inp)
      return new['deter'], new['stoch']
    deter, stoch = tf.scan(step, (future, seeds),
                           (post['deter'][:, -1], post['stoch'][:, -1]))
    swap = lambda x: tf.transpose(x, [1, 0] + list(range(2, x.shape.rank)))
    states = dict(deter=tf.concat([post['deter'], swap(deter)], 1),
                  stoch=tf.concat([post['stoch'], swap(stoch)], 1))
    n, t = states['deter'].shape[:2]
    flat = {k: tf.reshape(v, [n * t, *v.shape[2:]]) for k, v in states.items()}
    out = {}
    for key, dist in wm.decode(flat).items():
      space = agent.obs_space[key]
      # Discrete keys: the most likely class (compared by mismatch rate).
      pred = (tf.cast(dist.mode(), tf.float32) if space.discrete
              else dist.mean())
      model = tf.reshape(pred, [n, t, *space.shape])
      truth = tf.cast(obs[key], tf.float32)
      if space.is_image:
        truth /= 255.0
      out[key] = (truth, model)
    return out


def errors(predictions, observe, discrete=()):
  """{f'{key}_observed', f'{key}_imagined': mean squared error}, or the
  rate of wrong classes for the `discrete` keys."""
  metrics = {}
  for key, (truth, model) in predictions.items():
    if key in discrete:
      sq = (model != truth).astype(np.float64)
    else:
      sq = np.square(model.astype(np.float64) - truth)
    metrics[f'{key}_observed'] = float(sq[:, :observe].mean())
    metrics[f'{key}_imagined'] = float(sq[:, observe:].mean())
  return metrics


def video_grid(truth, model, observe, border=2):
  """Frames [T, 3 H', N W', 3] uint8 of truth | model | error per sequence.

  truth, model: [N, T, H, W, C] in [0, 1] (C = 1 or 3); error is
  (model - truth + 1) / 2 (grey = exact). Each tile has a `border`-pixel
  frame, green for observed steps (t < observe) and red for imagined ones.
  """
  truth, model = np.clip(truth, 0, 1), np.clip(model, 0, 1)
  rows = np.stack([truth, model, (model - truth + 1) / 2], 2)  # [N,T,3,H,W,C]
  rows = (rows * 255).round().astype(np.uint8)
  if rows.shape[-1] == 1:
    rows = np.repeat(rows, 3, -1)
  n, t, _, h, w, _ = rows.shape
  tiles = np.zeros((n, t, 3, h + 2 * border, w + 2 * border, 3), np.uint8)
  colors = np.where(np.arange(t)[:, None] < observe, GREEN, RED)  # [T, 3]
  tiles[...] = colors[None, :, None, None, None, :]
  tiles[..., border:border + h, border:border + w, :] = rows
  # [N, T, 3, H', W', 3] -> [T, 3 H', N W', 3]
  tiles = tiles.transpose(1, 2, 3, 0, 4, 5)
  return tiles.reshape(t, 3 * tiles.shape[2], n * tiles.shape[4], 3)


def image_keys(obs_space):
  return [k for k in spaces_lib.model_keys(obs_space)
          if obs_space[k].is_image]
