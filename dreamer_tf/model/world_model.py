"""World model: encoder, RSSM, decoder, reward and continue heads (§2, §3.2).

Observations are dicts. Images (uint8 HxWxC, concatenated on channels in
sorted key order) go through the conv encoder as x/255 - 0.5; vectors are
symlogged (continuous) or one-hot encoded (discrete), concatenated in sorted
key order and go through an MLP. Tokens e_t = concat(image, vector features).
"""
import dataclasses
import math

import gin
import keras
import tensorflow as tf

from dreamer_tf.model import distributions as dists
from dreamer_tf.model import nets
from dreamer_tf.model import rssm as rssm_lib
from dreamer_tf import spaces as spaces_lib

sg = tf.stop_gradient


class Encoder(keras.layers.Layer):
  """obs dict [N, ...] -> tokens [N, E]."""

  def __init__(self, obs_space, depth, mults, kernel, units, layers,
               symlog_inputs, seeds, dtype, **kw):
    super().__init__(dtype=dtype, **kw)
    keys = spaces_lib.model_keys(obs_space)
    self.obs_space = obs_space
    self.image_keys = [k for k in keys if obs_space[k].is_image]
    self.vector_keys = [k for k in keys if not obs_space[k].is_image]
    self.symlog_inputs = symlog_inputs
    self.cnn = self.mlp = None
    if self.image_keys:
      self.cnn = nets.ConvEncoder(depth, mults, kernel, seeds, dtype)
    if self.vector_keys:
      self.mlp = nets.MLP(layers, units, seeds, dtype)

  def call(self, obs):
    outs = []
    if self.cnn:
      outs.append(self.cnn(tf.concat([obs[k] for k in self.image_keys], -1)))
    if self.mlp:
      outs.append(self.mlp(vector_inputs(
          obs, self.obs_space, self.vector_keys, self.symlog_inputs)))
    return tf.concat([tf.cast(x, self.compute_dtype) for x in outs], -1)


def vector_inputs(obs, obs_space, keys, symlog_inputs=True):
  """Concatenates vector observations: symlog(continuous), one-hot(discrete)."""
  parts = []
  for key in keys:
    space, value = obs_space[key], obs[key]
    if space.discrete:
      value = tf.one_hot(tf.cast(value, tf.int32), space.classes)
      value = tf.reshape(value, tf.concat(
          [tf.shape(value)[:1], [space.size]], 0))
    else:
      value = tf.cast(value, tf.float32)
      value = tf.reshape(value, tf.concat(
          [tf.shape(value)[:1], [space.size]], 0))
      value = dists.symlog(value) if symlog_inputs else value
    parts.append(value)
  return tf.concat(parts, -1)


class Decoder(keras.layers.Layer):
  """Latent -> dict of output distributions, one per observation key."""

  def __init__(self, obs_space, depth, mults, kernel, units, layers, bspace,
               outscale, seeds, dtype, **kw):
    super().__init__(dtype=dtype, **kw)
    keys = spaces_lib.model_keys(obs_space)
    self.obs_space = obs_space
    self.image_keys = [k for k in keys if obs_space[k].is_image]
    self.vector_keys = [k for k in keys if not obs_space[k].is_image]
    self.cnn = self.mlp = None
    if self.image_keys:
      shapes = [obs_space[k].shape for k in self.image_keys]
      if len({s[:2] for s in shapes}) > 1:
        raise ValueError(f'Image keys {self.image_keys} differ in size.')
      channels = sum(s[-1] for s in shapes)
      self.cnn = nets.ConvDecoder(
          (*shapes[0][:2], channels), depth, units, mults, kernel, bspace,
          outscale, seeds, dtype)
    if self.vector_keys:
      self.mlp = nets.MLP(layers, units, seeds, dtype)
      self.heads = {
          k: nets.Linear(
              (*obs_space[k].shape, obs_space[k].classes)
              if obs_space[k].discrete else (obs_space[k].size,),
              outscale, seeds=seeds, dtype=dtype)
          for k in self.vector_keys}

  def call(self, deter, stoch_flat):
    """deter [N, D], stoch_flat [N, S*K] -> {key: distribution over [N]}."""
    outs = {}
    if self.cnn:
      images = self.cnn(deter, stoch_flat)  # [N, H, W, C] in [0, 1]
      sizes = [self.obs_space[k].shape[-1] for k in self.image_keys]
      for key, image in zip(self.image_keys, tf.split(images, sizes, -1)):
        outs[key] = dists.ImageMSE(image)
    if self.mlp:
      x = self.mlp(tf.concat([stoch_flat, deter], -1))
      for key in self.vector_keys:
        out = self.heads[key](x)
        if self.obs_space[key].discrete:
          outs[key] = _DiscreteVector(out)
        else:
          outs[key] = dists.SymlogMSE(out)
    return outs


class _DiscreteVector:
  """Categorical NLL for a discrete vector observation, summed over dims."""

  def __init__(self, logits):
    self.logits = tf.cast(logits, tf.float32)

  def mode(self):
    return tf.argmax(self.logits, -1)

  def loss(self, target):
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.cast(target, tf.int32), self.logits)
    return tf.reduce_sum(tf.reshape(ce, [tf.shape(ce)[0], -1]), -1)


class Head(keras.layers.Layer):
  """MLP(layers x units) on the feature f, then a Linear output layer."""

  def __init__(self, layers, units, outputs, outscale, seeds, dtype, **kw):
    super().__init__(dtype=dtype, **kw)
    self.mlp = nets.MLP(layers, units, seeds, dtype)
    self.out = nets.Linear(outputs, outscale, seeds=seeds, dtype=dtype)

  def call(self, feat):
    return tf.cast(self.out(self.mlp(feat)), tf.float32)


