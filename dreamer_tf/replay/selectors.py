"""Item selectors of the replay buffer (spec §1.7): one protocol, a mixture.

The replay's items (sequence starts) have consecutive integer ids and are
evicted first-in first-out, so the live items are always one id range
[first, next). Every selector implements the same small protocol:

  insert(item)                 item == next: a new live item
  remove(item)                 item == first: FIFO eviction
  sample(rng) -> item          one live item, drawn with the numpy Generator
  probability(item) -> float   the chance that `sample` draws it now
  prioritize(items, windows)   items [N] live ids, windows [N, L] the step
                               priorities of each item's sequence (a no-op
                               for uniform and recency)
  get_state() / set_state(s)   plain ints and numpy arrays; a restored
                               selector draws exactly what the saved one
                               would have drawn from the same generator
                               state (the generator belongs to the caller)
  fits(s) -> bool              whether a saved state was made with this
                               selector's settings (`Prioritized`: its
                               exponent, maxfrac and context)

and `reset(first, next)` starts one from the live items when no state was
saved (an older save, or a fraction that was 0 when saving) or the saved
one does not fit.

`Mixture` draws each batch row from one selector chosen by its fraction.
`ItemTable` (item id -> its first step) is the replay's bookkeeping, kept
here beside the ring layout `Prioritized` shares with it.
"""
import typing

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


def ring_size(count, capacity, slots=0):
  """Ring slots after growing `slots` until `count` items fit: doubling,
  at least 16, at most `capacity` (the layout of `ItemTable`; a restore
  into a smaller capacity briefly holds more items, then evicts)."""
  while slots < count:
    slots = min(max(capacity, count), max(16, 2 * slots))
  return slots


class Selector(typing.Protocol):
  """The protocol every selector implements (see the module docstring)."""

  def insert(self, item): ...

  def remove(self, item): ...

  def sample(self, rng): ...

  def probability(self, item): ...

  def prioritize(self, items, windows): ...

  def get_state(self): ...

  def set_state(self, state): ...

  def fits(self, state): ...


class _Range:
  """The live id range [first, next) every selector tracks."""

  def __init__(self):
    self.first = self.next = 0

  def __len__(self):
    return self.next - self.first

  def insert(self, item):
    if item != self.next:
      raise ValueError(f'{type(self).__name__} inserts item ids in order: '
                       f'got {item}, expected {self.next}.')
    self.next += 1

  def remove(self, item):
    if item != self.first or not len(self):
      raise ValueError(f'{type(self).__name__} evicts first-in first-out: '
                       f'got {item}, expected {self.first} of '
                       f'[{self.first}, {self.next}).')
    self.first += 1

  def prioritize(self, items, windows):
    del items, windows  # Uniform and recency ignore priorities.

  def get_state(self):
    return dict(first=self.first, next=self.next)

  def set_state(self, state):
    self.first, self.next = int(state['first']), int(state['next'])

  def fits(self, state):
    """Whether `set_state` can take a state saved with other settings."""
    del state  # Uniform and recency states hold only the live range.
    return True

  def reset(self, first, next_):
    """Forgets everything; holds the live items [first, next_)."""
    self.set_state(dict(first=first, next=next_))

  def _check_live(self):
    if not len(self):
      raise RuntimeError(f'{type(self).__name__} holds no item to sample.')


class Uniform(_Range):
  """p(item) = 1 / N over the N live items."""

  def sample(self, rng):
    self._check_live()
    return self.first + uniform(rng, len(self))

  def probability(self, item):
    del item
    return 1.0 / len(self)


