"""Replay selectors (spec §1.7): the protocol, each selector against its
exact distribution, the mixture, state round trips; sum tree, recency ages,
priority aggregate."""
import collections
import json

import numpy as np
import pytest
from scipy import stats

from dreamer_tf.replay import disk
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


# --- The selector protocol ---------------------------------------------------


def _filled(selector, first=5, next_=45):
  """The selector holding the live items [first, next_)."""
  for item in range(next_):
    selector.insert(item)
  for item in range(first):
    selector.remove(item)
  return selector


def _check_draws(selector, probs, draws=20000, seed=0):
  """Chi-square test of `draws` samples against {item: probability}."""
  rng = np.random.default_rng(seed)
  items = sorted(probs)
  counts = collections.Counter(selector.sample(rng) for _ in range(draws))
  assert set(counts) <= set(items)
  observed = [counts[i] for i in items]
  expected = np.array([probs[i] for i in items]) * draws
  assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_uniform_matches_its_distribution():
  uniform = _filled(selectors.Uniform())
  assert len(uniform) == 40
  _check_draws(uniform, {i: 1 / 40 for i in range(5, 45)})


def test_recency_matches_the_truncated_power_law():
  recency = _filled(selectors.Recency(exponent=0.7))
  weights = {i: (44 - i + 1) ** -0.7 for i in range(5, 45)}
  total = sum(weights.values())
  _check_draws(recency, {i: w / total for i, w in weights.items()})


def _prioritized(**kwargs):
  kwargs = dict(dict(capacity=50, exponent=0.8, maxfrac=0.3,
                     zero_on_sample=False), **kwargs)
  return _filled(selectors.Prioritized(**kwargs))


def test_prioritized_matches_brute_force_priorities():
  prio = _prioritized()
  rng = np.random.default_rng(1)
  windows = rng.random((40, 4)) * 5
  windows[::7] = 0.0  # Items that are never drawn.
  prio.prioritize(np.arange(5, 45), windows)
  powered = windows ** 0.8
  brute = np.array([0.3 * w.max() + 0.7 * w.mean() for w in powered])
  np.testing.assert_allclose(prio.priorities(np.arange(5, 45)), brute,
                             rtol=1e-12)
  exact = prio.tree.probabilities(np.arange(5, 45) % prio.slots)
  np.testing.assert_allclose(exact, brute / brute.sum(), rtol=1e-12)
  probs = {i: p for i, p in zip(range(5, 45), brute / brute.sum())}
  _check_draws(prio, {i: p for i, p in probs.items() if p > 0})


def test_prioritized_leaves_out_the_context_steps():
  """With `context` C an item's priority aggregates its steps after the
  first C; an infinite (never written) context step does not count."""
  prio = _prioritized(context=1)
  rng = np.random.default_rng(2)
  windows = rng.random((40, 4)) * 5
  windows[:, 0] = np.inf
  prio.prioritize(np.arange(5, 45), windows)
  powered = windows[:, 1:] ** 0.8
  brute = np.array([0.3 * w.max() + 0.7 * w.mean() for w in powered])
  np.testing.assert_allclose(prio.priorities(np.arange(5, 45)), brute,
                             rtol=1e-12)
  with pytest.raises(ValueError, match=r'Windows of 1 step\(s\) hold no step '
                     r'after the 1 context step\(s\)'):
    prio.prioritize([5], [[1.0]])


def test_a_prioritized_state_fits_only_its_own_settings():
  state = _prioritized(context=1).get_state()
  assert state['aggregation'] == dict(exponent=0.8, maxfrac=0.3, context=1)
  assert _prioritized(context=1).fits(state)
  for other in (dict(context=0), dict(exponent=1.0), dict(maxfrac=0.5)):
    assert not _prioritized(**dict(dict(context=1), **other)).fits(state)
  older = {k: v for k, v in state.items() if k != 'aggregation'}
  assert not _prioritized().fits(older)  # Saved before the context rule.
  assert selectors.Uniform().fits(state)


def test_prioritized_new_items_first_then_uniform_when_all_zero():
  prio = _prioritized()  # New items start at `initial` = inf.
  prio.prioritize(np.arange(5, 40), np.ones((35, 3)))
  _check_draws(prio, {i: 1 / 5 for i in range(40, 45)}, draws=2000)
  prio.prioritize(np.arange(5, 45), np.zeros((40, 3)))
  assert prio.tree.sample(np.random.default_rng(0)) is None
  _check_draws(prio, {i: 1 / 40 for i in range(5, 45)})


