"""Layers: init statistics, shapes, RMSNorm, dtype policies."""
import math

import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import nets


def test_linear_trunc_normal_fan_in_init():
  layer = nets.Linear(512, seeds=nets.InitSeeds(1))
  layer(tf.zeros([1, 256]))
  kernel = layer.kernel.numpy()
  std = 1.1368 * math.sqrt(1 / 256)
  assert np.abs(kernel).max() <= 2 * std + 1e-6
  # A N(0, s) truncated at 2s has std 0.8796 s; 1.1368 undoes that.
  assert kernel.std() == pytest.approx(std * 0.8796, rel=0.03)
  np.testing.assert_array_equal(layer.bias.numpy(), 0.0)


def test_outscale_zero_gives_zero_kernel_and_shape_output():
  layer = nets.Linear((3, 4), outscale=0.0)
  out = layer(tf.ones([2, 5, 7]))
  assert out.shape == (2, 5, 3, 4)
  np.testing.assert_array_equal(out.numpy(), 0.0)
  scalar = nets.Linear(())
  assert scalar(tf.ones([2, 5, 7])).shape == (2, 5)


def test_block_linear_is_block_diagonal_with_total_fan_in():
  layer = nets.BlockLinear(8, 2, seeds=nets.InitSeeds(0))
  x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
  y = layer(x).numpy()
  k = layer.kernel.numpy()  # [2, 3, 4]
  assert k.shape == (2, 3, 4)
  expected = np.concatenate([x[:, :3] @ k[0], x[:, 3:] @ k[1]], -1)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
  assert np.abs(k).max() <= 2 * 1.1368 * math.sqrt(1 / 6) + 1e-6


def test_rmsnorm_float32_and_keeps_dtype():
  norm = nets.RMSNorm()
  x = tf.constant([[3.0, 4.0]], tf.bfloat16)
  y = norm(x)
  assert y.dtype == tf.bfloat16
  expected = np.array([3.0, 4.0]) / np.sqrt(12.5 + 1e-4)
  np.testing.assert_allclose(tf.cast(y, tf.float32), [expected], rtol=1e-2)
  assert norm.scale.dtype == 'float32'


def test_init_is_deterministic_given_seed():
  a, b, c = (nets.MLP(2, 8, nets.InitSeeds(s)) for s in (0, 0, 1))
  for m in (a, b, c):
    m(tf.zeros([1, 4]))
  np.testing.assert_array_equal(a.weights[0].numpy(), b.weights[0].numpy())
  assert not np.array_equal(a.weights[0].numpy(), c.weights[0].numpy())


def test_conv_encoder_decoder_shapes():
  enc = nets.ConvEncoder(4)
  feat = enc(tf.zeros([2, 64, 64, 3], tf.uint8))
  assert feat.shape == (2, 4 * 4 * 16)
  dec = nets.ConvDecoder((64, 64, 3), depth=4, units=8)
  img = dec(tf.zeros([2, 32]), tf.zeros([2, 16]))
  assert img.shape == (2, 64, 64, 3)
  assert float(tf.reduce_min(img)) >= 0 and float(tf.reduce_max(img)) <= 1


def test_mixed_bfloat16_policy_computes_in_bf16_with_f32_params():
  mlp = nets.MLP(1, 8, dtype='mixed_bfloat16')
  out = mlp(tf.ones([2, 4]))
  assert out.dtype == tf.bfloat16
  assert all(w.dtype == 'float32' for w in mlp.weights)


def test_block_linear_shared_input_equals_tiled_concatenation():
  """The RSSM layout: block g sees [x slice g, shared] (spec §2.2 step 4)."""
  g, own, shared, out = 4, 8, 6, 12
  layer = nets.BlockLinear(out, g, shared=shared, seeds=nets.InitSeeds(2))
  rng = np.random.default_rng(1)
  x = rng.normal(size=(5, own)).astype(np.float32)
  s = rng.normal(size=(5, shared)).astype(np.float32)
  y = layer(x, s).numpy()
  k = layer.kernel.numpy()  # [G, own/G + shared, out/G]
  assert k.shape == (g, own // g + shared, out // g)
  blocks = [np.concatenate([x[:, i * 2:(i + 1) * 2], s], -1) @ k[i]
            for i in range(g)]
  np.testing.assert_allclose(y, np.concatenate(blocks, -1), rtol=1e-5,
                             atol=1e-5)
  # Fan-in is the total (tiled) input width own + G * shared.
  assert np.abs(k).max() <= 2 * 1.1368 * math.sqrt(1 / (own + g * shared))
