"""Keras 3 building blocks of DreamerV3 (spec §1.8, §2.1, §2.3).

Every hidden layer is Linear/Conv (+bias) -> RMSNorm -> SiLU. Kernels use a
truncated normal on [-2, 2] std units scaled by 1.1368 * sqrt(1 / fan_in)
(dense: input width; conv: k*k*C_in; block-linear: the *total* input width),
times `outscale`; biases start at 0.

Layers take a `dtype` (a Keras dtype policy: 'float32' or 'mixed_bfloat16';
variables stay float32) and `seeds`, an `InitSeeds` that hands out the init
seeds in creation order, so a model built twice with the same seed has the
same weights without touching global random state.
"""
import math

import keras
import numpy as np
import tensorflow as tf


class InitSeeds:
  """Deterministic stream of integer seeds for weight initializers."""

  def __init__(self, seed):
    self._rng = np.random.default_rng(int(seed))

  def next(self):
    return int(self._rng.integers(0, 2**31 - 1))


def trunc_normal(fan_in, outscale, seeds):
  """The `trunc_normal_in` initializer (zeros when outscale is 0)."""
  if outscale == 0.0:
    return keras.initializers.Zeros()
  std = 1.1368 * math.sqrt(1.0 / fan_in) * outscale
  return keras.initializers.TruncatedNormal(0.0, std, seed=seeds.next())


class Linear(keras.layers.Layer):
  """Dense layer; `units` may be a shape, the output is reshaped to it."""

  def __init__(self, units, outscale=1.0, bias=True, seeds=None, **kw):
    super().__init__(**kw)
    self.units = (units,) if isinstance(units, int) else tuple(units)
    self.outscale = outscale
    self.use_bias = bias
    self.seeds = seeds or InitSeeds(0)

  def build(self, input_shape):
    fan_in, size = int(input_shape[-1]), math.prod(self.units)
    self.kernel = self.add_weight(
        (fan_in, size), trunc_normal(fan_in, self.outscale, self.seeds),
        name='kernel')
    if self.use_bias:
      self.bias = self.add_weight((size,), 'zeros', name='bias')

  def call(self, x):
    lead = tf.shape(x)[:-1]
    x = tf.reshape(x, [-1, x.shape[-1]])  # [N, D]
    y = tf.matmul(x, tf.cast(self.kernel, x.dtype))  # [N, size]
    if self.use_bias:
      y += tf.cast(self.bias, x.dtype)
    units = tf.constant(self.units, tf.int32, [len(self.units)])
    return tf.reshape(y, tf.concat([lead, units], 0))