class Recency(_Range):
  """Age distribution p(age) ∝ (age + 1)^-exponent over the live items.

  Age 0 is the newest item. The distribution is truncated to the current
  number of items (the official code instead rescales a capacity-long table
  onto the live items, which puts far more mass on the newest items while the
  buffer is small). The normalising cumulative sums are cached and extended
  as the buffer grows (8 bytes per item).
  """

  def __init__(self, exponent=1.0):
    super().__init__()
    self.exponent = float(exponent)
    self._cdf = np.zeros(0)  # [N] cumulative unnormalised probabilities.

  def sample(self, rng):
    self._check_live()
    return self.next - 1 - self.age(rng, len(self))

  def probability(self, item):
    count = len(self)
    if len(self._cdf) < count:
      self._extend(max(count, 2 * len(self._cdf)))
    age = self.next - 1 - item
    return (age + 1) ** -self.exponent / self._cdf[count - 1]

  def age(self, rng, count):
    """An age in [0, count) drawn from the truncated power law."""
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


class Prioritized(_Range):
  """p(item) ∝ its priority, new (infinite) items first (spec §1.7 `prio`).

  Item priority = maxfrac * max + (1 - maxfrac) * mean of the item's step
  priorities^exponent (`aggregate`) over its trained steps, all but its
  first `context` (those only give the model its context, are never
  written and, counted, would hold a stream's first items at `initial`
  for good); `prioritize` sets it from the step priorities the caller
  stores. The state holds these settings (`aggregation`): a state saved
  with others does not `fit`, and the caller recomputes the items. A new
  item starts at the priority of `initial` steps (inf: drawn, uniformly
  among the infinite ones, before any finite item). When every priority
  is zero, draws are uniform.

  Zero on sample (`zero_on_sample`): a drawn item's priority becomes 0 here,
  in this selector's tree, so it is not drawn again until `prioritize` of
  steps it holds gives it a fresh value (training reports priorities of the
  steps it trained on); `zeroed` counts these. The step priorities the
  caller stores (and saves) are untouched, so items overlapping the drawn
  one keep their priority. The official code (embodied `Prioritized`,
  `zero_on_sample: True`) instead writes zeros into its own table of step
  priorities for all the item's steps, which also lowers every overlapping
  item until those steps are retrained.

  Layout: one `SumTree` leaf per ring slot, item i in slot i % slots; the
  ring grows as `ItemTable` does (`ring_size`). The layout is part of the
  state: the same leaves in other slots give other draws.
  """

  def __init__(self, capacity, exponent=0.8, maxfrac=0.5, initial=np.inf,
               zero_on_sample=True, context=0):
    if not 0 <= maxfrac <= 1:
      raise ValueError(f'prio_maxfrac={maxfrac} must be in [0, 1].')
    super().__init__()
    self.capacity, self.exponent, self.maxfrac = capacity, exponent, maxfrac
    self.context = int(context)
    self.initial, self.zero_on_sample = float(initial), zero_on_sample
    self.slots, self.zeroed = 0, 0
    self.tree = SumTree(1)
    self.drawn_probability = None  # Of the last `sample`, before zeroing.

  @property
  def nbytes(self):
    return self.tree.sums.nbytes + self.tree.infs.nbytes

  def insert(self, item):
    if len(self) == self.slots:
      self._resize(ring_size(len(self) + 1, self.capacity, self.slots))
    super().insert(item)
    initial = aggregate([[self.initial]], self.exponent, self.maxfrac)
    self.tree.set([item % self.slots], initial)

  def remove(self, item):
    super().remove(item)
    self.tree.set([item % self.slots], [0.0])

  def sample(self, rng):
    """Draws an item; `drawn_probability` is the chance it had."""
    self._check_live()
    slot = self.tree.sample(rng)
    if slot is None:  # All priorities zero.
      self.drawn_probability = 1.0 / len(self)
      return self.first + uniform(rng, len(self))
    item = self.first + (slot - self.first) % self.slots
    self.drawn_probability = self.probability(item)
    if self.zero_on_sample:
      self.tree.set([slot], [0.0])
      self.zeroed += 1
    return item

  def probability(self, item):
    probs = self.tree.probabilities([item % self.slots])
    if not (self.tree.infs[1] or self.tree.sums[1] > 0):
      return 1.0 / len(self)  # All zero: uniform (`sample`).
    return float(probs[0])

  @property
  def aggregation(self):
    """The settings an item priority is made with."""
    return dict(exponent=float(self.exponent), maxfrac=float(self.maxfrac),
                context=self.context)

  def prioritize(self, items, windows):
    """items [N] live ids; windows [N, L] their steps' priorities >= 0
    (L > context)."""
    items = np.asarray(items, np.int64)
    if items.size and (items.min() < self.first or items.max() >= self.next):
      raise ValueError(f'Cannot prioritize items {items.tolist()} outside '
                       f'the live range [{self.first}, {self.next}).')
    windows = np.asarray(windows)
    if windows.shape[-1] <= self.context:
      raise ValueError(f'Windows of {windows.shape[-1]} step(s) hold no '
                       f'step after the {self.context} context step(s).')
    values = aggregate(windows[:, self.context:], self.exponent,
                       self.maxfrac)
    self.tree.set(items % self.slots, values)

  def priorities(self, items):
    """[N] current priorities of the live `items`."""
    return self.tree[np.asarray(items, np.int64) % self.slots]

  def get_state(self):
    live = np.arange(self.first, self.next)
    return dict(super().get_state(), slots=self.slots, zeroed=self.zeroed,
                leaves=self.priorities(live),  # [N] float64, oldest first.
                aggregation=self.aggregation)

  def fits(self, state):
    """Whether a saved state's leaves were made with this selector's
    settings (a state without them predates the context rule)."""
    return state.get('aggregation') == self.aggregation

  def set_state(self, state):
    first, next_ = int(state['first']), int(state['next'])
    slots, leaves = int(state['slots']), np.asarray(state['leaves'])
    if slots < next_ - first or leaves.shape != (next_ - first,):
      raise ValueError(
          f'Prioritized state holds {leaves.shape} leaves in {slots} slots '
          f'for the {next_ - first} items [{first}, {next_}).')
    super().set_state(state)
    self.slots, self.zeroed = slots, int(state['zeroed'])
    self.tree = SumTree(max(1, slots))
    self.tree.set(np.arange(first, next_) % max(1, slots), leaves)

  def reset(self, first, next_):
    """Holds [first, next_) at priority 0 (the caller prioritizes them)."""
    self.set_state(dict(
        first=first, next=next_, zeroed=0,
        slots=ring_size(next_ - first, self.capacity),
        leaves=np.zeros(next_ - first)))

  def _resize(self, slots):
    live = np.arange(self.first, self.next)
    values = self.priorities(live) if self.slots else np.zeros(0)
    self.slots, self.tree = slots, SumTree(slots)
    self.tree.set(live % slots, values)


