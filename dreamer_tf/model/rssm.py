"""Recurrent state-space model with a block GRU (spec §2.2, §3.2, §8.10-11).

State: deter h [N, D] and stoch z [N, S, K] (S = 32 one-hot latents of K
classes), both float32. One step:

1. on is_first, zero h_{t-1}, z_{t-1} and a_{t-1};
2. a <- a / max(1, |a|) (stop-gradient divisor);
3. three Linear(hidden) -> RMSNorm -> SiLU projections of h, flat z and a;
4. G blocks, block g sees [h slice g, the three projections]; block-linear
   hidden layer -> RMSNorm (over all D) -> SiLU; block-linear gates
   (reset, candidate, update) per block;
5. h_t = u * tanh(sigmoid(r) * c) + (1 - u) * h_{t-1}, u = sigmoid(u' - 1);
6. posterior logits from [h_t, e_t], prior logits from h_t (2 layers);
7. z ~ unimix categorical, straight-through.

Time loops are `tf.scan` (never Python-unrolled), so XLA compiles one body.
"""
import dataclasses

import gin
import keras
import tensorflow as tf

from dreamer_tf.model import distributions as dists
from dreamer_tf.model import nets

sg = tf.stop_gradient


@gin.configurable('RSSM')
@dataclasses.dataclass(frozen=True)
class RSSMConfig:
  """RSSM hyperparameters (spec §1.3); gin binds them as `RSSM.<name>`."""
  deter: int = 8192
  hidden: int = 1024
  stoch: int = 32
  classes: int = 64
  blocks: int = 8
  unimix: float = 0.01
  free_nats: float = 1.0
  imglayers: int = 2
  obslayers: int = 1
  dynlayers: int = 1
  absolute: bool = False
  outscale: float = 1.0


