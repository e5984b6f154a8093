"""Intrinsic reward from the disagreement of an ensemble (DreamerV3-XP).

An ensemble of K one-step predictors g_k(f_t, a_t) of the next step is
trained on real transitions of the replay batch: inputs the posterior
features f_t and the action a_t taken there (Plan2Explore, Sekar et al.
2020, which trains on real transitions; DreamerV3-XP, arXiv 2510.21418,
trains on imagined prior rollouts, which only teaches the ensemble to
imitate the prior). `Exploration.target` picks what they predict:

  stoch  p_k(z_{t+1}), the next posterior latent (S categoricals of C
         classes), against the posterior sample z_{t+1}: the cross-entropy
         summed over the S latents
  embed  e_k, the encoder's embedding e_{t+1} = enc(x_{t+1}) of the next
         observation (Plan2Explore's target): the squared error summed
         over its E entries. A deterministic function of the observation,
         so the members agree wherever they have data; the posterior
         sample carries the latent's sampling noise, and while the
         posterior is noisy the members' spread on it falls as transitions
         get rarer (DeepSea 10: a rank correlation with rarity of -0.44 to
         -0.71, against +0.40 to +0.91 for the embedding;
         analysis/ensemble_novelty.py, docs/benchmarks/xp-deepsea.md)

Loss: mean over members; transitions into an episode's first step are
masked. Every member has its own initialisation (none starts at zero)
and the ensemble has its own optimizer (agent.py); its inputs are
stop-gradient, so it never trains the world model.

In imagination the intrinsic reward of the transition τ -> τ+1 is one of

  latent   Var_k[p_k(z_{τ+1} | f_τ, a_τ)], the variance of the predicted
           class probabilities over members, mean over the S·C entries
           (Plan2Explore's disagreement); with target `embed`, of the
           predicted embeddings, mean over the E entries
  reward   Var_k[r̂(h_{τ+1}, p_k)], the spread of the reward head over the
           members' predicted latents with the imagined deterministic state
           h_{τ+1} (DreamerV3-XP's reward disagreement; its code adds the
           mean predicted reward, which mixes the extrinsic reward into the
           intrinsic stream: not done here); target `stoch` only

with `spread='std'` taking the standard deviation instead of the variance
(XP's code uses the std, its README the variance). The intrinsic reward is
its own reward stream with its own critic, slow critic and return
normaliser (update.py, behavior.imagination_losses).
"""
import dataclasses
from typing import Optional

import gin
import keras
import tensorflow as tf

from dreamer_tf.model import nets

sg = tf.stop_gradient

SIGNALS = ('none', 'latent', 'reward')
SPREADS = ('variance', 'std')
TARGETS = ('stoch', 'embed')
INTRINSIC = 'intr'  # The intrinsic reward stream's name.


@gin.configurable('Exploration')
@dataclasses.dataclass(frozen=True)
class ExplorationConfig:
  """Ensemble-disagreement exploration; `signal='none'` turns it off.

  members K, layers and units of each predictor's MLP (every size preset
  binds units to its MLP width, as Plan2Explore's ensemble matched its
  model's MLPs: 64 in size1m, where the default 256 made the update of a
  latent-disagreement agent 2.0x the baseline's instead of 1.5x); lr of the
  ensemble's LaProp (its other settings follow the LaProp bindings);
  extrinsic_weight: the weight of the extrinsic advantage (the intrinsic
  weight comes from the schedule, `run/schedules.py`). retnorm_limit: the
  floor of the intrinsic stream's return scale S = max(limit, P95 - P5)
  (§3.5); None keeps `ReturnNormalizer.limit` (DreamerV3's 1, which leaves
  returns smaller than 1 unamplified). A lower floor weighs small
  intrinsic rewards more against the extrinsic stream and the entropy
  bonus. On DeepSea a floor of 0.01 did not move a uniform actor: there
  the world model, not the scale, was the limit (docs/benchmarks/
  xp-deepsea.md). target: what the members predict, 'stoch' (the next
  posterior latent) or 'embed' (the next observation's embedding; the
  module docstring says why it is the better novelty signal).
  """
  signal: str = 'none'
  members: int = 5
  layers: int = 2
  units: int = 256
  lr: float = 1e-4
  spread: str = 'variance'
  extrinsic_weight: float = 1.0
  retnorm_limit: Optional[float] = None
  target: str = 'stoch'

  def __post_init__(self):
    if self.signal not in SIGNALS:
      raise ValueError(f'Exploration.signal={self.signal!r}; use one of '
                       f'{list(SIGNALS)}.')
    if self.spread not in SPREADS:
      raise ValueError(f'Exploration.spread={self.spread!r}; use one of '
                       f'{list(SPREADS)}.')
    if self.target not in TARGETS:
      raise ValueError(f'Exploration.target={self.target!r}; use one of '
                       f'{list(TARGETS)}.')
    if self.signal == 'reward' and self.target != 'stoch':
      raise ValueError(
          f"Exploration.signal='reward' with target={self.target!r}: reward "
          "disagreement reads the reward head on the members' predicted "
          "latents, so it needs Exploration.target='stoch'.")
    if self.members < 2:
      raise ValueError(f'Exploration.members={self.members}: disagreement '
                       'needs at least 2 ensemble members.')
    if self.extrinsic_weight < 0:
      raise ValueError(f'Exploration.extrinsic_weight='
                       f'{self.extrinsic_weight} must be >= 0.')
    if self.retnorm_limit is not None and not self.retnorm_limit > 0:
      raise ValueError(f'Exploration.retnorm_limit={self.retnorm_limit} must '
                       'be > 0 (a floor of the return scale), or None for '
                       'ReturnNormalizer.limit.')

  @property
  def enabled(self):
    return self.signal != 'none'