class Mixture:
  """Draws each row from one selector chosen with probability `fracs`.

  fracs: {uniform, recency, priority} -> fraction, summing to 1 (validated
  by `check_fracs`); selectors: {name: selector} for every name with a
  positive fraction (only those exist, so prioritized bookkeeping costs
  nothing unless its fraction is positive). The protocol calls go to every
  selector; `sample` draws the selector of every row of a batch first, then
  the rows, from one numpy generator.
  """

  def __init__(self, fracs, selectors):
    self.fracs = check_fracs(fracs)
    self.names = [k for k in SELECTORS if self.fracs[k] > 0]
    if set(selectors) != set(self.names):
      raise ValueError(f'Mixture fracs {self.fracs} need the selectors '
                       f'{self.names}, got {sorted(selectors)}.')
    self.selectors = dict(selectors)
    probs = np.array([self.fracs[k] for k in self.names])
    self._probs = probs / probs.sum()

  @property
  def prioritized(self):
    """The prioritized selector, or None (then priorities are not used)."""
    return self.selectors.get('priority')

  @property
  def nbytes(self):
    return sum(getattr(s, 'nbytes', 0) for s in self.selectors.values())

  def stats(self):
    prio = self.prioritized
    return dict(prio_zeroed=prio.zeroed) if prio else {}

  def insert(self, item):
    for selector in self.selectors.values():
      selector.insert(item)

  def remove(self, item):
    for selector in self.selectors.values():
      selector.remove(item)

  def sample(self, rng, count, probabilities=False):
    """[count] items, each from the selector drawn for its row.

    With `probabilities`, also [count] float64: the chance that the row
    drew its item, Σ_s fracs[s] P_s(item), with every selector in the
    state that row was drawn in (before zero-on-sample changed it).
    """
    names = self.names
    kinds = (rng.choice(len(names), count, p=self._probs)
             if len(names) > 1 else np.zeros(count, int))
    items, probs = [], []
    for kind in kinds:
      if not probabilities:
        items.append(self.selectors[names[kind]].sample(rng))
        continue
      item = self.selectors[names[kind]].sample(rng)
      probs.append(sum(self._probs[i] * (
          self.selectors[name].drawn_probability  # Before its zeroing.
          if name == 'priority' and i == kind
          else self.selectors[name].probability(item))
                       for i, name in enumerate(names)))
      items.append(item)
    return (items, np.array(probs)) if probabilities else items

  def prioritize(self, items, windows):
    for selector in self.selectors.values():
      selector.prioritize(items, windows)

  def get_state(self):
    return {k: s.get_state() for k, s in self.selectors.items()}

  def set_state(self, state, first, next_):
    """Restores each selector's state; all must hold [first, next_).

    Selectors without a saved state (a save made while their fraction was
    0, or an older format) or with one that does not fit their settings
    (`fits`) are reset to the live items; returns their names, so the
    caller can prioritize those items.
    """
    missing = []
    for name, selector in self.selectors.items():
      if name not in state or not selector.fits(state[name]):
        selector.reset(first, next_)
        missing.append(name)
        continue
      saved = state[name]
      if (saved['first'], saved['next']) != (first, next_):
        raise ValueError(
            f'Selector {name!r} holds items [{saved["first"]}, '
            f'{saved["next"]}), the item table [{first}, {next_}).')
      selector.set_state(saved)
    return missing


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

  def probabilities(self, slots):
    """[N] exact probability that `sample` returns each of `slots`."""
    values = self[slots]
    if self.infs[1]:
      return np.isinf(values) / self.infs[1]
    if self.sums[1] > 0:
      return values / self.sums[1]
    return np.zeros(len(values))


