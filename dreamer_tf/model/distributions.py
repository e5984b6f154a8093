"""Output distributions of DreamerV3 (spec §3.1, §2.2 step 8, §2.4).

Thin classes with the TFP `Distribution` method names (`sample(seed)`,
`log_prob`, `entropy`, `mean`, `mode`, `kl_divergence`); the maths of the
standard families is delegated to `tfp.distributions`. The DreamerV3-specific
pieces are implemented here and tested against the official fixtures:

* `symlog` / `symexp` and the 255-bin symexp grid with raw-space two-hot
  targets and a symmetric mean (`SymexpTwoHot`);
* `OneHotDist`: categorical with uniform mixing (unimix) and straight-through
  one-hot samples (RSSM latents; discrete actions);
* `BoundedNormal`: Normal(tanh(mu), (max-min)*sigmoid(s+2)+min) for
  continuous actions;
* `SymlogMSE`, `ImageMSE` and `Bernoulli` (soft continue targets).

Sampling is stateless (`seed` is an int32[2] tensor) and replica-consistent:
under a `tf.distribute` strategy every replica draws the noise of the global
batch and keeps its own rows, so a data-parallel update samples exactly what a
single-device update on the same global batch samples.

Everything returned is float32, whatever the compute dtype of the network.
"""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
sg = tf.stop_gradient
_TINY = float(np.finfo(np.float32).tiny)


def symlog(x):
  """symlog(x) = sign(x) ln(1 + |x|) (spec §3.1)."""
  return tf.sign(x) * tf.math.log1p(tf.abs(x))


def symexp(x):
  """symexp(x) = sign(x) (exp|x| - 1), the inverse of symlog."""
  return tf.sign(x) * tf.math.expm1(tf.abs(x))


# --- Replica-consistent stateless noise ------------------------------------


def _replica_slice(make, shape, seed):
  """Draws `make(global_shape, seed)` and returns this replica's rows.

  `shape` may hold scalar tensors for dimensions unknown when tracing (e.g. a
  SavedModel's batch of None; see `static_or_dynamic_shape`)."""
  shape = [d if isinstance(d, tf.Tensor) else int(d) for d in shape]
  ctx = tf.distribute.get_replica_context()
  replicas = ctx.num_replicas_in_sync if ctx is not None else 1
  if replicas == 1:
    return make(shape, seed)
  rows = shape[0]
  full = make([rows * replicas] + shape[1:], seed)
  start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * rows
  return tf.slice(full, [start] + [0] * (len(shape) - 1), shape)


def static_or_dynamic_shape(x):
  """x.shape with the dimensions unknown when tracing as scalar tensors."""
  dynamic = tf.shape(x)
  return [d if d is not None else dynamic[i] for i, d in enumerate(x.shape)]


def uniform_noise(shape, seed):
  """U(tiny, 1) noise of `shape` ([B, ...], B the per-replica batch)."""
  return _replica_slice(
      lambda s, k: tf.random.stateless_uniform(s, k, _TINY, 1.0), shape, seed)


def normal_noise(shape, seed):
  """N(0, 1) noise of `shape` ([B, ...], B the per-replica batch)."""
  return _replica_slice(tf.random.stateless_normal, shape, seed)


# --- Two-hot over symexp-spaced bins ---------------------------------------


