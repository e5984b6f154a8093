"""Actor-critic learned in imagination (spec §1.4, §3.3-§3.7).

* `lambda_return`: the generic recursion of §3.4 for imagination and replay.
* `ReturnNormalizer`: EMA of the 5th/95th return percentiles, S = max(1, hi-lo).
* `Actor`: REINFORCE policy over a dict action space (one-hot unimix
  categorical for discrete keys, bounded normal for continuous keys).
* `Critic`: two-hot symexp value head, plus a slow EMA copy.
* `imagination_losses` and `replay_value_loss`: §3.6 and §3.7.
"""
import dataclasses

import gin
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from dreamer_tf.model import distributions as dists
from dreamer_tf.model import nets

sg = tf.stop_gradient


def lambda_return(last, term, reward, boot, discount, lam):
  """λ-returns of §3.4 over a length-N sequence ([B, N] each).

  R_{N-1} = boot_{N-1}; for t = N-2..0 with live = (1 - term_{t+1}) γ and
  cont = (1 - last_{t+1}) λ:
    R_t = r_{t+1} + (1 - cont) live boot_{t+1} + live cont R_{t+1}.
  Returns R_0..R_{N-2}: [B, N-1].
  """
  last, term, reward, boot = (
      tf.cast(x, tf.float32) for x in (last, term, reward, boot))
  live = (1.0 - term[:, 1:]) * discount  # [B, N-1]
  cont = (1.0 - last[:, 1:]) * lam
  interm = reward[:, 1:] + (1.0 - cont) * live * boot[:, 1:]
  # Scan backwards over time (time-major).
  elems = tf.transpose(tf.stack([interm, live * cont], -1), [1, 0, 2])
  rets = tf.scan(lambda acc, x: x[:, 0] + x[:, 1] * acc, elems,
                 initializer=boot[:, -1], reverse=True)  # [N-1, B]
  return tf.transpose(rets, [1, 0])


@gin.configurable('ReturnNormalizer')
@dataclasses.dataclass(frozen=True)
class ReturnNormalizerConfig:
  """Percentile return normalisation (spec §1.4 `retnorm`)."""
  rate: float = 0.01
  limit: float = 1.0
  perclo: float = 5.0
  perchi: float = 95.0


class ReturnNormalizer(keras.layers.Layer):
  """Percentile return scale (spec §3.5), state in float32 variables.

  lo <- (1-rate) lo + rate P_lo(R), hi likewise, over all returns of the
  global batch; scale S = max(limit, hi - lo). No offset, no debiasing.
  """

  def __init__(self, config=None, **kw):
    super().__init__(dtype='float32', **kw)
    c = config or ReturnNormalizerConfig()
    self.rate, self.limit = c.rate, c.limit
    self.perclo, self.perchi = c.perclo, c.perchi
    # Every replica computes the same (all-gathered) percentiles.
    self.lo = self.add_weight((), 'zeros', name='lo', trainable=False,
                              aggregation='only_first_replica')
    self.hi = self.add_weight((), 'zeros', name='hi', trainable=False,
                              aggregation='only_first_replica')

  def percentiles(self, returns):
    """[lo, hi] percentiles of `returns` (linear interpolation)."""
    return tfp.stats.percentile(
        tf.reshape(tf.cast(returns, tf.float32), [-1]),
        [self.perclo, self.perchi], interpolation='linear')

  def update(self, percentiles):
    """EMA update from this batch's [lo, hi] percentiles; returns scale."""
    lo, hi = self.updated(percentiles)
    self.assign(lo, hi)
    return self.scale()

  def updated(self, percentiles):
    """The EMA statistics after this batch, without assigning them.

    Non-finite percentiles (a diverged batch) keep the old statistics.
    """
    ok = tf.reduce_all(tf.math.is_finite(percentiles))
    lo = (1 - self.rate) * self.lo + self.rate * percentiles[0]
    hi = (1 - self.rate) * self.hi + self.rate * percentiles[1]
    return tf.where(ok, lo, self.lo), tf.where(ok, hi, self.hi)

  def assign(self, lo, hi):
    self.lo.assign(lo)
    self.hi.assign(hi)

  def scale_of(self, lo, hi):
    return sg(tf.maximum(self.limit, hi - lo))

  def scale(self):
    return self.scale_of(self.lo, self.hi)


