"""Item selectors of the replay buffer (spec §1.7): uniform, recency, priority.

The replay's items (sequence starts) have consecutive integer ids and are
evicted first-in first-out, so the live items are always one id range
[first, first + count). Uniform and recency selection therefore need no
per-item state: they draw an offset or an age. `ItemTable` maps live item
ids to their first step; prioritized selection keeps one priority per item
in a `SumTree` over the same ring slots.

All draws use the numpy `Generator` passed in, so a replay that saves and
restores its generator state replays the same selections.
"""
import numpy as np

SELECTORS = ('uniform', 'recency', 'priority')


def check_fracs(fracs):
  """Validates the mixture {selector: fraction}; returns it as a dict."""
  fracs = {k: float(v) for k, v in dict(fracs).items()}
  unknown = set(fracs) - set(SELECTORS)
  if unknown:
    raise ValueError(
        f'Unknown replay selectors {sorted(unknown)} in fracs={fracs}; use '
        f'{list(SELECTORS)}.')
  if any(v < 0 for v in fracs.values()) or abs(sum(fracs.values()) - 1) > 1e-6:
    raise ValueError(
        f'Replay fracs={fracs} must be non-negative and sum to 1.')
  return {k: fracs.get(k, 0.0) for k in SELECTORS}


def uniform(rng, count):
  """Offset in [0, count) of a uniformly chosen live item."""
  return int(rng.integers(count))


class Recency:
  """Age distribution p(age) ∝ (age + 1)^-exponent over the live items.

  Age 0 is the newest item. The distribution is truncated to the current
  number of items (the official code instead rescales a capacity-long table
  onto the live items, which puts far more mass on the newest items while the
  buffer is small). The normalising cumulative sums are cached and extended
  as the buffer grows (8 bytes per item).
  """

  def __init__(self, exponent=1.0):
    self.exponent = float(exponent)
    self._cdf = np.zeros(0)  # [N] cumulative unnormalised probabilities.

  def age(self, rng, count):
    if len(self._cdf) < count:
      self._extend(max(count, 2 * len(self._cdf)))
    target = rng.random() * self._cdf[count - 1]
    return min(int(np.searchsorted(self._cdf[:count], target, 'right')),
               count - 1)

  def _extend(self, size):
    ages = np.arange(len(self._cdf), size, dtype=np.float64)
    start = self._cdf[-1] if len(self._cdf) else 0.0
    weights = (ages + 1) ** -self.exponent
    self._cdf = np.concatenate([self._cdf, start + np.cumsum(weights)])


def aggregate(prios, exponent, maxfrac):
  """Item priority from its step priorities [N, L] -> [N] (spec §1.7).

  maxfrac * max(p^exponent) + (1 - maxfrac) * mean(p^exponent), as in the
  official `Prioritized` selector (and R2D2's sequence priority). Infinite
  step priorities (new, never trained steps) make the item infinite.
  """
  powered = np.asarray(prios, np.float64) ** exponent
  if maxfrac == 0:
    return powered.mean(-1)
  if maxfrac == 1:
    return powered.max(-1)
  return maxfrac * powered.max(-1) + (1 - maxfrac) * powered.mean(-1)