class RSSM(keras.layers.Layer):
  """Block-GRU RSSM with `observe` (posterior over T) and `imagine` (prior)."""

  def __init__(self, action_size, config=None, seeds=None, dtype='float32',
               **kw):
    super().__init__(dtype=dtype, **kw)
    c = config or RSSMConfig()
    self.config = c
    deter, hidden, stoch, classes, blocks = (
        c.deter, c.hidden, c.stoch, c.classes, c.blocks)
    unimix, free_nats, absolute, outscale = (
        c.unimix, c.free_nats, c.absolute, c.outscale)
    imglayers, obslayers, dynlayers = c.imglayers, c.obslayers, c.dynlayers
    if deter % blocks:
      raise ValueError(f'RSSM.deter={deter} must be divisible by '
                       f'RSSM.blocks={blocks}.')
    seeds = seeds or nets.InitSeeds(0)
    self.action_size = action_size
    self.deter_size, self.stoch_size, self.classes = deter, stoch, classes
    self.blocks, self.unimix, self.free_nats = blocks, unimix, free_nats
    self.absolute = absolute
    self.dynin = [nets.dense(hidden, seeds, dtype) for _ in range(3)]
    # The first hidden layer sees [h slice g, 3 projections] in every block.
    self.dynhid = [
        nets.NormAct(nets.BlockLinear(
            deter, blocks, shared=3 * hidden if i == 0 else 0, seeds=seeds,
            dtype=dtype)) for i in range(dynlayers)]
    self.dyngru = nets.BlockLinear(3 * deter, blocks, seeds=seeds, dtype=dtype)
    self.obs_layers = [nets.dense(hidden, seeds, dtype)
                       for _ in range(obslayers)]
    self.obs_logit = nets.Linear(
        (stoch, classes), outscale, seeds=seeds, dtype=dtype)
    self.img_layers = [nets.dense(hidden, seeds, dtype)
                       for _ in range(imglayers)]
    self.img_logit = nets.Linear(
        (stoch, classes), outscale, seeds=seeds, dtype=dtype)

  @property
  def feat_size(self):
    return self.deter_size + self.stoch_size * self.classes

  def initial(self, batch_size):
    """Zero state (not learned): {deter [N, D], stoch [N, S, K]}."""
    return dict(
        deter=tf.zeros([batch_size, self.deter_size], tf.float32),
        stoch=tf.zeros([batch_size, self.stoch_size, self.classes],
                       tf.float32))

  def feat(self, state):
    """f = concat(h, flat z): [..., D + S*K]."""
    stoch = state['stoch']
    flat = tf.reshape(stoch, tf.concat(
        [tf.shape(stoch)[:-2], [self.stoch_size * self.classes]], 0))
    return tf.concat([state['deter'], flat], -1)

  def dist(self, logits):
    return dists.OneHotDist(logits, self.unimix, event_dims=1)

  def core(self, deter, stoch, action):
    """Block-GRU transition h_{t-1}, z_{t-1}, a_{t-1} -> h_t ([N, D])."""
    n, g = self.deter_size, self.blocks
    stoch = tf.reshape(stoch, [-1, self.stoch_size * self.classes])
    action = action / sg(tf.maximum(1.0, tf.abs(action)))
    shared = tf.concat([
        self.dynin[0](deter), self.dynin[1](stoch), self.dynin[2](action)],
        -1)  # [N, 3 * hidden], fed to every block
    x = self.dynhid[0](tf.cast(deter, shared.dtype), shared)  # [N, D]
    for layer in self.dynhid[1:]:
      x = layer(x)
    x = tf.cast(self.dyngru(x), tf.float32)  # [N, 3D] as G x (r, c, u)
    reset, cand, update = tf.split(tf.reshape(x, [-1, g, 3 * n // g]), 3, -1)
    reset, cand, update = (
        tf.reshape(v, [-1, n]) for v in (reset, cand, update))
    reset = tf.sigmoid(reset)
    cand = tf.tanh(reset * cand)
    update = tf.sigmoid(update - 1.0)
    return update * cand + (1.0 - update) * deter

  def prior_logits(self, deter):
    """Prior logits [..., S, K] from h (imglayers hidden layers)."""
    x = deter
    for layer in self.img_layers:
      x = layer(x)
    return tf.cast(self.img_logit(x), tf.float32)

  def obs_step(self, state, prev_action, token, is_first, seed):
    """Posterior step. Returns (state, posterior logits [N, S, K])."""
    # where(), not a multiply: a non-finite carry is reset too.
    first = tf.cast(is_first, tf.bool)
    reset = lambda x: tf.where(
        tf.reshape(first, [-1] + [1] * (x.shape.rank - 1)), tf.zeros_like(x), x)
    deter, stoch = reset(state['deter']), reset(state['stoch'])
    prev_action = reset(prev_action)
    deter = self.core(deter, stoch, prev_action)
    x = token if self.absolute else tf.concat(
        [tf.cast(deter, token.dtype), token], -1)
    for layer in self.obs_layers:
      x = layer(x)
    logits = tf.cast(self.obs_logit(x), tf.float32)
    stoch = self.dist(logits).sample(seed)
    return dict(deter=deter, stoch=stoch), logits

  def img_step(self, state, action, seed):
    """Prior step. Returns (state, prior logits [N, S, K])."""
    deter = self.core(state['deter'], state['stoch'], action)
    logits = self.prior_logits(deter)
    stoch = self.dist(logits).sample(seed)
    return dict(deter=deter, stoch=stoch), logits

  def observe(self, state, tokens, prev_actions, is_first, seed):
    """Posterior states over a sequence.

    state: initial {deter [B, D], stoch [B, S, K]}; tokens [B, T, E];
    prev_actions [B, T, A] (a_{t-1} for each step); is_first [B, T].
    Returns (final state, {deter [B,T,D], stoch [B,T,S,K], logits [B,T,S,K]}).
    """
    prev_actions = tf.convert_to_tensor(prev_actions, tf.float32)
    is_first = tf.convert_to_tensor(is_first)
    steps = tokens.shape[1]
    seeds = tf.random.experimental.stateless_split(seed, steps)  # [T, 2]
    swap = lambda x: tf.transpose(x, [1, 0] + list(range(2, x.shape.rank)))
    inputs = (swap(tokens), swap(prev_actions), swap(is_first), seeds)

    def step(acc, inp):
      token, prev_action, first, step_seed = inp
      new, logits = self.obs_step(
          dict(deter=acc[0], stoch=acc[1]), prev_action, token, first,
          step_seed)
      return new['deter'], new['stoch'], logits

    init = (state['deter'], state['stoch'],
            tf.zeros_like(state['stoch']))
    deter, stoch, logits = tf.scan(step, inputs, init)
    out = dict(deter=swap(deter), stoch=swap(stoch), logits=swap(logits))
    final = dict(deter=deter[-1], stoch=stoch[-1])
    return final, out

  def imagine(self, start, policy, horizon, seed):
    """Rolls the prior forward `horizon` steps under `policy`.

    start: {deter [N, D], stoch [N, S, K]}; policy(feat [N, F], seed) ->
    action [N, A]. Returns (states {deter [N, H+1, D], stoch [N, H+1, S, K]}
    including the start, actions [N, H+1, A] where action tau is taken at
    state tau, the last one sampled at the final state).
    """
    seeds = tf.random.experimental.stateless_split(seed, 2 * horizon + 1)

    first_action = policy(self.feat(start), seeds[0])
    init = (start['deter'], start['stoch'], first_action)
    pairs = tf.reshape(seeds[1:], [horizon, 2, 2])
    # Step tau consumes the action of state tau (carried in acc) to predict
    # state tau+1 and samples the next action there.
    def rollout(acc, step_seeds):
      state = dict(deter=acc[0], stoch=acc[1])
      new, _ = self.img_step(state, acc[2], step_seeds[0])
      action = policy(self.feat(new), step_seeds[1])
      return new['deter'], new['stoch'], action

    deter, stoch, actions = tf.scan(rollout, pairs, init)
    cat = lambda first, rest: tf.concat(
        [first[:, None], tf.transpose(
            rest, [1, 0] + list(range(2, rest.shape.rank)))], 1)
    states = dict(deter=cat(start['deter'], deter),
                  stoch=cat(start['stoch'], stoch))
    return states, cat(first_action, actions)

  def kl_losses(self, post_logits, prior_logits):
    """Dynamics and representation losses per step (spec §3.2).

    L_dyn = max(free, KL(sg(q) || p)), L_rep = max(free, KL(q || sg(p))),
    the KL summed over the S latents before the clamp. Returns
    (dyn [...], rep [...], metrics).
    """
    post, prior = self.dist(post_logits), self.dist(prior_logits)
    dyn = self.dist(sg(post_logits)).kl_divergence(prior)
    rep = post.kl_divergence(self.dist(sg(prior_logits)))
    if self.free_nats:
      dyn = tf.maximum(dyn, self.free_nats)
      rep = tf.maximum(rep, self.free_nats)
    metrics = dict(dyn_ent=tf.reduce_mean(prior.entropy()),
                   rep_ent=tf.reduce_mean(post.entropy()))
    return dyn, rep, metrics