@gin.configurable('WorldModel')
@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
  """Encoder, decoder and head hyperparameters (spec §1.3, §2.1, §2.3).

  Gin binds them as `WorldModel.<name>`. `units` is the MLP width of the
  vector encoder/decoder and of the reward and continue heads; `depth` the
  CNN base channels (stages depth * mults).
  """
  depth: int = 64
  mults: tuple = (2, 3, 4, 4)
  kernel: int = 5
  units: int = 1024
  enc_layers: int = 3
  dec_layers: int = 3
  symlog_inputs: bool = True
  bspace: int = 8
  dec_outscale: float = 1.0
  reward_layers: int = 1
  cont_layers: int = 1
  bins: int = 255


class WorldModel(keras.layers.Layer):
  """Encoder + RSSM + decoder/reward/continue heads and their loss (§3.2)."""

  def __init__(self, obs_space, act_size, horizon=333, contdisc=True,
               config=None, rssm_config=None, seeds=None, dtype='float32',
               **kw):
    super().__init__(dtype=dtype, **kw)
    spaces_lib.check_obs_space(obs_space)
    c = config or WorldModelConfig()
    self.config = c
    seeds = seeds or nets.InitSeeds(0)
    self.obs_space = obs_space
    self.keys = spaces_lib.model_keys(obs_space)
    self.horizon, self.contdisc = horizon, contdisc
    # Creation order fixes the init seeds: encoder, RSSM, decoder, heads.
    self.encoder = Encoder(obs_space, c.depth, c.mults, c.kernel, c.units,
                           c.enc_layers, c.symlog_inputs, seeds, dtype)
    self.rssm = rssm_lib.RSSM(act_size, rssm_config, seeds=seeds, dtype=dtype)
    self.decoder = Decoder(obs_space, c.depth, c.mults, c.kernel, c.units,
                           c.dec_layers, c.bspace, c.dec_outscale, seeds,
                           dtype)
    self.reward_head = Head(
        c.reward_layers, c.units, (c.bins,), 0.0, seeds, dtype)
    self.cont_head = Head(c.cont_layers, c.units, (), 1.0, seeds, dtype)

  def reward(self, feat):
    return dists.SymexpTwoHot(self.reward_head(feat))

  def cont(self, feat):
    return dists.Bernoulli(self.cont_head(feat))

  def encode(self, obs):
    """obs dict [B, T, ...] -> tokens [B, T, E]."""
    first = obs[self.keys[0]]
    b, t = first.shape[0], first.shape[1]
    flat = {k: tf.reshape(obs[k], [b * t, *self.obs_space[k].shape])
            for k in self.keys}
    tokens = self.encoder(flat)
    return tf.reshape(tokens, [b, t, tokens.shape[-1]])

  def token_size(self):
    """E, the width of `encode`'s tokens (the encoder runs once on zeros)."""
    zeros = {k: tf.zeros([1, 1, *self.obs_space[k].shape],
                         self.obs_space[k].dtype) for k in self.keys}
    return int(self.encode(zeros).shape[-1])

  def decode(self, states):
    """states {deter [N, D], stoch [N, S, K]} -> {key: distribution}."""
    deter = states['deter']
    stoch = tf.reshape(states['stoch'], [-1, math.prod(
        states['stoch'].shape[-2:])])
    return self.decoder(deter, stoch)

  def loss(self, obs, prev_actions, state, seed, reward_grad=True):
    """World-model losses per step (§3.2).

    obs: dict [B, T, ...] incl. reward, is_first, is_terminal; prev_actions
    [B, T, A]; state: initial RSSM state [B, ...]. With `reward_grad`
    False the reward head sees stop-gradient features, so the reward loss
    trains only the head (official `reward_grad`; default True).
    Returns (losses {name: [B, T]}, posterior states {deter [B,T,D],
    stoch [B,T,S,K]}, final state, metrics, tokens [B, T, E] the encoder's
    embeddings of the observations).
    """
    b, t = obs['is_first'].shape[:2]
    tokens = self.encode(obs)
    final, post = self.rssm.observe(
        state, tokens, prev_actions, obs['is_first'], seed)
    prior_logits = self.rssm.prior_logits(post['deter'])
    dyn, rep, metrics = self.rssm.kl_losses(post['logits'], prior_logits)
    losses = dict(dyn=dyn, rep=rep)
    flat = dict(
        deter=tf.reshape(post['deter'], [b * t, -1]),
        stoch=tf.reshape(post['stoch'], [b * t, *post['stoch'].shape[2:]]))
    for key, dist in self.decode(flat).items():
      target = obs[key]
      target = tf.reshape(target, [b * t, *self.obs_space[key].shape])
      if self.obs_space[key].is_image:
        target = tf.cast(target, tf.float32) / 255.0
      losses[key] = tf.reshape(dist.loss(target), [b, t])
    feat = self.rssm.feat(post)  # [B, T, F]
    reward_feat = feat if reward_grad else sg(feat)
    losses['reward'] = self.reward(reward_feat).loss(obs['reward'])
    cont = 1.0 - tf.cast(obs['is_terminal'], tf.float32)
    if self.contdisc:
      cont *= 1.0 - 1.0 / self.horizon
    losses['cont'] = self.cont(feat).loss(cont)
    states = dict(deter=post['deter'], stoch=post['stoch'])
    return losses, states, final, metrics, tokens
