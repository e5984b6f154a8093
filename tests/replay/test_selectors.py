"""Replay selectors (spec §1.7): sum tree, recency ages, priority aggregate."""
import numpy as np
import pytest

from dreamer_tf.replay import selectors as selectors


def test_check_fracs():
  assert selectors.check_fracs(dict(uniform=1.0)) == dict(
      uniform=1.0, recency=0.0, priority=0.0)
  with pytest.raises(ValueError, match='Unknown replay selectors'):
    selectors.check_fracs(dict(uniform=0.5, fifo=0.5))
  with pytest.raises(ValueError, match='sum to 1'):
    selectors.check_fracs(dict(uniform=0.5, recency=0.2))


def test_sum_tree_sums_and_proportional_sampling():
  tree = selectors.SumTree(5)
  assert tree.leaves == 8
  tree.set([0, 1, 2, 3, 4], [1.0, 0.0, 2.0, 3.0, 4.0])
  assert tree.sums[1] == 10.0
  np.testing.assert_array_equal(tree[[0, 1, 4]], [1.0, 0.0, 4.0])
  rng = np.random.default_rng(0)
  counts = np.bincount([tree.sample(rng) for _ in range(5000)], minlength=8)
  np.testing.assert_allclose(counts[:5] / 5000, [0.1, 0, 0.2, 0.3, 0.4],
                             atol=0.025)
  assert counts[1] == 0 and counts[5:].sum() == 0


def test_sum_tree_infinite_leaves_first_then_finite():
  tree = selectors.SumTree(4)
  tree.set([0, 1, 2, 3], [5.0, np.inf, 1.0, np.inf])
  rng = np.random.default_rng(1)
  drawn = {tree.sample(rng) for _ in range(200)}
  assert drawn == {1, 3}
  tree.set([1, 3], [0.0, 0.0])
  assert tree.sums[1] == 6.0 and tree.infs[1] == 0
  assert {tree.sample(rng) for _ in range(200)} == {0, 2}
  tree.set([0, 2], [0.0, 0.0])
  assert tree.sample(rng) is None


def test_sum_tree_single_leaf_and_validation():
  tree = selectors.SumTree(1)
  tree.set([0], [2.0])
  assert tree.sample(np.random.default_rng(0)) == 0
  with pytest.raises(ValueError, match='Priorities'):
    tree.set([0], [np.nan])


def test_sum_tree_is_a_function_of_its_leaves():
  rng = np.random.default_rng(2)
  values = rng.random(100) * 10
  incremental = selectors.SumTree(100)
  for i in rng.permutation(100):
    incremental.set([i], [values[i] + 1.0])
    incremental.set([i], [values[i]])
  bulk = selectors.SumTree(100)
  bulk.set(np.arange(100), values)
  np.testing.assert_array_equal(incremental.sums, bulk.sums)


def test_recency_distribution_matches_power_law():
  recency = selectors.Recency(exponent=1.0)
  rng = np.random.default_rng(3)
  ages = np.array([recency.age(rng, 50) for _ in range(20000)])
  assert ages.min() >= 0 and ages.max() <= 49
  expected = 1.0 / np.arange(1, 51)
  expected /= expected.sum()
  freq = np.bincount(ages, minlength=50) / len(ages)
  np.testing.assert_allclose(freq[:5], expected[:5], atol=0.012)
  # The cache grows with the buffer and keeps earlier values.
  assert recency.age(rng, 1) == 0
  recency.age(rng, 500)
  np.testing.assert_allclose(
      recency._cdf[:50], np.cumsum(1.0 / np.arange(1, 51)))


def test_aggregate_mixes_max_and_mean():
  prios = np.array([[1.0, 4.0, 9.0], [0.0, 0.0, 0.0], [1.0, np.inf, 0.0]])
  got = selectors.aggregate(prios, exponent=0.5, maxfrac=0.5)
  np.testing.assert_allclose(got[:2], [0.5 * 3 + 0.5 * 2, 0.0])
  assert got[2] == np.inf
  np.testing.assert_allclose(selectors.aggregate(prios[:1], 1.0, 0.0), [14 / 3])
  np.testing.assert_allclose(selectors.aggregate(prios[:1], 1.0, 1.0), [9.0])