@gin.configurable('Actor')
@dataclasses.dataclass(frozen=True)
class ActorConfig:
  """Policy hyperparameters (spec §1.4). `unimix` 1% follows the paper
  (HEAD omits it for the discrete actor, #219); set 0.0 for HEAD."""
  layers: int = 3
  units: int = 1024
  outscale: float = 0.01
  unimix: float = 0.01
  minstd: float = 0.1
  maxstd: float = 1.0


class Actor(keras.layers.Layer):
  """Policy π(a | f): MLP then one output head per action key (sorted)."""

  def __init__(self, act_space, config=None, seeds=None, dtype='float32',
               **kw):
    super().__init__(dtype=dtype, **kw)
    c = config or ActorConfig()
    self.config = c
    layers, units, outscale = c.layers, c.units, c.outscale
    unimix, minstd, maxstd = c.unimix, c.minstd, c.maxstd
    seeds = seeds or nets.InitSeeds(0)
    self.act_space = act_space
    self.keys = sorted(act_space)
    self.unimix, self.minstd, self.maxstd = unimix, minstd, maxstd
    self.mlp = nets.MLP(layers, units, seeds, dtype)
    self.heads = {}
    for key in self.keys:
      space = act_space[key]
      if space.discrete:
        self.heads[key] = [nets.Linear(
            space.classes, outscale, seeds=seeds, dtype=dtype)]
      else:
        self.heads[key] = [
            nets.Linear(space.shape, outscale, seeds=seeds, dtype=dtype)
            for _ in ('mean', 'stddev')]

  @property
  def sizes(self):
    """Width of each key in the concatenated action vector."""
    return [self.act_space[k].size for k in self.keys]

  def call(self, feat):
    """feat [..., F] -> {key: distribution}."""
    x = self.mlp(feat)
    out = {}
    for key in self.keys:
      head = self.heads[key]
      if self.act_space[key].discrete:
        out[key] = dists.OneHotDist(head[0](x), self.unimix)
      else:
        out[key] = dists.BoundedNormal(
            head[0](x), head[1](x), self.minstd, self.maxstd)
    return out

  def split(self, actions):
    """[..., A] -> {key: [..., size]}."""
    return dict(zip(self.keys, tf.split(actions, self.sizes, -1)))

  def sample(self, feat, seed, mode=False):
    """Samples (or takes the mode of) every key; returns [..., A]."""
    policy = self(feat)
    seeds = tf.random.experimental.stateless_split(seed, len(self.keys))
    parts = [policy[k].mode() if mode else policy[k].sample(seeds[i])
             for i, k in enumerate(self.keys)]
    return tf.concat(parts, -1)


@gin.configurable('Critic')
@dataclasses.dataclass(frozen=True)
class CriticConfig:
  """Value-network hyperparameters (spec §1.4); the slow critic copies it."""
  layers: int = 3
  units: int = 1024
  bins: int = 255


class Critic(keras.layers.Layer):
  """Value v(f) as a symexp two-hot head with a zero-initialised output."""

  def __init__(self, config=None, seeds=None, dtype='float32', **kw):
    super().__init__(dtype=dtype, **kw)
    c = config or CriticConfig()
    self.config = c
    seeds = seeds or nets.InitSeeds(0)
    self.mlp = nets.MLP(c.layers, c.units, seeds, dtype)
    self.out = nets.Linear(c.bins, 0.0, seeds=seeds, dtype=dtype)

  def call(self, feat):
    return dists.SymexpTwoHot(tf.cast(self.out(self.mlp(feat)), tf.float32))


def ema_update(slow, fast, rate):
  """θ_slow <- rate θ + (1 - rate) θ_slow for matching variable lists."""
  for s, f in zip(slow, fast):
    s.assign(rate * f + (1.0 - rate) * s)


