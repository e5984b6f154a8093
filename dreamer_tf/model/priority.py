"""Replay priorities from the signals of an update (DreamerV3-XP, §1.7).

`update.priority_signals` gives, per trained step, the world-model loss,
the reconstruction loss, the critic's error and the normalised return of
the trajectory imagined from the step (and of its intrinsic stream). A
step's priority is the non-negative combination

  p = Σ_k weights[k] · clean(signal_k),  clean(x) = max(x, 0) if finite else 0

so a negative return or a NaN loss can never give a negative, NaN or
infinite priority (DreamerV3-XP's priority can be negative, and its
exponent then gives NaN). The replay's selector raises p to its exponent
and aggregates the steps of an item (`replay/selectors.py`). The default,
the world-model loss alone, is the official DreamerV3 priority.
"""
import dataclasses
import math

import gin
import tensorflow as tf

SIGNALS = ('world_model', 'reconstruction', 'value_error', 'return',
           'intrinsic_return')
EXPLORATION_SIGNALS = ('intrinsic_return',)  # Only with Exploration on.
# A step priority's cap: finite in float32, as the replay stores it; the
# item priority raises it to Replay.prio_exponent in float64 (finite
# for any exponent up to 10; the default is 0.8).
MAX_PRIORITY = 1e30


@gin.configurable('Priority')
@dataclasses.dataclass(frozen=True)
class PriorityConfig:
  """weights: {signal: finite weight >= 0} over `SIGNALS` (gin dict)."""
  weights: dict = dataclasses.field(
      default_factory=lambda: {'world_model': 1.0})

  def __post_init__(self):
    weights = dict(self.weights)
    unknown = set(weights) - set(SIGNALS)
    if unknown:
      raise ValueError(f'Priority.weights has unknown signals '
                       f'{sorted(unknown)}; known: {list(SIGNALS)}.')
    bad = {k: v for k, v in weights.items()
           if not (isinstance(v, (int, float)) and math.isfinite(v)
                   and v >= 0)}
    if bad or not any(weights.values()):
      raise ValueError(
          f'Priority.weights={weights}: every weight must be a finite '
          'number >= 0 (an infinite weight times a signal cleaned to 0 is '
          'NaN) and at least one > 0.')

  def check(self, exploration):
    """Raises if a weighted signal is not produced: the exploration
    signals need `exploration` (Exploration.signal != 'none')."""
    signals = [s for s in SIGNALS
               if exploration or s not in EXPLORATION_SIGNALS]
    missing = {k for k, v in self.weights.items() if v} - set(signals)
    if missing:
      raise ValueError(
          f'Priority.weights uses {sorted(missing)}, which this agent does '
          f'not compute (it has {sorted(signals)}); intrinsic_return needs '
          "Exploration.signal = 'latent' or 'reward'.")


def clean(signal):
  """max(x, 0) where x is finite, else 0, as float32."""
  signal = tf.cast(signal, tf.float32)
  return tf.where(tf.math.is_finite(signal), tf.maximum(signal, 0.0), 0.0)


def combine(signals, weights):
  """p = Σ_k weights[k] clean(signals[k]), clipped to MAX_PRIORITY; [B, T].

  signals: {name: [B, T]}; weights: {name: float}, zero weights skipped.
  """
  terms = [w * clean(signals[k]) for k, w in sorted(weights.items()) if w]
  return tf.minimum(tf.add_n(terms), MAX_PRIORITY)


def summary(signals, priority):
  """Metrics of an update's priorities: `priority/combined`, the mean of
  p [B, T], and `priority/<signal>`, the mean of each clean(signal), so a
  run shows which signal drives its replay (weighted or not)."""
  metrics = {f'priority/{k}': tf.reduce_mean(clean(v))
             for k, v in signals.items()}
  metrics['priority/combined'] = tf.reduce_mean(priority)
  return metrics