class BlockLinear(keras.layers.Layer):
  """Block-diagonal linear: block g maps its input slice to units/G outputs.

  Kernel [G, in/G, out/G]; init fan-in is the total input width (§8.17).

  With `shared` > 0 every block also sees the same `shared`-wide vector
  appended to its slice (the RSSM's [h_g, projections] layout): the kernel is
  [G, in/G + shared, out/G] as if the shared vector were tiled into every
  block, but that part is computed as one dense [shared, out] matmul instead
  of G small ones on a tiled copy. Same parameters, same result, ~2x faster.
  """

  def __init__(self, units, blocks, outscale=1.0, shared=0, seeds=None, **kw):
    super().__init__(**kw)
    if units % blocks:
      raise ValueError(f'units {units} must be divisible by blocks {blocks}')
    self.units, self.blocks, self.outscale = units, blocks, outscale
    self.shared = shared
    self.seeds = seeds or InitSeeds(0)

  def build(self, x_shape, shared_shape=None):
    own = int(x_shape[-1])
    if own % self.blocks:
      raise ValueError(
          f'input width {own} must be divisible by blocks {self.blocks}')
    g = self.blocks
    fan_in = own + g * self.shared
    self.kernel = self.add_weight(
        (g, own // g + self.shared, self.units // g),
        trunc_normal(fan_in, self.outscale, self.seeds), name='kernel')
    self.bias = self.add_weight((self.units,), 'zeros', name='bias')

  def call(self, x, shared=None):
    """x [..., in] (and shared [..., shared]) -> [..., units]."""
    g = self.blocks
    lead = tf.shape(x)[:-1]
    own = x.shape[-1] // g
    kernel = tf.cast(self.kernel, x.dtype)
    x = tf.reshape(x, [-1, g, own])  # [N, G, in/G]
    y = tf.einsum('ngi,gio->ngo', x, kernel[:, :own])
    y = tf.reshape(y, [-1, self.units])
    if self.shared:
      # Rows own: of block g act on the shared vector: [S, G * out/G].
      dense = tf.reshape(tf.transpose(kernel[:, own:], [1, 0, 2]),
                         [self.shared, self.units])
      y += tf.matmul(tf.reshape(shared, [-1, self.shared]), dense)
    y = tf.reshape(y, tf.concat([lead, [self.units]], 0))
    return y + tf.cast(self.bias, y.dtype)


class Conv2D(keras.layers.Layer):
  """Stride-1 'same' convolution, NHWC, kernel [k, k, C_in, C_out]."""

  def __init__(self, depth, kernel=5, outscale=1.0, seeds=None, **kw):
    super().__init__(**kw)
    self.depth, self.kernel_size, self.outscale = depth, kernel, outscale
    self.seeds = seeds or InitSeeds(0)

  def build(self, input_shape):
    k, cin = self.kernel_size, int(input_shape[-1])
    self.kernel = self.add_weight(
        (k, k, cin, self.depth),
        trunc_normal(k * k * cin, self.outscale, self.seeds), name='kernel')
    self.bias = self.add_weight((self.depth,), 'zeros', name='bias')

  def call(self, x):
    y = tf.nn.conv2d(x, tf.cast(self.kernel, x.dtype), 1, 'SAME')
    return y + tf.cast(self.bias, y.dtype)


class RMSNorm(keras.layers.Layer):
  """x * rsqrt(mean(x^2) + eps) * scale over the last axis, in float32.

  Returns the input's dtype. Learnable scale (init 1), no shift (§1.8).
  """

  def __init__(self, eps=1e-4, **kw):
    kw['dtype'] = 'float32'
    super().__init__(autocast=False, **kw)
    self.eps = eps

  def build(self, input_shape):
    self.scale = self.add_weight((int(input_shape[-1]),), 'ones', name='scale')

  def call(self, x):
    dtype = x.dtype
    x = tf.cast(x, tf.float32)
    mean2 = tf.reduce_mean(tf.square(x), -1, keepdims=True)
    x = x * (tf.math.rsqrt(mean2 + self.eps) * self.scale)
    return tf.cast(x, dtype)


class NormAct(keras.layers.Layer):
  """A layer followed by RMSNorm and SiLU (the hidden-layer pattern)."""

  def __init__(self, layer, **kw):
    super().__init__(dtype=layer.dtype_policy, **kw)
    self.layer = layer
    self.norm = RMSNorm()

  def build(self, x_shape, *unused_shapes):
    self.built = True  # Sublayers build on their first call.

  def call(self, x, *args):
    return tf.nn.silu(self.norm(self.layer(x, *args)))


def dense(units, seeds, dtype):
  """Linear -> RMSNorm -> SiLU."""
  return NormAct(Linear(units, seeds=seeds, dtype=dtype))


class MLP(keras.layers.Layer):
  """`layers` x [Linear(units) -> RMSNorm -> SiLU] over the last axis."""

  def __init__(self, layers, units, seeds=None, dtype='float32', **kw):
    super().__init__(dtype=dtype, **kw)
    seeds = seeds or InitSeeds(0)
    self.hidden = [dense(units, seeds, dtype) for _ in range(layers)]

  def call(self, x):
    for layer in self.hidden:
      x = layer(x)
    return x


class ConvEncoder(keras.layers.Layer):
  """Images [N, H, W, C] uint8 -> features [N, H/16 * W/16 * 8*depth].

  x = pixels / 255 - 0.5; stages of Conv 5x5 (depth * mults) -> 2x2 max-pool
  -> RMSNorm -> SiLU (spec §2.1).
  """

  def __init__(self, depth, mults=(2, 3, 4, 4), kernel=5, seeds=None,
               dtype='float32', **kw):
    super().__init__(dtype=dtype, **kw)
    seeds = seeds or InitSeeds(0)
    self.stages = [
        Conv2D(depth * m, kernel, seeds=seeds, dtype=dtype) for m in mults]
    self.norms = [RMSNorm() for _ in mults]

  def call(self, images):
    x = tf.cast(images, self.compute_dtype) / 255.0 - 0.5
    for conv, norm in zip(self.stages, self.norms):
      x = tf.nn.max_pool2d(conv(x), 2, 2, 'VALID')
      x = tf.nn.silu(norm(x))
    return tf.reshape(x, [tf.shape(x)[0], math.prod(x.shape[1:])])


class ConvDecoder(keras.layers.Layer):
  """Latent (deter [N, D], stoch [N, S*K]) -> image [N, H, W, C] in [0, 1].

  Spatial seed SiLU(RMSNorm(x0 + x1)): x0 = BlockLinear(8 blocks) from deter,
  block g filling channels [g*C/8, (g+1)*C/8) of every pixel; x1 = MLP from
  stoch. Then nearest 2x upsample -> Conv 5x5 -> RMSNorm -> SiLU stages and a
  last upsample -> Conv to the image channels -> sigmoid (spec §2.3).
  """

  def __init__(self, shape, depth, units, mults=(2, 3, 4, 4), kernel=5,
               bspace=8, outscale=1.0, seeds=None, dtype='float32', **kw):
    super().__init__(dtype=dtype, **kw)
    seeds = seeds or InitSeeds(0)
    height, width, channels = shape
    factor = 2 ** len(mults)
    self.minres = (height // factor, width // factor)
    depths = [depth * m for m in mults]
    self.seed_shape = (*self.minres, depths[-1])
    self.bspace = bspace
    self.space0 = BlockLinear(
        math.prod(self.seed_shape), bspace, seeds=seeds, dtype=dtype)
    self.space1 = dense(2 * units, seeds, dtype)
    self.space2 = Linear(self.seed_shape, seeds=seeds, dtype=dtype)
    self.space_norm = RMSNorm()
    self.stages = [
        NormAct(Conv2D(d, kernel, seeds=seeds, dtype=dtype))
        for d in reversed(depths[:-1])]
    self.out = Conv2D(channels, kernel, outscale, seeds=seeds, dtype=dtype)

  def call(self, deter, stoch):
    h, w, c = self.seed_shape
    g = self.bspace
    x0 = self.space0(deter)  # [N, g*h*w*c/g]
    x0 = tf.reshape(x0, [-1, g, h, w, c // g])
    x0 = tf.reshape(tf.transpose(x0, [0, 2, 3, 1, 4]), [-1, h, w, c])
    x1 = self.space2(self.space1(stoch))  # [N, h, w, c]
    x = tf.nn.silu(self.space_norm(x0 + x1))
    for stage in self.stages:
      x = stage(_upsample(x))
    x = self.out(_upsample(x))
    return tf.sigmoid(tf.cast(x, tf.float32))


def _upsample(x):
  """Nearest-neighbour 2x upsampling of [N, H, W, C]."""
  n, h, w, c = x.shape
  x = tf.reshape(x, [-1, h, 1, w, 1, c])
  x = tf.tile(x, [1, 1, 2, 1, 2, 1])
  return tf.reshape(x, [-1, 2 * h, 2 * w, c])