def imagination_returns(reward, cont, value, lam=0.95, disc=1.0):
  """λ-returns and weights of imagined trajectories (§3.4).

  reward, cont, value: [N, H+1] predicted r̂, ĉ (which already contains γ)
  and fast-critic v. last = 0, term = 1 - ĉ, boot = v, γ = 1, so
  R_τ = r̂_{τ+1} + ĉ_{τ+1} ((1 - λ) v_{τ+1} + λ R_{τ+1}), R_H = v_H.
  Returns (R [N, H], w [N, H+1] with w_τ = Π_{k<=τ} ĉ_k), both stop-gradient.
  With `contdisc=False` the caller passes ĉ·γ and disc=γ, so w_0 = ĉ_0.
  """
  ret = lambda_return(tf.zeros_like(cont), 1.0 - cont, reward, value, 1.0, lam)
  weight = tf.math.cumprod(cont, 1) / disc
  return sg(ret), sg(weight)


def advantage(ret, value, scale):
  """A_τ = (R_τ - v_τ) / S on the first H steps (§3.6), stop-gradient.

  ret R [N, H]; value v [N, H+1] (the fast critic's mean); scale S.
  """
  return sg((ret - value[:, :-1]) / scale)


def actor_loss(policy, actions, adv, weight, actent=3e-4, adv_grad=None):
  """L_π = w_τ (-log π(a_τ) A_τ - η H[π]) on the first H steps (§3.6).

  policy: {key: distribution over [N, H+1]}; actions {key: [N, H+1, .]};
  adv A [N, H]; weight w [N, H+1]. Returns (loss [N, H], entropies {key:
  [N, H]}).

  With `adv_grad` (the backprop actor of the 2023 recipe, its
  `actor_grad_cont: backprop`): L_π = w_τ (-A_τ - η H[π]), where A_τ =
  (R_τ - v_τ) / S keeps the gradient of the imagined dynamics with respect
  to the reparameterised actions (`update.imagine`).
  """
  ents = {k: policy[k].entropy()[:, :-1] for k in policy}
  if adv_grad is not None:
    objective = adv_grad
  else:
    logpi = sum(policy[k].log_prob(sg(actions[k]))[:, :-1] for k in policy)
    objective = logpi * sg(adv)
  loss = weight[:, :-1] * -(objective + actent * sum(ents.values()))
  return loss, ents


def critic_loss(value, ret, slow_value, weight, slowreg=1.0):
  """L_V = w_τ (CE(V, sg R_τ) + slowreg CE(V, sg v^slow_τ)) (§3.7), [N, H].

  value: fast critic distribution [N, H+1]; ret R [N, H]; slow_value [N,
  H+1]; weight w [N, H+1].
  """
  return weight[:, :-1] * _critic_loss(value, ret, slow_value, slowreg)


def return_metrics(ret, val, adv, scale):
  """Means and spreads of one reward stream's returns and advantages."""
  normed = ret / scale
  return dict(
      adv=tf.reduce_mean(adv), adv_std=tf.math.reduce_std(adv),
      adv_mag=tf.reduce_mean(tf.abs(adv)), ret=tf.reduce_mean(normed),
      val=tf.reduce_mean(val), ret_min=tf.reduce_min(normed),
      ret_max=tf.reduce_max(normed),
      ret_rate=tf.reduce_mean(tf.cast(tf.abs(normed) >= 1.0, tf.float32)))


EXTRINSIC = 'extr'  # The reward stream of the env's rewards (§3.4).