def test_prioritized_zero_on_sample_is_its_own_state():
  prio = _prioritized(zero_on_sample=True)
  prio.prioritize(np.arange(5, 45), np.ones((40, 2)))
  rng = np.random.default_rng(2)
  drawn = [prio.sample(rng) for _ in range(40)]
  assert sorted(drawn) == list(range(5, 45)) and prio.zeroed == 40
  np.testing.assert_array_equal(prio.priorities(np.arange(5, 45)), 0)
  # All zero: uniform draws, nothing more to zero.
  drawn = prio.sample(rng)
  assert prio.zeroed == 40 and prio.priorities([drawn]) == 0
  prio.prioritize([7], [[4.0, 4.0]])  # A fresh value after training.
  assert prio.priorities([7]) == 4.0 ** 0.8
  assert prio.sample(rng) == 7 and prio.priorities([7]) == 0


def test_mixture_fractions():
  class Fixed:  # Always draws `item`; a protocol stub.
    def __init__(self, item):
      self.item = item

    def sample(self, rng):
      return self.item

  fracs = dict(uniform=0.5, recency=0.2, priority=0.3)
  mixture = selectors.Mixture(fracs, dict(
      uniform=Fixed(0), recency=Fixed(1), priority=Fixed(2)))
  counts = np.bincount(mixture.sample(np.random.default_rng(3), 20000))
  assert stats.chisquare(counts, np.array([0.5, 0.2, 0.3]) * 20000
                         ).pvalue > 1e-3
  only = selectors.Mixture(dict(recency=1.0), dict(recency=Fixed(1)))
  assert only.sample(np.random.default_rng(0), 3) == [1, 1, 1]
  assert only.prioritized is None and only.stats() == {}


def test_mixture_validates_loudly():
  with pytest.raises(ValueError, match='sum to 1'):
    selectors.Mixture(dict(uniform=0.5), dict(uniform=selectors.Uniform()))
  with pytest.raises(ValueError, match='Unknown replay selectors'):
    selectors.Mixture(dict(fifo=1.0), {})
  with pytest.raises(ValueError, match=r"need the selectors \['uniform'\]"):
    selectors.Mixture(dict(uniform=1.0), dict(recency=selectors.Recency()))


def test_fifo_protocol_errors():
  for selector in (selectors.Uniform(), selectors.Recency(),
                   selectors.Prioritized(10)):
    selector.insert(0)
    with pytest.raises(ValueError, match='in order'):
      selector.insert(2)
    selector.insert(1)
    with pytest.raises(ValueError, match='first-in first-out'):
      selector.remove(1)
    selector.remove(0)
    selector.remove(1)
    with pytest.raises(RuntimeError, match='no item'):
      selector.sample(np.random.default_rng(0))
  with pytest.raises(ValueError, match='outside the live range'):
    _prioritized().prioritize([3], [[1.0]])


def _mixture(seed_items=60):
  mixture = selectors.Mixture(
      dict(uniform=0.3, recency=0.3, priority=0.4), dict(
          uniform=selectors.Uniform(), recency=selectors.Recency(1.0),
          priority=selectors.Prioritized(40, zero_on_sample=True)))
  rng = np.random.default_rng(4)
  for item in range(seed_items):
    if item >= 40:
      mixture.remove(item - 40)
    mixture.insert(item)
    if item % 5 == 4:
      mixture.sample(rng, 3)
      live = np.arange(max(0, item - 39), item + 1)
      mixture.prioritize(live[::3], rng.random((len(live[::3]), 4)))
  return mixture, rng


def _continue(mixture, rng, start=60):
  """Draws and protocol calls after a point; returns the draws."""
  drawn = []
  for item in range(start, start + 30):
    mixture.remove(item - 40)
    mixture.insert(item)
    drawn += mixture.sample(rng, 4)
    mixture.prioritize([item - 1, item], rng.random((2, 4)))
  return drawn, mixture.get_state()


def test_state_round_trip_gives_identical_next_draws():
  mixture, rng = _mixture()
  state = mixture.get_state()
  # Plain data: JSON plus numpy arrays (as the replay saves it).
  packed, arrays = disk.pack_state(state)
  restored_state = disk.unpack_state(json.loads(json.dumps(packed)), arrays)
  restored, _ = _mixture(seed_items=0)
  assert restored.set_state(restored_state, 20, 60) == []
  assert restored.prioritized.zeroed == mixture.prioritized.zeroed > 0
  twin_rng = np.random.default_rng()
  twin_rng.bit_generator.state = rng.bit_generator.state
  drawn, final = _continue(mixture, rng)
  twin_drawn, twin_final = _continue(restored, twin_rng)
  assert drawn == twin_drawn
  for name in final:
    for key, value in final[name].items():
      np.testing.assert_array_equal(value, twin_final[name][key])
  with pytest.raises(ValueError, match=r'holds items \[20, 60\)'):
    restored.set_state(state, 21, 60)