class SumTree:
  """Binary sum tree over `size` leaves with exact infinite priorities.

  Finite leaf values are summed in `sums`; leaves equal to +inf are counted
  in `infs`. `sample` draws uniformly among infinite leaves when any exist
  (new items are seen first, the official `initial: inf`), otherwise
  proportionally to the finite values, and returns None when all are zero.
  Internal nodes are always recomputed from their children, so the tree is a
  pure function of its leaves (bit-identical after a rebuild).
  """

  def __init__(self, size):
    self.leaves = 1 << max(0, int(size) - 1).bit_length()
    self.sums = np.zeros(2 * self.leaves)  # [2 * leaves], root at 1.
    self.infs = np.zeros(2 * self.leaves, np.int64)

  def __getitem__(self, slots):
    nodes = np.asarray(slots) + self.leaves
    return np.where(self.infs[nodes] > 0, np.inf, self.sums[nodes])

  def set(self, slots, values):
    """Sets leaves `slots` [N] (unique) to `values` [N] >= 0 (inf allowed)."""
    values = np.asarray(values, np.float64)
    if np.any(np.isnan(values) | (values < 0)):
      raise ValueError(f'Priorities must be >= 0 and not NaN: {values}.')
    nodes = np.asarray(slots, np.int64) + self.leaves
    infinite = np.isinf(values)
    self.sums[nodes] = np.where(infinite, 0.0, values)
    self.infs[nodes] = infinite
    if len(nodes) == 1:  # Fast path for single inserts.
      node = int(nodes[0]) // 2
      while node:
        self.sums[node] = self.sums[2 * node] + self.sums[2 * node + 1]
        self.infs[node] = self.infs[2 * node] + self.infs[2 * node + 1]
        node //= 2
      return
    nodes = np.unique(nodes // 2)
    while nodes.size and nodes[-1] >= 1:
      self.sums[nodes] = self.sums[2 * nodes] + self.sums[2 * nodes + 1]
      self.infs[nodes] = self.infs[2 * nodes] + self.infs[2 * nodes + 1]
      nodes = np.unique(nodes // 2)

  def sample(self, rng):
    """A leaf index, or None if every leaf is zero."""
    if self.infs[1]:
      tree, target = self.infs, int(rng.integers(self.infs[1]))
    elif self.sums[1] > 0:
      tree, target = self.sums, rng.random() * self.sums[1]
    else:
      return None
    node = 1
    while node < self.leaves:
      left, right = tree[2 * node], tree[2 * node + 1]
      if target < left or right <= 0:
        node = 2 * node
      else:
        target, node = target - left, 2 * node + 1
    return node - self.leaves


class ItemTable:
  """Ring table of the live items, ids [first, next) -> (chunk id, index).

  Item `i` lives in slot i % slots; the table grows by doubling up to the
  capacity. With `prioritized`, a `SumTree` over the same slots holds the
  item priorities (the slot layout is part of the state: the same leaves in
  other slots would give other draws).
  """

  def __init__(self, capacity, prioritized):
    self.capacity, self.first, self.next = capacity, 0, 0
    self.chunk = np.zeros(0, np.int64)  # [slots]
    self.index = np.zeros(0, np.int32)  # [slots]
    self.tree = SumTree(1) if prioritized else None

  def __len__(self):
    return self.next - self.first

  def get(self, item):
    slot = item % len(self.chunk)
    return int(self.chunk[slot]), int(self.index[slot])

  def append(self, chunk_id, index):
    if len(self) == len(self.chunk):
      self.resize(min(self.capacity, max(16, 2 * len(self.chunk))))
    slot = self.next % len(self.chunk)
    self.chunk[slot], self.index[slot] = chunk_id, index
    self.next += 1
    return self.next - 1

  def popleft(self):
    location = self.get(self.first)
    if self.tree is not None:
      self.tree.set([self.first % len(self.chunk)], [0.0])
    self.first += 1
    return location

  def slots(self, items):
    return np.asarray(items) % len(self.chunk)

  def item_of_slot(self, slot):
    return self.first + (slot - self.first) % len(self.chunk)

  @property
  def nbytes(self):
    tree = self.tree.sums.nbytes + self.tree.infs.nbytes if self.tree else 0
    return self.chunk.nbytes + self.index.nbytes + tree

  def resize(self, slots):
    ids = np.arange(self.first, self.next)
    old = ids % max(1, len(self.chunk))
    new = ids % slots
    chunk, index = np.zeros(slots, np.int64), np.zeros(slots, np.int32)
    chunk[new], index[new] = self.chunk[old], self.index[old]
    if self.tree is not None:
      values = self.tree[old]
      self.tree = SumTree(slots)
      self.tree.set(new, values)
    self.chunk, self.index = chunk, index

  def table(self):
    """(chunk ids [N], indices [N]) of the live items, oldest first."""
    slots = np.arange(self.first, self.next) % max(1, len(self.chunk))
    return self.chunk[slots], self.index[slots]