@gin.configurable
def imagination_losses(
    policy, actions, value, slow_value, ret, weight, scale, actent=3e-4,
    slowreg=1.0, adv_weights=None, ret_grad=None, value_grad=None):
  """Actor (§3.6) and imagination critic (§3.7) losses, [N, H] each.

  policy: {key: distribution over [N, H+1]}; actions: {key: [N, H+1, .]}
  sampled in imagination; value: fast critic distribution [N, H+1];
  slow_value: slow critic mean [N, H+1]; ret R [N, H]; weight w [N, H+1];
  scale S = max(1, P95 - P5). A_τ = (R_τ - v_τ) / S;
  L_π = w_τ (-log π(a_τ) sg(A_τ) - η H[π]);
  L_V = w_τ (CE(V, sg R_τ) + slowreg CE(V, sg v^slow_τ)).

  Several reward streams (exploration, DreamerV3-XP): value, slow_value,
  ret and scale are dicts {stream: ...} holding `EXTRINSIC`, each stream
  with its own critic and scale, and A_τ = Σ_k adv_weights[k] A^k_τ (each
  A^k normalised by its own S^k). The losses are then `policy`, `value`
  (the extrinsic critic) and `value_<stream>` for the others; metrics of
  the other streams are prefixed `<stream>/`.

  ret_grad [N, H] and value_grad [N, H+1] (one reward stream only): R and
  v with the gradient of imagination, for the backprop actor
  (`actor_loss`); the critic still learns from the stop-gradient R.
  """
  if ret_grad is not None and isinstance(ret, dict) and len(ret) > 1:
    raise ValueError('The backprop actor takes one reward stream; '
                     f'got {sorted(ret)}.')
  if not isinstance(ret, dict):
    value, slow_value, ret, scale = (
        {EXTRINSIC: x} for x in (value, slow_value, ret, scale))
  adv_weights = adv_weights or {EXTRINSIC: 1.0}
  if set(adv_weights) != set(ret) or EXTRINSIC not in ret:
    raise ValueError(f'Advantage weights for {sorted(adv_weights)} but '
                     f'reward streams {sorted(ret)}; both need {EXTRINSIC!r}.')
  losses, metrics, total_adv = {}, {}, 0.0
  for stream in ret:
    val = sg(value[stream].mean())
    adv = advantage(ret[stream], val, scale[stream])
    total_adv += adv_weights[stream] * adv
    loss_key = 'value' if stream == EXTRINSIC else f'value_{stream}'
    losses[loss_key] = critic_loss(
        value[stream], ret[stream], slow_value[stream], weight, slowreg)
    prefix = '' if stream == EXTRINSIC else f'{stream}/'
    stats = return_metrics(ret[stream], val, adv, scale[stream])
    stats['slowval'] = tf.reduce_mean(slow_value[stream])
    metrics.update({prefix + k: v for k, v in stats.items()})
  adv_grad = None
  if ret_grad is not None:
    adv_grad = (ret_grad - value_grad[:, :-1]) / scale[EXTRINSIC]
  policy_loss, ents = actor_loss(policy, actions, total_adv, weight, actent,
                                 adv_grad)
  metrics['weight'] = tf.reduce_mean(weight)
  for k, ent in ents.items():
    metrics[f'ent/{k}'] = tf.reduce_mean(ent)
  return dict(policy=policy_loss, **losses), metrics


def _critic_loss(value, target, slow_target, slowreg):
  """CE(V, sg R) + slowreg CE(V, sg v_slow) on the first K = target.shape[1]
  steps of `value` [N, K(+1)]; one log-softmax serves both two-hot targets."""
  steps = target.shape[1]
  logp = tf.nn.log_softmax(value.logits[:, :steps], -1)  # [N, K, bins]
  weights = dists.twohot(sg(target), value.bins) + slowreg * dists.twohot(
      sg(slow_target[:, :steps]), value.bins)
  return -tf.reduce_sum(weights * logp, -1)


def replay_value_loss(
    value, slow_value, reward, is_last, is_terminal, boot, horizon=333,
    lam=0.95, slowreg=1.0):
  """Critic loss on replayed sequences (§3.7, `repval`).

  value: critic distribution over [B, K] posterior features (with gradient);
  slow_value [B, K]; reward, is_last, is_terminal [B, K] real data; boot
  [B, K]: R_0 of the imagined trajectory from each step. Returns [B, K-1].
  """
  ret = sg(lambda_return(is_last, is_terminal, reward, boot,
                         1.0 - 1.0 / horizon, lam))  # [B, K-1]
  weight = 1.0 - tf.cast(is_last[:, :-1], tf.float32)
  return weight * _critic_loss(value, ret, slow_value, slowreg)