def test_missing_selector_state_starts_from_the_live_items():
  mixture, _ = _mixture(seed_items=0)
  state = dict(uniform=dict(first=3, next=9))
  assert mixture.set_state(state, 3, 9) == ['recency', 'priority']
  assert len(mixture.selectors['recency']) == 6
  assert (mixture.prioritized.priorities(np.arange(3, 9)) == 0).all()


def test_prioritized_ring_follows_the_item_table():
  table, prio = selectors.ItemTable(100), selectors.Prioritized(100)
  for item in range(150):
    if item >= 100:
      table.popleft()
      prio.remove(item - 100)
    table.append(0, 0)
    prio.insert(item)
    assert prio.slots == len(table.chunk)
  assert prio.slots == 100


def _brute_mixture_probabilities(fracs, first, next_, leaves, exponent):
  """P(item) under the mixture by brute force, every item of [first, next)."""
  items = np.arange(first, next_)
  uniform = np.full(len(items), 1 / len(items))
  ages = next_ - 1 - items
  recency = (ages + 1.0) ** -exponent
  recency /= recency.sum()
  if np.isinf(leaves).any():
    prio = np.isinf(leaves) / np.isinf(leaves).sum()
  elif leaves.sum() > 0:
    prio = leaves / leaves.sum()
  else:
    prio = uniform
  return dict(zip(items.tolist(), fracs['uniform'] * uniform
                  + fracs['recency'] * recency + fracs['priority'] * prio))


@pytest.mark.parametrize('zero_on_sample', [False, True])
def test_mixture_probabilities_match_brute_force(zero_on_sample):
  """The chance reported for every drawn row equals the brute-force mixture
  probability in the state the row was drawn in (before zero-on-sample),
  and those chances describe the draws (chi-square)."""
  fracs = dict(uniform=0.2, recency=0.3, priority=0.5)
  prio = selectors.Prioritized(50, exponent=1.0, maxfrac=0.0,
                               zero_on_sample=zero_on_sample)
  mixture = selectors.Mixture(fracs, dict(
      uniform=selectors.Uniform(), recency=selectors.Recency(0.7),
      priority=prio))
  for item in range(30):
    mixture.insert(item)
  rng = np.random.default_rng(5)
  mixture.prioritize(np.arange(30), rng.random((30, 1)) * 3)
  counts = collections.Counter()
  draws = 0
  for _ in range(400 if zero_on_sample else 4000):
    leaves = prio.priorities(np.arange(30)).copy()
    brute = _brute_mixture_probabilities(fracs, 0, 30, leaves, 0.7)
    items, probs = mixture.sample(rng, 5, probabilities=True)
    assert probs.shape == (5,)
    # The first row's state is the one before this batch; later rows see
    # the zeroing of earlier rows.
    assert probs[0] == pytest.approx(brute[items[0]], rel=1e-12)
    for item, p in zip(items[1:], probs[1:]):
      if not zero_on_sample:
        assert p == pytest.approx(brute[item], rel=1e-12)
      assert 0 < p <= 1
    if zero_on_sample:  # Refresh what the batch zeroed, as training would.
      mixture.prioritize(np.arange(30), np.maximum(leaves, 0)[:, None])
    counts.update([items[0]])
    draws += 1
  if not zero_on_sample:
    observed = [counts[i] for i in range(30)]
    expected = np.array([brute[i] for i in range(30)]) * draws
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_mixture_probabilities_with_new_items_and_all_zero():
  prio = selectors.Prioritized(20, zero_on_sample=False)
  mixture = selectors.Mixture(dict(uniform=0.5, priority=0.5), dict(
      uniform=selectors.Uniform(), priority=prio))
  for item in range(10):
    mixture.insert(item)  # All new: infinite priority.
  mixture.prioritize(np.arange(8), np.ones((8, 2)))  # Items 8, 9 stay new.
  rng = np.random.default_rng(0)
  items, probs = mixture.sample(rng, 50, probabilities=True)
  for item, p in zip(items, probs):
    assert p == pytest.approx(0.5 / 10 + (0.5 / 2 if item >= 8 else 0.0))
  mixture.prioritize(np.arange(10), np.zeros((10, 2)))
  _, probs = mixture.sample(rng, 5, probabilities=True)
  np.testing.assert_allclose(probs, 0.1)  # All zero: uniform.
