"""Schedules of the intrinsic reward's weight (DreamerV3-XP exploration).

The actor's advantage is A = w_ext A_ext + w_int A_int (each stream
normalised by its own return scale, `behavior.imagination_losses`); a
schedule gives w_int before every update. Every schedule has

  value(updates) -> w_int >= 0   the weight for the next update
  observe(score)                 a finished training episode's return
  get_state() / set_state(s)     JSON values, kept by the loop's counters

and is a gin configurable, bound as `train.intrinsic_schedule =
@ExponentialDecay()` (default: `Fixed()`).

DreamerV3-XP's schedules differ: its weight λ multiplies the intrinsic
term but is clipped to [0.1, 1] (10% intrinsic at least, 100% at the
start), and its adaptive schedule follows the slope of the mean imagined
reward; ours follow episode returns, the quantity exploration is for.
"""
import math

import gin


def _check_weight(name, value):
  if not (isinstance(value, (int, float)) and math.isfinite(value)
          and value >= 0):
    raise ValueError(f'{name}={value!r} must be a finite number >= 0.')
  return float(value)


class _Stateless:
  """A schedule of the update count alone: episodes change nothing."""

  def observe(self, score):
    del score

  def get_state(self):
    return {}

  def set_state(self, state):
    del state


@gin.configurable
class Fixed(_Stateless):
  """w_int = weight, always."""

  def __init__(self, weight=1.0):
    self.weight = _check_weight('Fixed.weight', weight)

  def value(self, updates):
    del updates
    return self.weight


@gin.configurable
class ExponentialDecay(_Stateless):
  """w_int = end + (start - end) 2^(-updates / half_life): moves
  from `start` towards `end`, halving the distance every `half_life`
  updates (DreamerV3-XP's exp(-2.5 u / 45000) is half_life ≈ 12,477)."""

  def __init__(self, start=1.0, end=0.0, half_life=10_000):
    self.start = _check_weight('ExponentialDecay.start', start)
    self.end = _check_weight('ExponentialDecay.end', end)
    if not half_life > 0:
      raise ValueError(f'ExponentialDecay.half_life={half_life!r} must be '
                       '> 0 updates.')
    self.half_life = float(half_life)

  def value(self, updates):
    return self.end + (self.start - self.end) * 2.0 ** (
        -updates / self.half_life)


@gin.configurable
class ReturnProgress:
  """More exploration while episode returns stagnate, less while they rise.

  Over the returns R of finished training episodes it keeps a fast and a
  slow EMA (rates `fast`, `slow`) and the EMA `spread` of |R - slow|:
    progress = (fast - slow) / spread    (0 when spread is 0)
    excess = max(progress - noise_sds * noise, 0)
    w_int = low + (high - low) exp(-excess / tolerance)
  `noise` is the standard deviation `progress` has when the returns are
  flat but noisy (i.i.d. around a constant, e.g. DeepSea's move costs
  without the treasure), so such returns keep w_int at `high` unless the
  fast EMA strays more than `noise_sds` deviations; without the margin
  they would read as progress about half of the time. For EMAs of rates a
  (fast) and b (slow) of i.i.d. returns with deviation σ,
    Var(fast - slow) = σ² (a/(2-a) + b/(2-b) - 2ab/(a+b-ab)),
  and `spread` estimates σ √(2/π) (Gaussian returns), so
    noise = √(π/2) √(a/(2-a) + b/(2-b) - 2ab/(a+b-ab)).
  So w_int = high before the first episode, while returns are flat and
  while they fall; it drops towards `low` as the recent returns rise above
  the long-run average by more than the noise margin plus `tolerance`
  spreads, and comes back once they level off again.
  """

  def __init__(self, high=1.0, low=0.0, fast=0.1, slow=0.01,
               tolerance=0.5, noise_sds=2.0):
    self.high = _check_weight('ReturnProgress.high', high)
    self.low = _check_weight('ReturnProgress.low', low)
    if not 0 < slow < fast <= 1:
      raise ValueError(f'ReturnProgress needs 0 < slow < fast <= 1, got '
                       f'slow={slow!r}, fast={fast!r}.')
    if not tolerance > 0:
      raise ValueError(f'ReturnProgress.tolerance={tolerance!r} must be > 0.')
    self.noise_sds = _check_weight('ReturnProgress.noise_sds', noise_sds)
    self.fast_rate, self.slow_rate = float(fast), float(slow)
    self.tolerance = float(tolerance)
    self.fast = self.slow = None
    self.spread = 0.0

  @property
  def noise(self):
    """The standard deviation of `progress` under flat i.i.d. returns."""
    a, b = self.fast_rate, self.slow_rate
    var = a / (2 - a) + b / (2 - b) - 2 * a * b / (a + b - a * b)
    return math.sqrt(math.pi / 2) * math.sqrt(var)

  @property
  def progress(self):
    """(fast - slow) / spread of the returns seen so far (0 before any)."""
    if self.fast is None or self.spread <= 0:
      return 0.0
    return (self.fast - self.slow) / self.spread

  def value(self, updates):
    del updates
    excess = max(self.progress - self.noise_sds * self.noise, 0.0)
    return self.low + (self.high - self.low) * math.exp(
        -excess / self.tolerance)

  def observe(self, score):
    score = float(score)
    if not math.isfinite(score):
      return  # The loop refuses non-finite rewards elsewhere.
    if self.fast is None:
      self.fast = self.slow = score
      return
    self.fast += self.fast_rate * (score - self.fast)
    self.slow += self.slow_rate * (score - self.slow)
    self.spread += self.slow_rate * (abs(score - self.slow) - self.spread)

  def get_state(self):
    return dict(fast=self.fast, slow=self.slow, spread=self.spread)

  def set_state(self, state):
    if not isinstance(state, dict) or set(state) != {'fast', 'slow',
                                                      'spread'}:
      raise ValueError(
          f'ReturnProgress state {state!r} is not one it saved (keys fast, '
          'slow, spread): was the run started with another '
          'train.intrinsic_schedule? Resume with the original one.')
    self.fast, self.slow = state['fast'], state['slow']
    self.spread = state['spread']