class Ensemble(keras.layers.Layer):
  """K predictors of the next posterior latent's class logits (target
  `stoch`) or of the next observation's embedding (target `embed`)."""

  def __init__(self, config, stoch, classes, seeds, embed_size=None,
               dtype='float32', **kw):
    super().__init__(dtype=dtype, **kw)
    self.config, self.stoch, self.classes = config, stoch, classes
    if config.target == 'embed' and not embed_size:
      raise ValueError("Exploration.target='embed' needs the encoder's "
                       'embedding size (embed_size).')
    shape = (stoch, classes) if config.target == 'stoch' else (embed_size,)
    self.members = [
        (nets.MLP(config.layers, config.units, seeds, dtype),
         nets.Linear(shape, 1.0, seeds=seeds, dtype=dtype))
        for _ in range(config.members)]

  def call(self, feat, action):
    """feat [..., F], action [..., A] -> outputs [K, ..., S, C] (logits)
    or [K, ..., E] (embeddings), float32."""
    x = tf.concat([feat, tf.cast(action, feat.dtype)], -1)
    return tf.stack([tf.cast(out(mlp(x)), tf.float32)
                     for mlp, out in self.members])

  def predict(self, feat, action):
    """The members' predictions whose spread is the latent disagreement:
    class probabilities [K, ..., S, C] or embeddings [K, ..., E]."""
    out = self(feat, action)
    return tf.nn.softmax(out, -1) if self.config.target == 'stoch' else out

  def loss(self, feat, actions, target, is_first):
    """Loss to the real next step, [B, T-1].

    feat [B, T, F] posterior features f_t and actions a_t [B, T, A] taken
    there; target [B, T, S, C] the posterior samples z_t (target `stoch`:
    cross-entropy) or [B, T, E] the embeddings e_t (`embed`: squared error);
    is_first [B, T]. Predicts step t+1 from (f_t, a_t), all inputs
    stop-gradient; transitions into a first step are masked.
    """
    out = self(sg(feat[:, :-1]), sg(actions[:, :-1]))  # [K, B, T-1, ...]
    target = sg(tf.cast(target[:, 1:], tf.float32))
    if self.config.target == 'stoch':
      per_member = -tf.reduce_sum(
          target * tf.nn.log_softmax(out, -1), [-2, -1])
    else:
      per_member = tf.reduce_sum(tf.square(out - target), -1)
    mask = 1.0 - tf.cast(is_first[:, 1:], tf.float32)
    return tf.reduce_mean(per_member, 0) * mask

  def intrinsic_reward(self, feat, actions, deter, reward_fn):
    """Disagreement rewards of imagined transitions, [N, H+1].

    feat [N, H+1, F], actions [N, H+1, A] (a_τ taken at state τ), deter
    [N, H+1, D] imagined states; reward_fn(feat) -> predicted reward (the
    world model's reward head mean). Entry τ+1 rewards the transition
    τ -> τ+1 (the alignment of r̂ in the λ-return, §3.4); entry 0 is 0.
    Stop-gradient.
    """
    preds = self.predict(feat[:, :-1], actions[:, :-1])
    if self.config.signal == 'latent':
      signal = disagreement(preds, 2, self.config.spread)  # [N, H]
    else:
      k, n, h = preds.shape[:3]
      flat = tf.reshape(preds, [k, n, h, self.stoch * self.classes])
      member_deter = tf.broadcast_to(
          tf.cast(deter[None, :, 1:], flat.dtype), [k, n, h, deter.shape[-1]])
      rewards = reward_fn(tf.concat([member_deter, flat], -1))  # [K, N, H]
      signal = _spread(rewards, self.config.spread)
    return sg(tf.concat([tf.zeros_like(signal[:, :1]), signal], 1))


def disagreement(predictions, batch_dims, kind='variance'):
  """The latent disagreement of `Ensemble.predict`'s [K, *batch, ...]
  predictions: their spread over the members, mean over the entries after
  the `batch_dims` batch axes -> [*batch]."""
  spread = _spread(predictions, kind)
  return tf.reduce_mean(spread, list(range(batch_dims, spread.shape.rank)))


def _spread(values, kind):
  """Variance (or std) over the leading member axis."""
  var = tf.math.reduce_variance(values, 0)
  return var if kind == 'variance' else tf.sqrt(var)