def symexp_bins(num_bins=255):
  """The 255 bins: symexp of a uniform grid on [-20, 20], exactly symmetric.

  For odd counts, half = symexp(linspace(-20, 0, (n+1)/2)) and the bins are
  [half, -reverse(half[:-1])], so the middle bin is exactly 0 (spec §3.1).
  """
  if num_bins % 2 == 1:
    half = np.linspace(-20, 0, (num_bins - 1) // 2 + 1, dtype=np.float32)
    half = np.sign(half) * np.expm1(np.abs(half))
    bins = np.concatenate([half, -half[:-1][::-1]], 0)
  else:
    half = np.linspace(-20, 0, num_bins // 2, dtype=np.float32)
    half = np.sign(half) * np.expm1(np.abs(half))
    bins = np.concatenate([half, -half[::-1]], 0)
  return bins.astype(np.float32)


def twohot(target, bins):
  """Raw-space two-hot encoding of `target` [...] over `bins` [K] (§3.1).

  i = #(bins <= y) - 1, j = K - #(bins > y), both clipped to [0, K-1];
  w_i = |b_j - y| / (|b_i - y| + |b_j - y|), w_j = 1 - w_i; all weight on i
  when i == j (including targets beyond the range). Returns [..., K].
  """
  bins = tf.convert_to_tensor(bins, tf.float32)
  target = tf.cast(target, tf.float32)
  k = bins.shape[0]
  below = tf.reduce_sum(
      tf.cast(bins <= target[..., None], tf.int32), -1) - 1
  above = k - tf.reduce_sum(tf.cast(bins > target[..., None], tf.int32), -1)
  below = tf.clip_by_value(below, 0, k - 1)
  above = tf.clip_by_value(above, 0, k - 1)
  equal = tf.equal(below, above)
  dist_below = tf.where(equal, 1.0, tf.abs(tf.gather(bins, below) - target))
  dist_above = tf.where(equal, 1.0, tf.abs(tf.gather(bins, above) - target))
  total = dist_below + dist_above
  weight_below = dist_above / total
  weight_above = dist_below / total
  return (tf.one_hot(below, k) * weight_below[..., None] +
          tf.one_hot(above, k) * weight_above[..., None])


class SymexpTwoHot:
  """Reward and value output: logits [..., K] over `symexp_bins(K)`.

  `mean()` is the expectation in raw space summed symmetrically around the
  zero bin, so uniform logits predict exactly 0 (spec §8.2). `log_prob(y)`
  is the two-hot cross-entropy's negative: sum_k twohot(y)_k log softmax_k.
  """

  def __init__(self, logits, bins=None):
    self.logits = tf.cast(logits, tf.float32)
    k = self.logits.shape[-1]
    self.bins = tf.convert_to_tensor(
        symexp_bins(k) if bins is None else bins, tf.float32)

  def mean(self):
    probs = tf.nn.softmax(self.logits, -1)
    weighted = probs * self.bins
    n = self.logits.shape[-1]
    if n % 2 == 1:
      m = (n - 1) // 2
      center = weighted[..., m]
      return center + tf.reduce_sum(
          tf.reverse(weighted[..., :m], [-1]) + weighted[..., m + 1:], -1)
    m = n // 2
    return tf.reduce_sum(
        tf.reverse(weighted[..., :m], [-1]) + weighted[..., m:], -1)

  def mode(self):
    return self.mean()

  def log_prob(self, target):
    target = twohot(sg(tf.cast(target, tf.float32)), self.bins)
    return tf.reduce_sum(target * tf.nn.log_softmax(self.logits, -1), -1)

  def loss(self, target):
    return -self.log_prob(target)


# --- Categoricals -----------------------------------------------------------


def unimix_logits(logits, unimix):
  """log((1 - unimix) softmax(logits) + unimix / K) (spec §2.2 step 8)."""
  logits = tf.cast(logits, tf.float32)
  if not unimix:
    return tf.nn.log_softmax(logits, -1)
  probs = tf.nn.softmax(logits, -1)
  probs = (1 - unimix) * probs + unimix / logits.shape[-1]
  return tf.math.log(probs)


class OneHotDist:
  """One-hot categorical with unimix and straight-through samples.

  logits: [..., *event_dims, K]. `event_dims` trailing categorical dims are
  summed over in `log_prob`, `entropy` and `kl_divergence` (1 for the RSSM's
  32 latents; 0 for a single discrete action). Samples are one-hot float32
  with the straight-through gradient onehot + p - sg(p) of the mixed probs.
  """

  def __init__(self, logits, unimix=0.0, event_dims=0):
    self.logits = unimix_logits(logits, unimix)
    self.event_dims = event_dims
    self._dist = tfd.OneHotCategorical(logits=self.logits, dtype=tf.float32)
    if event_dims:
      self._dist = tfd.Independent(self._dist, event_dims)

  @property
  def probs(self):
    return tf.nn.softmax(self.logits, -1)

  def _straight_through(self, onehot):
    probs = self.probs
    # The bracket is exactly zero in the forward pass: samples stay exact
    # one-hots (sg(onehot) + probs - sg(probs) can round 1 to 1 - 6e-8).
    return sg(onehot) + (probs - sg(probs))

  def sample(self, seed):
    gumbel = -tf.math.log(-tf.math.log(uniform_noise(
        static_or_dynamic_shape(self.logits), seed)))
    index = tf.argmax(self.logits + gumbel, -1)
    return self._straight_through(tf.one_hot(index, self.logits.shape[-1]))

  def mode(self):
    index = tf.argmax(self.logits, -1)
    return self._straight_through(tf.one_hot(index, self.logits.shape[-1]))

  def log_prob(self, value):
    return self._dist.log_prob(value)

  def entropy(self):
    return self._dist.entropy()

  def kl_divergence(self, other):
    """KL(self || other), summed over the event dims."""
    return tfd.kl_divergence(self._dist, other._dist)


# --- Continuous ---------------------------------------------------------------


class BoundedNormal:
  """Continuous policy: Normal(tanh(mean), (max-min) sigmoid(std + 2) + min).

  Not tanh-squashed; the env clips (spec §1.4). The last axis is the action
  dimension; `log_prob` and `entropy` sum over it. Initial std with zero
  pre-activations is 0.9 sigmoid(2) + 0.1 = 0.892717.
  """

  def __init__(self, mean, stddev, minstd=0.1, maxstd=1.0):
    self.loc = tf.tanh(tf.cast(mean, tf.float32))
    self.scale = (maxstd - minstd) * tf.sigmoid(
        tf.cast(stddev, tf.float32) + 2.0) + minstd
    self._dist = tfd.Independent(tfd.Normal(self.loc, self.scale), 1)

  def sample(self, seed):
    return self.loc + self.scale * normal_noise(
        static_or_dynamic_shape(self.loc), seed)

  def mean(self):
    return self.loc

  def mode(self):
    return self.loc

  def log_prob(self, value):
    return self._dist.log_prob(value)

  def entropy(self):
    return self._dist.entropy()


class SymlogMSE:
  """Vector decoder output in symlog space: loss = sum_d (pred - symlog x)^2."""

  def __init__(self, pred):
    self.pred = tf.cast(pred, tf.float32)

  def mean(self):
    return symexp(self.pred)

  def mode(self):
    return self.mean()

  def loss(self, target):
    target = symlog(sg(tf.cast(target, tf.float32)))
    return tf.reduce_sum(tf.square(self.pred - target), -1)


class ImageMSE:
  """Image decoder output in [0, 1]: loss = sum_{h,w,c} (pred - x/255)^2."""

  def __init__(self, pred):
    self.pred = tf.cast(pred, tf.float32)

  def mean(self):
    return self.pred

  def mode(self):
    return self.pred

  def loss(self, target):
    """target: images in [0, 1] (already divided by 255)."""
    diff = self.pred - sg(tf.cast(target, tf.float32))
    return tf.reduce_sum(tf.square(diff), [-3, -2, -1])


class Bernoulli:
  """Continue head: Bernoulli(logit) with soft targets for the loss."""

  def __init__(self, logits):
    self.logits = tf.cast(logits, tf.float32)
    self._dist = tfd.Bernoulli(logits=self.logits, dtype=tf.float32)

  def mean(self):
    return self._dist.mean()

  def mode(self):
    return self._dist.mode()

  def log_prob(self, target):
    """Soft-target log-likelihood t log p + (1 - t) log(1 - p)."""
    target = sg(tf.cast(target, tf.float32))
    return (target * tf.math.log_sigmoid(self.logits) +
            (1 - target) * tf.math.log_sigmoid(-self.logits))

  def loss(self, target):
    return -self.log_prob(target)
