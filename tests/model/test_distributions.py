"""Exact fixtures of spec §3.9 for the output distributions."""
import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import distributions as dists


def test_symlog_symexp_inverse():
  x = tf.constant([-1e6, -3.5, -1.0, 0.0, 0.5, 2.0, 1e6])
  np.testing.assert_allclose(dists.symexp(dists.symlog(x)), x, rtol=1e-5)
  np.testing.assert_allclose(dists.symlog(tf.constant([1.0, -1.0])),
                             [np.log(2), -np.log(2)], rtol=1e-6)


def test_symexp_bins_match_official_grid():
  bins = dists.symexp_bins(255)
  assert bins.shape == (255,) and bins[127] == 0.0
  np.testing.assert_allclose(
      bins[125:137],
      [-0.370205, -0.170558, 0, 0.170558, 0.370205, 0.603905, 0.877463,
       1.197679, 1.572510, 2.011271, 2.524866, 3.126060],
      atol=2e-6)
  np.testing.assert_allclose([bins[0], bins[-1]], [-485165184, 485165184],
                             rtol=1e-6)
  np.testing.assert_array_equal(bins, -bins[::-1])


@pytest.mark.parametrize('target, expected', [
    (1.0, {131: 0.617330, 132: 0.382670}),
    (-3.5, {117: 0.531368, 118: 0.468632}),
    (0.0, {127: 1.0}),
    (1e10, {254: 1.0}),
    (-1e10, {0: 1.0}),
])
def test_twohot_weights(target, expected):
  weights = dists.twohot(tf.constant(target), dists.symexp_bins()).numpy()
  got = {i: w for i, w in enumerate(weights) if w > 0}
  assert set(got) == set(expected)
  for index, weight in expected.items():
    assert got[index] == pytest.approx(weight, abs=1e-5)
  assert weights.sum() == pytest.approx(1.0, abs=1e-6)


def test_twohot_uniform_logits_predict_exact_zero_and_log255():
  dist = dists.SymexpTwoHot(tf.zeros([3, 255]))
  assert np.all(dist.mean().numpy() == 0.0)
  np.testing.assert_allclose(
      dist.loss(tf.constant([0.0, 7.3, -1e4])), [5.541264] * 3, atol=1e-5)


def test_twohot_mean_recovers_encoded_target():
  targets = tf.constant([-123.4, -1.0, 0.25, 3.0, 9876.5])
  logits = tf.math.log(dists.twohot(targets, dists.symexp_bins()) + 1e-30)
  np.testing.assert_allclose(dists.SymexpTwoHot(logits).mean(), targets,
                             rtol=1e-4)


def test_unimix_fixture():
  probs = tf.exp(dists.unimix_logits(tf.constant([2.0, 0.0, -2.0, 0.0]),
                                     0.01))
  np.testing.assert_allclose(
      probs, [0.770545, 0.106444, 0.016567, 0.106444], atol=1e-6)


def test_kl_with_unimix_fixture_over_two_latents():
  post = dists.OneHotDist(tf.constant([[3.0, 0, 0, 0], [0, 0, 0, 3.0]]),
                          0.01, event_dims=1)
  prior = dists.OneHotDist(tf.zeros([2, 4]), 0.01, event_dims=1)
  assert float(post.kl_divergence(prior)) == pytest.approx(1.6776, abs=1e-4)


def test_onehot_sample_is_straight_through_and_matches_probs():
  logits = tf.Variable([[1.0, 0.0, -1.0]])
  with tf.GradientTape() as tape:
    dist = dists.OneHotDist(tf.tile(logits, [4000, 1]), 0.01)
    sample = dist.sample(tf.constant([1, 2]))
    loss = tf.reduce_sum(sample * tf.constant([1.0, 2.0, 3.0]))
  # Exact one-hots in the forward pass (no 1 - 6e-8 from the gradient trick).
  assert set(np.unique(sample.numpy())) == {0.0, 1.0}
  np.testing.assert_array_equal(tf.reduce_sum(sample, -1), 1.0)
  freq = tf.reduce_mean(sample, 0).numpy()
  np.testing.assert_allclose(freq, dist.probs[0], atol=0.03)
  grad = tape.gradient(loss, logits)
  assert grad is not None and np.abs(grad.numpy()).sum() > 0


def test_sampling_is_deterministic_given_seed():
  dist = dists.OneHotDist(tf.zeros([5, 32, 4]), 0.01, event_dims=1)
  a = dist.sample(tf.constant([3, 4]))
  b = dist.sample(tf.constant([3, 4]))
  c = dist.sample(tf.constant([3, 5]))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_bounded_normal_initial_std_and_bounds():
  dist = dists.BoundedNormal(tf.zeros([2, 3]), tf.zeros([2, 3]))
  np.testing.assert_allclose(dist.scale, 0.892717, atol=1e-6)
  wide = dists.BoundedNormal(tf.fill([1, 2], 50.0), tf.constant([[-50, 50.]]))
  np.testing.assert_allclose(wide.loc, [[1.0, 1.0]], atol=1e-6)
  np.testing.assert_allclose(wide.scale, [[0.1, 1.0]], atol=1e-6)
  # log_prob and entropy sum over the action dimensions.
  single = dists.BoundedNormal(tf.zeros([1, 1]), tf.zeros([1, 1]))
  assert float(dist.entropy()[0]) == pytest.approx(
      3 * float(single.entropy()[0]), rel=1e-6)


def test_symlog_mse_and_image_mse():
  out = dists.SymlogMSE(tf.constant([[0.0, 1.0]]))
  target = tf.constant([[np.e - 1, 0.0]])
  np.testing.assert_allclose(out.loss(target), [2.0], rtol=1e-6)
  np.testing.assert_allclose(out.mean(), [[0.0, np.e - 1]], rtol=1e-6)
  image = dists.ImageMSE(tf.fill([1, 4, 4, 3], 0.5))
  np.testing.assert_allclose(image.loss(tf.zeros([1, 4, 4, 3])), [12.0])


def test_bernoulli_soft_target_loss():
  out = dists.Bernoulli(tf.constant([0.0, 2.0]))
  target = tf.constant([1 - 1 / 333, 0.0])
  expected = [np.log(2), np.log1p(np.exp(2.0))]
  np.testing.assert_allclose(out.loss(target), expected, rtol=1e-5)
  np.testing.assert_allclose(out.mean(), [0.5, 1 / (1 + np.exp(-2))],
                             rtol=1e-6)
