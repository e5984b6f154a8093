"""Pillow bilinear resizing shared by the adapters (spec §5.1)."""
import numpy as np

from dreamer_tf.envs import images


def test_resize_shapes_dtype_and_identity():
  image = np.random.default_rng(0).integers(0, 256, (210, 160, 3), np.uint8)
  out = images.resize(image, (64, 48))
  assert out.shape == (64, 48, 3) and out.dtype == np.uint8
  assert images.resize(image, (210, 160)) is image


def test_any_channel_count_matches_rgb_per_channel():
  rng = np.random.default_rng(1)
  rgb = rng.integers(0, 256, (32, 40, 3), np.uint8)
  four = np.concatenate([rgb, rgb[..., :1]], -1)
  out = images.resize(four, (64, 80))
  assert out.shape == (64, 80, 4)
  np.testing.assert_array_equal(out[..., :3], images.resize(rgb, (64, 80)))
  np.testing.assert_array_equal(out[..., 3], out[..., 0])


def test_bilinear_keeps_a_constant_image_and_blends_edges():
  flat = np.full((10, 10, 1), 77, np.uint8)
  assert (images.resize(flat, (48, 48)) == 77).all()
  step = np.zeros((2, 2, 1), np.uint8)
  step[:, 1] = 200
  row = images.resize(step, (4, 8))[0, :, 0]
  assert row[0] == 0 and row[-1] == 200 and 0 < row[3] < 200