class ItemTable:
  """Ring table of the live items, ids [first, next) -> (chunk id, index).

  Item `i` lives in slot i % slots; the table grows by doubling up to the
  capacity (`ring_size`).
  """

  def __init__(self, capacity):
    self.capacity, self.first, self.next = capacity, 0, 0
    self.chunk = np.zeros(0, np.int64)  # [slots]
    self.index = np.zeros(0, np.int32)  # [slots]

  def __len__(self):
    return self.next - self.first

  def get(self, item):
    slot = item % len(self.chunk)
    return int(self.chunk[slot]), int(self.index[slot])

  def append(self, chunk_id, index):
    if len(self) == len(self.chunk):
      self.resize(ring_size(len(self) + 1, self.capacity, len(self.chunk)))
    slot = self.next % len(self.chunk)
    self.chunk[slot], self.index[slot] = chunk_id, index
    self.next += 1
    return self.next - 1

  def popleft(self):
    """Evicts the oldest item; returns (its id, (chunk id, index))."""
    item, location = self.first, self.get(self.first)
    self.first += 1
    return item, location

  @property
  def nbytes(self):
    return self.chunk.nbytes + self.index.nbytes

  def resize(self, slots):
    ids = np.arange(self.first, self.next)
    old = ids % max(1, len(self.chunk))
    new = ids % slots
    chunk, index = np.zeros(slots, np.int64), np.zeros(slots, np.int32)
    chunk[new], index[new] = self.chunk[old], self.index[old]
    self.chunk, self.index = chunk, index

  def table(self):
    """(chunk ids [N], indices [N]) of the live items, oldest first."""
    slots = np.arange(self.first, self.next) % max(1, len(self.chunk))
    return self.chunk[slots], self.index[slots]
