"""Intrinsic reward from the disagreement of an ensemble (DreamerV3-XP).

An ensemble of K one-step predictors g_k(f_t, a_t) -> p_k(z_{t+1}) of the
next posterior latent z_{t+1} (S categoricals of C classes each) is trained
on real transitions of the replay batch: inputs the posterior features f_t
and the action a_t taken there, target the posterior sample z_{t+1} of the
next step (Plan2Explore, Sekar et al. 2020, which trains on real
transitions; DreamerV3-XP, arXiv 2510.21418, trains on imagined prior
rollouts, which only teaches the ensemble to imitate the prior). Loss: the
cross-entropy of each member's categoricals against z_{t+1}, summed over
the S latents, mean over members; transitions into an episode's first step
are masked. Every member has its own initialisation (none starts at zero)
and the ensemble has its own optimizer (agent.py); its inputs are
stop-gradient, so it never trains the world model.

In imagination the intrinsic reward of the transition τ -> τ+1 is one of

  latent   Var_k[p_k(z_{τ+1} | f_τ, a_τ)], the variance of the predicted
           class probabilities over members, mean over the S·C entries
           (Plan2Explore's disagreement)
  reward   Var_k[r̂(h_{τ+1}, p_k)], the spread of the reward head over the
           members' predicted latents with the imagined deterministic state
           h_{τ+1} (DreamerV3-XP's reward disagreement; its code adds the
           mean predicted reward, which mixes the extrinsic reward into the
           intrinsic stream: not done here)

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
  xp-deepsea.md).
  """
  signal: str = 'none'
  members: int = 5
  layers: int = 2
  units: int = 256
  lr: float = 1e-4
  spread: str = 'variance'
  extrinsic_weight: float = 1.0
  retnorm_limit: Optional[float] = None

  def __post_init__(self):
    if self.signal not in SIGNALS:
      raise ValueError(f'Exploration.signal={self.signal!r}; use one of '
                       f'{list(SIGNALS)}.')
    if self.spread not in SPREADS:
      raise ValueError(f'Exploration.spread={self.spread!r}; use one of '
                       f'{list(SPREADS)}.')
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
  """K predictors of the next posterior latent's class logits."""

  def __init__(self, config, stoch, classes, seeds, dtype='float32', **kw):
    super().__init__(dtype=dtype, **kw)
    self.config, self.stoch, self.classes = config, stoch, classes
    self.members = [
        (nets.MLP(config.layers, config.units, seeds, dtype),
         nets.Linear((stoch, classes), 1.0, seeds=seeds, dtype=dtype))
        for _ in range(config.members)]

  def call(self, feat, action):
    """feat [..., F], action [..., A] -> logits [K, ..., S, C] (float32)."""
    x = tf.concat([feat, tf.cast(action, feat.dtype)], -1)
    return tf.stack([tf.cast(out(mlp(x)), tf.float32)
                     for mlp, out in self.members])

  def loss(self, feat, actions, stoch, is_first):
    """Cross-entropy to the real next posterior, [B, T-1].

    feat [B, T, F] posterior features f_t and actions a_t [B, T, A] taken
    there; stoch [B, T, S, C] the posterior samples z_t; is_first [B, T].
    Predicts z_{t+1} from (f_t, a_t), all inputs stop-gradient; transitions
    into a first step are masked.
    """
    logits = self(sg(feat[:, :-1]), sg(actions[:, :-1]))  # [K, B, T-1, S, C]
    target = sg(tf.cast(stoch[:, 1:], tf.float32))
    ce = -tf.reduce_sum(target * tf.nn.log_softmax(logits, -1), [-2, -1])
    mask = 1.0 - tf.cast(is_first[:, 1:], tf.float32)
    return tf.reduce_mean(ce, 0) * mask

  def intrinsic_reward(self, feat, actions, deter, reward_fn):
    """Disagreement rewards of imagined transitions, [N, H+1].

    feat [N, H+1, F], actions [N, H+1, A] (a_τ taken at state τ), deter
    [N, H+1, D] imagined states; reward_fn(feat) -> predicted reward (the
    world model's reward head mean). Entry τ+1 rewards the transition
    τ -> τ+1 (the alignment of r̂ in the λ-return, §3.4); entry 0 is 0.
    Stop-gradient.
    """
    probs = tf.nn.softmax(self(feat[:, :-1], actions[:, :-1]), -1)
    if self.config.signal == 'latent':
      spread = _spread(probs, self.config.spread)  # [N, H, S, C]
      signal = tf.reduce_mean(spread, [-2, -1])
    else:
      k, n, h = probs.shape[:3]
      flat = tf.reshape(probs, [k, n, h, self.stoch * self.classes])
      member_deter = tf.broadcast_to(
          tf.cast(deter[None, :, 1:], flat.dtype), [k, n, h, deter.shape[-1]])
      rewards = reward_fn(tf.concat([member_deter, flat], -1))  # [K, N, H]
      signal = _spread(rewards, self.config.spread)
    return sg(tf.concat([tf.zeros_like(signal[:, :1]), signal], 1))


def _spread(values, kind):
  """Variance (or std) over the leading member axis."""
  var = tf.math.reduce_variance(values, 0)
  return var if kind == 'variance' else tf.sqrt(var)
