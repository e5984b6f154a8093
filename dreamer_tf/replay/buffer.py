"""Chunked sequence replay with latent write-back and atomic persistence.

Spec §1.7 (Replay), §4.2 (online queue first), §4.3 (first-step annotation,
latent replay), §8.13 (start training once enough sequences are stored).

Storage. Each env worker appends steps (flat dicts of numpy arrays) to its
own stream. A stream is a linked list of chunks of `chunk_size` consecutive
steps held in preallocated arrays of the step's own dtype (uint8 images stay
uint8). Every stored step followed by `length - 1` more steps of its stream is
an *item* (a sequence start); sequences cross chunk and episode boundaries.
Items get consecutive ids and are evicted first-in first-out beyond
`capacity`; a chunk is freed once no live item starts in it or reaches into
it. Each step also carries a priority (float32), set by training through
`update` and read by prioritized selection.

Selection (`sample`). With `online=True`, every `length` steps of a worker
push one fresh, non-overlapping item (stream starts 0, length, 2 length...)
to a queue that fills batches first, oldest queued first, each queued item
once (§4.2); the remaining rows are drawn from the `selectors.Mixture` of
uniform, recency and prioritized selectors (`fracs`), with one seeded numpy
generator. Sampling writes nothing into the stored steps: zero-on-sample is
state of the prioritized selector (`selectors.Prioritized`).

Step ids. Every batch (`sample`, `peek`) carries `stepid` [B, L, 2] int64 =
(chunk id, index in that chunk) of each of its steps; the steps of one row
may lie in consecutive chunks. Chunk ids are never reused, so step ids stay
valid after later inserts, evictions and a save/restore. `update` writes
values (latents, §4.3; step priorities) to the steps its `stepid` names and
skips steps whose chunk was freed.

Persistence (`save`, `load`; the on-disk format is in `disk`). A save
writes only what changed since the last one: both files of a chunk while it
fills, only its small latents file (written-back keys, step priorities)
after `update`. It is atomic, and loading restores the exact state
(selector states included): sampling continues as if never saved. A damaged
file the save references raises `ReplayCorruptError` naming it.

Memory (tests/replay/test_buffer.py::test_memory_per_million_steps stores
2048 steps of {image uint8 64x64x3, reward, 3 flags, int32 action}): 12,323
bytes per step = 12.3 GB (11.5 GiB) per million steps: 12,288 for the image,
11 for the scalars, 24 for the step priority and item bookkeeping; the
process RSS grew by 12,315 bytes per step over 8192 such steps. Prioritized
selection (priority fraction > 0) adds its sum tree, 32 bytes per leaf, one
leaf per item slot rounded up to a power of two (the same steps: 12,355
bytes per step). Latent replay adds 4 * (deter + stoch * classes) bytes per
step for float32 latents, e.g. +10.2 GB per million steps for size12m (2048
+ 32 * 16) and +41 GB for size200m; float16 latents halve that. Python
objects are per chunk, not per step. A worker that stops adding keeps its
last `length - 1` steps (and their chunks) alive, since they may still
become items.
"""
import collections
import functools
import math
import threading
import types
import warnings

import gin
import numpy as np

import dreamer_tf.replay.disk as disk
import dreamer_tf.replay.selectors as selectors

ReplayCorruptError = disk.ReplayCorruptError
_PARTS, _LATENTS = disk.PARTS, disk.LATENTS
_DEFAULT_FRACS = types.MappingProxyType(
    dict(uniform=1.0, recency=0.0, priority=0.0))
STEPID = 'stepid'  # Batch key: [B, L, 2] int64 (chunk id, index).
PRIORITY = 'priority'  # `update` key: [B, T] step priorities.
WEIGHT = 'weight'  # Batch key with `importance`: [B] importance weights.


def _locked(method):
  @functools.wraps(method)
  def wrapper(self, *args, **kwargs):
    with self._lock:
      return method(self, *args, **kwargs)
  return wrapper


class _Chunk:
  """Up to `size` consecutive steps of one worker stream.

  refs = live items starting here + 1 while the predecessor links here + 1
  while some of its steps are not yet items ("pending"); freed at zero.
  files: {part: name} of its files in the last save (`disk`); dirty: the
  parts changed since.
  """

  __slots__ = ('id', 'worker', 'size', 'length', 'data', 'prio', 'items',
               'pred', 'succ', 'refs', 'files', 'dirty')

  def __init__(self, id_, worker, size, spec, prio_initial):
    self.id, self.worker, self.size, self.length = id_, worker, size, 0
    self.data = {k: np.zeros((size, *shape), dtype)  # [size, ...]
                 for k, (dtype, shape) in spec.items()}
    self.prio = np.full(size, prio_initial, np.float32)  # [size]
    self.items = np.full(size, -1, np.int64)  # [size] item id per start.
    self.pred = self.succ = -1
    self.refs, self.files, self.dirty = 1, {}, set(_PARTS)

  @property
  def nbytes(self):
    arrays = list(self.data.values()) + [self.prio, self.items]
    return sum(x.nbytes for x in arrays)

  def append(self, step):
    for key, array in self.data.items():
      array[self.length] = step[key]
    self.length += 1
    self.dirty.update(_PARTS)


@gin.configurable
class Replay:
  """Sequence replay of spec §1.7 (see the module docstring).

  directory: where `save` writes and from where the constructor restores the
    last save (if `index.json` exists and `restore`); None keeps everything
    in RAM.
  restore: load the last save when constructed. The training loop passes
    False and loads the save its checkpoint names (`load(generation)`).
  capacity: maximum number of items (sequence starts), FIFO eviction.
  chunk_size: steps per chunk. length: steps per sampled sequence.
  online: fill batches from the queue of fresh sequences first (§4.2).
  fracs: mixture {uniform, recency, priority} -> fraction, summing to 1.
  recency_exp: p(age) ∝ (age + 1)^-recency_exp, age 0 = newest item.
  prio_exponent, prio_maxfrac: item priority = maxfrac * max + (1 - maxfrac)
    * mean of step priority^exponent over its trained steps: the last
    `length - context` of its `length`.
  context: the first steps of each sequence that only give the model its
    context (the agent's `replay_context`, §4.3). Training writes no
    priority to them, so they are left out of the item priority: the
    first `context` steps of a worker's stream are never trained and,
    counted, would keep the first items at their initial (infinite)
    priority for good, drawn in almost every prioritized batch.
  prio_initial: priority of new steps (inf: seen before any trained item).
  prio_zero_on_sample: the prioritized selector zeroes the priority of an
    item it draws, in its own state, until `update` gives steps of that
    item fresh priorities, or `restore_priorities` (a skipped update) the
    old ones (stored step priorities are left alone).
  importance: exponent β of importance weights (0: none). With β > 0 and
    a priority fraction > 0, `sample` adds `weight` [B]: (N P_b)^-β / max,
    P_b the chance that row b drew its item (`selectors.Mixture.sample`),
    N the live items; rows from the online queue count as uniform draws
    (P = 1/N). The agent scales each row's world-model losses by it.
  compress: zlib-compress chunk files (smaller, slower saves).
  """

  def __init__(
      self, directory=None, capacity=5_000_000, chunk_size=1024, length=65,
      online=True, fracs=_DEFAULT_FRACS, recency_exp=1.0, prio_exponent=0.8,
      prio_maxfrac=0.5, seed=0, prio_initial=np.inf,
      prio_zero_on_sample=True, importance=0.0, compress=False,
      restore=True, context=0):
    if capacity < 1 or chunk_size < 1 or length < 1:
      raise ValueError(f'Replay needs capacity, chunk_size and length >= 1, '
                       f'got {capacity}, {chunk_size}, {length}.')
    if not 0 <= context < length:
      raise ValueError(f'Replay context={context} must be in [0, length) '
                       f'= [0, {length}): each sequence needs a trained '
                       'step.')
    if not 0 <= prio_maxfrac <= 1:
      raise ValueError(f'prio_maxfrac={prio_maxfrac} must be in [0, 1].')
    if not (isinstance(prio_exponent, (int, float))
            and math.isfinite(prio_exponent) and prio_exponent >= 0):
      raise ValueError(f'Replay.prio_exponent={prio_exponent!r} must be a '
                       'finite number >= 0 (0.8 by default; 0 draws the '
                       'trained items uniformly).')
    if not 0 <= importance <= 1:
      raise ValueError(f'Replay.importance={importance} must be in [0, 1] '
                       '(the importance-sampling exponent β; 0 turns the '
                       'weights off).')
    self.directory, self.capacity = directory, int(capacity)
    self.chunk_size, self.length, self.online = chunk_size, length, online
    self.context = int(context)
    self.fracs = selectors.check_fracs(fracs)
    self.recency_exp = recency_exp
    self.prio_exponent, self.prio_maxfrac = prio_exponent, prio_maxfrac
    self.prio_initial = float(prio_initial)
    self.prio_zero_on_sample, self.compress = prio_zero_on_sample, compress
    self.importance = float(importance)
    self._lock = threading.RLock()
    self._disk = (disk.Directory(directory, compress) if directory
                  else None)
    self._seed = seed
    self.clear()
    if restore and self._disk and self._disk.exists():
      self.load()

  def clear(self):
    """Forgets every step: an empty replay, as constructed without a
    save. Its next save is numbered after every save on disk."""
    self._reset(self._seed)
    if self._disk:
      self._generation = self._disk.last_generation()

  def _reset(self, seed):
    self._rng = np.random.default_rng(seed)
    self._spec = None  # key -> (dtype, shape)
    self._latent_keys = ()  # Keys `update` wrote, in spec order.
    self._chunks = {}  # chunk id -> _Chunk
    self._streams = {}  # worker -> [open chunk id, steps added]
    self._next_chunk, self._generation = 0, 0
    self._items = selectors.ItemTable(self.capacity)
    self._mixture = self._make_mixture()
    self._queue = collections.deque()  # item ids, oldest first
    self._counts = dict(steps=0, inserts=0, samples=0, updates=0,
                        update_skipped=0)

  def _make_mixture(self):
    make = dict(
        uniform=selectors.Uniform,
        recency=lambda: selectors.Recency(self.recency_exp),
        priority=lambda: selectors.Prioritized(
            self.capacity, self.prio_exponent, self.prio_maxfrac,
            self.prio_initial, self.prio_zero_on_sample, self.context))
    return selectors.Mixture(self.fracs, {
        name: make[name]() for name, frac in self.fracs.items() if frac > 0})

  def __len__(self):
    return len(self._items)

  @property
  def prioritized(self):
    """True when batches draw by priority (`fracs['priority'] > 0`): then
    training should write step priorities back (`update`)."""
    return self._mixture.prioritized is not None

  @_locked
  def priorities(self):
    """What prioritized selection draws from, for inspection and tests:
    {'steps': {chunk id: [length] float32 stored step priorities},
    'items': [N] float64 the selector's priority of every live item,
    oldest first (None without prioritized selection; zero-on-sample
    zeros included)}."""
    steps = {c: chunk.prio[:chunk.length].copy()
             for c, chunk in sorted(self._chunks.items())}
    selector = self._mixture.prioritized
    items = None if selector is None else selector.priorities(
        np.arange(self._items.first, self._items.next))
    return dict(steps=steps, items=items)

  @_locked
  def stats(self):
    """Counts: items, chunks, streams, queue, inserts, samples, updates
    (rows written by `update`), update_skipped (steps of freed chunks),
    prio_zeroed (zero-on-sample draws, with prioritized selection); ram_gb.
    """
    arrays = (self._items.nbytes + self._mixture.nbytes
              + sum(c.nbytes for c in self._chunks.values()))
    return dict(
        items=len(self._items), chunks=len(self._chunks),
        streams=len(self._streams), queue=len(self._queue),
        ram_gb=arrays / 2 ** 30, **self._counts, **self._mixture.stats())

  # --- Inserting -----------------------------------------------------------

  @_locked
  def add(self, step, worker=0):
    """Appends one step (dict of arrays) to the stream of `worker` (an int).

    Keys starting with 'log/' are dropped; keys, shapes and dtypes are fixed
    by the first step.
    """
    step = {k: np.asarray(v) for k, v in step.items()
            if not k.startswith('log/')}
    self._check_step(step)
    worker = int(worker)
    chunk = self._open_chunk(worker)
    chunk.append(step)
    stream = self._streams[worker]
    stream[1] += 1
    self._counts['steps'] += 1
    start = stream[1] - self.length  # Stream position of the new item.
    if start >= 0:
      head, index = self._locate(chunk, chunk.length - 1, 1 - self.length)
      self._insert(head, index, start)

  def _check_step(self, step):
    if self._spec is None:
      bad = [k for k in step if k.startswith('__') or k in (STEPID, PRIORITY)]
      if bad:
        raise ValueError(
            f'Replay step keys {bad} are reserved (leading __, {STEPID!r}, '
            f'{PRIORITY!r}); rename them.')
      self._spec = {k: (v.dtype, v.shape) for k, v in step.items()}
      return
    if set(step) != set(self._spec):
      missing = sorted(set(self._spec) - set(step))
      raise ValueError(f'Replay step keys changed: missing {missing}, '
                       f'unexpected {sorted(set(step) - set(self._spec))}.')
    for key, value in step.items():
      dtype, shape = self._spec[key]
      if value.shape != shape or not np.can_cast(
          value.dtype, dtype, 'same_kind'):
        raise ValueError(
            f'Replay step {key!r} has shape {value.shape} and dtype '
            f'{value.dtype}; the replay stores {shape} {dtype}.')

  def _open_chunk(self, worker):
    """The worker's chunk with free space; links a new one if needed."""
    stream = self._streams.setdefault(worker, [-1, 0])
    current = self._chunks.get(stream[0])
    if current is not None and current.length < current.size:
      return current
    chunk = _Chunk(self._next_chunk, worker, self.chunk_size, self._spec,
                   self.prio_initial)
    self._next_chunk += 1
    if current is not None:
      chunk.pred, current.succ = current.id, chunk.id
      chunk.refs += 1
    self._chunks[chunk.id] = chunk
    stream[0] = chunk.id
    return chunk

  def _insert(self, chunk, index, start):
    while len(self._items) >= self.capacity:
      self._evict()
    item = self._items.append(chunk.id, index)
    self._mixture.insert(item)
    chunk.items[index] = item
    chunk.refs += 1
    if index == chunk.size - 1:
      chunk.refs -= 1  # Every step of the chunk now starts an item.
    self._counts['inserts'] += 1
    if self._mixture.prioritized:
      self._refresh(chunk, index, 0, 1)
    if self.online and start % self.length == 0:
      self._queue.append(item)

  def _evict(self):
    item, (chunk_id, index) = self._items.popleft()
    self._mixture.remove(item)
    chunk = self._chunks[chunk_id]
    chunk.items[index] = -1
    self._release(chunk)
    while self._queue and self._queue[0] < self._items.first:
      self._queue.popleft()

  def _release(self, chunk):
    chunk.refs -= 1
    while chunk is not None and chunk.refs == 0:
      del self._chunks[chunk.id]
      chunk = self._chunks.get(chunk.succ)
      if chunk is not None:
        chunk.refs -= 1

  # --- Walking streams -----------------------------------------------------

  def _locate(self, chunk, index, offset):
    """(chunk, index) of the step `offset` steps after (chunk, index)."""
    (found, lo, _, _), = self._pieces(chunk, index, offset, 1)
    return found, lo

  def _pieces(self, chunk, index, start, count):
    """Stored parts of the stream positions index+start ... +count.

    Returns [(chunk, lo, hi, dst)]: chunk steps [lo, hi) hold the positions
    [dst, dst + hi - lo) of the requested range; missing ones are left out.
    """
    pos, dst, pieces = index + start, 0, []
    while pos < 0:
      pred = self._chunks.get(chunk.pred)
      if pred is None:
        pos, dst = 0, -pos
        break
      chunk, pos = pred, pos + pred.length
    while dst < count and chunk is not None:
      if pos < chunk.length:
        take = min(chunk.length - pos, count - dst)
        pieces.append((chunk, pos, pos + take, dst))
        pos, dst = pos + take, dst + take
      elif chunk.length < chunk.size:
        break  # End of the stream.
      else:
        pos, chunk = pos - chunk.length, self._chunks.get(chunk.succ)
    return pieces

  def _read(self, chunk, index, start, count, get, fill):
    """Gathers `get(chunk)` over a stream range [count, ...], else `fill`."""
    example = get(chunk)
    out = np.full((count, *example.shape[1:]), fill, example.dtype)
    for part, lo, hi, dst in self._pieces(chunk, index, start, count):
      out[dst: dst + hi - lo] = get(part)[lo: hi]
    return out

  # --- Sampling ------------------------------------------------------------

  @_locked
  def sample(self, batch_size, length=None, online=True, normalize=True):
    """A batch {key: [B, T, ...]} with `stepid` [B, T, 2] int64.

    T = length or the replay length (a prefix of each sequence). Rows come
    from the online queue first (if `online`), then from the `fracs`
    mixture. is_first is forced at t = 0 and is_last set before every
    is_first (§4.3), in the batch only. stepid[b, t] = (chunk id, index)
    names the stored step of row b, time t, for `update`. With importance
    weights, `normalize=False` returns them as float64 (N P_b)^-β, not yet
    divided by their max: for a caller whose batch spans several replays
    (the workers of a run) and divides by the max over all of them.
    """
    length = length or self.length
    if not 1 <= length <= self.length:
      raise ValueError(f'Cannot sample length {length} > {self.length}.')
    if not len(self._items):
      raise RuntimeError('The replay holds no complete sequence yet: add at '
                         f'least {self.length} steps of one worker first.')
    items = []
    while online and self.online and self._queue and len(items) < batch_size:
      item = self._queue.popleft()
      if item >= self._items.first:
        items.append(item)
    count = batch_size - len(items)
    weighted = self.importance > 0 and self._mixture.prioritized
    if not weighted:
      items += self._mixture.sample(self._rng, count)
      self._counts['samples'] += batch_size
      return self._assemble(items, length)
    probs = np.full(len(items), 1.0 / len(self._items))  # Queue rows.
    drawn, drawn_probs = self._mixture.sample(self._rng, count, True)
    items += drawn
    probs = np.concatenate([probs, drawn_probs])
    weight = (len(self._items) * probs) ** -self.importance
    self._counts['samples'] += batch_size
    batch = self._assemble(items, length)
    batch[WEIGHT] = ((weight / weight.max()).astype(np.float32)
                     if normalize else weight)
    return batch

  @_locked
  def peek(self, batch_size, length, rng):
    """Uniform sequences for reports, drawn with the caller's `rng`.

    Unlike `sample`, this leaves the online queue, the replay's own RNG,
    the counters and the selectors untouched, so reporting cannot change
    the training run. Returns a batch {key: [B, length, ...]} with
    `stepid` [B, length, 2] as `sample` does.
    """
    if not 1 <= length <= self.length:
      raise ValueError(f'Cannot sample length {length} > {self.length}.')
    if not len(self._items):
      raise RuntimeError('The replay holds no complete sequence yet.')
    items = [self._items.first + selectors.uniform(rng, len(self._items))
             for _ in range(batch_size)]
    return self._assemble(items, length)

  def _assemble(self, items, length):
    batch = {k: np.empty((len(items), length, *shape), dtype)
             for k, (dtype, shape) in self._spec.items()}
    stepid = np.empty((len(items), length, 2), np.int64)  # [B, T, 2]
    for row, item in enumerate(items):
      chunk_id, index = self._items.get(item)
      pieces = self._pieces(self._chunks[chunk_id], index, 0, length)
      for chunk, lo, hi, dst in pieces:
        for key, value in batch.items():
          value[row, dst: dst + hi - lo] = chunk.data[key][lo: hi]
        stepid[row, dst: dst + hi - lo, 0] = chunk.id
        stepid[row, dst: dst + hi - lo, 1] = np.arange(lo, hi)
    if 'is_first' in batch:
      batch['is_first'][:, 0] = True
      if 'is_last' in batch:
        batch['is_last'][:, :-1] = np.logical_or(
            batch['is_last'][:, :-1], batch['is_first'][:, 1:])
    batch[STEPID] = stepid
    return batch

  # --- Write-back ----------------------------------------------------------

  @_locked
  def update(self, values):
    """Writes per-step values to the steps named by `values['stepid']`.

    values: `stepid` [B, T, 2] integers (chunk id, index), e.g. the batch's
    stepid[:, C:] for the T trained steps, and any of
      <stored key> [B, T, ...]  new step values; for latent replay (§4.3)
                                the recomputed posteriors `deter`
                                [B, T, D] and `stoch` [B, T, S, K];
      priority [B, T]           new step priorities (finite, >= 0); every
                                live item whose sequence holds one of these
                                steps gets its priority recomputed (§1.7).
    A step named twice takes its last value (row-major order). Steps whose
    chunk was freed are skipped (`stats()['update_skipped']`); `updates`
    counts the rows with a written step. Keys written here are saved apart
    from the observations from now on (`disk` latents files), so a save
    after write-back does not rewrite the observations.
    """
    values = {k: np.asarray(v) for k, v in values.items()}
    if STEPID not in values:
      raise KeyError(
          f'Replay.update needs {STEPID!r} [B, T, 2] naming the step of '
          f'every value (the stepid of the batch `sample` returned); got '
          f'keys {sorted(values)}.')
    stepid, chunks = self._check_stepid(values.pop(STEPID))  # [B, T, 2]
    rows_steps = stepid.shape[:2]
    prios = values.pop(PRIORITY, None)
    if prios is not None:
      prios = self._check_priorities(prios, rows_steps).reshape(-1)
    for key, value in values.items():
      self._check_update(key, value, rows_steps)
    if not values and prios is None:
      return
    if not set(values) <= set(self._latent_keys):  # Saved apart from now on.
      self._latent_keys = tuple(
          k for k in self._spec if k in values or k in self._latent_keys)
    flat = stepid.reshape(-1, 2)  # [B*T, 2]
    live = np.array([c is not None for c in chunks], bool)  # [B*T]
    self._counts['updates'] += int(live.reshape(rows_steps).any(1).sum())
    self._counts['update_skipped'] += int((~live).sum())
    # The last occurrence of every live step, in row-major order.
    code = flat[:, 0] * self.chunk_size + flat[:, 1]
    _, last = np.unique(code[::-1], return_index=True)
    keep = np.sort(len(code) - 1 - last)
    keep = keep[live[keep]]
    values = {k: v.reshape(-1, *v.shape[2:]) for k, v in values.items()}
    written = []
    for chunk_id in np.unique(flat[keep, 0]).tolist():
      chunk = self._chunks[chunk_id]
      at = keep[flat[keep, 0] == chunk_id]  # Positions in [B*T].
      index = flat[at, 1]
      for key, value in values.items():
        chunk.data[key][index] = value[at]
      if prios is not None:
        chunk.prio[index] = prios[at]
      chunk.dirty.add(_LATENTS)
      written.append((chunk, index))
    if prios is not None and self._mixture.prioritized:
      for chunk, index in written:  # After all steps have their priority.
        self._reprioritize(chunk, index)

  @_locked
  def restore_priorities(self, stepid):
    """Recomputes the items holding the steps `stepid` [B, T, 2] names
    from their stored step priorities; steps whose chunk was freed are
    ignored.

    What a skipped update calls with its batch's stepid: zero-on-sample
    zeroed the items it drew, and an update that writes nothing would
    leave them at 0 (never drawn by priority) until another batch trains
    their steps. Stored step priorities are unchanged, so the items get
    back the priority they had before the draw.
    """
    stepid, _ = self._check_stepid(np.asarray(stepid))
    if not self._mixture.prioritized:
      return
    flat = stepid.reshape(-1, 2)  # [B*T, 2]
    for chunk_id in np.unique(flat[:, 0]).tolist():
      chunk = self._chunks.get(chunk_id)
      if chunk is not None:
        self._reprioritize(
            chunk, np.unique(flat[flat[:, 0] == chunk_id, 1]))

  def _check_stepid(self, stepid):
    """stepid [B, T, 2] as int64 and its chunks [B*T] (None: freed)."""
    if (stepid.ndim != 3 or stepid.shape[-1] != 2
        or not np.issubdtype(stepid.dtype, np.integer)):
      raise ValueError(
          f'Replay update {STEPID!r} is {stepid.shape} {stepid.dtype}; '
          'expected [B, T, 2] integers (chunk id, index) from a batch.')
    stepid = stepid.astype(np.int64)
    flat = stepid.reshape(-1, 2)  # [B*T, 2]
    chunks = [self._chunks.get(c) for c in flat[:, 0].tolist()]
    steps = np.array([c.length if c else self.chunk_size for c in chunks],
                     np.int64).reshape(-1)  # Freed chunks were full.
    stored = ((0 <= flat[:, 0]) & (flat[:, 0] < self._next_chunk)
              & (0 <= flat[:, 1]) & (flat[:, 1] < steps))
    if not stored.all():
      raise ValueError(
          f'Replay update names steps {flat[~stored][:3].tolist()} '
          '(chunk id, index) that this replay never stored; pass the '
          f'{STEPID!r} of a batch this replay returned.')
    return stepid, chunks

  def _check_update(self, key, value, rows_steps):
    if self._spec is None or key not in self._spec:
      raise KeyError(
          f'Replay has no key {key!r} to update; it stores '
          f'{sorted(self._spec or {})} and takes {PRIORITY!r}.')
    dtype, shape = self._spec[key]
    if (value.shape != (*rows_steps, *shape)
        or not np.can_cast(value.dtype, dtype, 'same_kind')):
      raise ValueError(
          f'Replay update {key!r} has shape {value.shape} {value.dtype}; '
          f'expected {[*rows_steps, *shape]} ([B, T] of its {STEPID!r}, '
          f'then the stored shape) castable to {dtype}.')

  def _check_priorities(self, prios, rows_steps):
    """prios [B, T] as float32; finite and >= 0."""
    if prios.shape != rows_steps or not (
        np.issubdtype(prios.dtype, np.floating)
        or np.issubdtype(prios.dtype, np.integer)):
      raise ValueError(
          f'Replay update {PRIORITY!r} is {prios.shape} {prios.dtype}; '
          f'expected {list(rows_steps)} numbers like its {STEPID!r}.')
    with np.errstate(over='ignore'):  # Too large for float32: inf, below.
      prios = prios.astype(np.float32)
    bad = ~np.isfinite(prios) | (prios < 0)
    if bad.any():
      raise ValueError(
          f'Replay priorities must be finite and >= 0 (as float32); got '
          f'{prios[bad][:3].tolist()} at [row, step] '
          f'{np.argwhere(bad)[:3].tolist()}. Check the loss they come from.')
    return prios

  def _reprioritize(self, chunk, index):
    """Recomputes every live item whose sequence holds a step chunk[index].

    Item starts p (relative to the chunk) with p + context <= i <= p +
    length - 1 for a written step i (one of the item's trained steps);
    contiguous runs of them are refreshed together.
    """
    reach = self.length - 1
    marks = np.zeros(chunk.length + reach + 1, np.int64)  # [p + reach]
    np.add.at(marks, index, 1)
    np.add.at(marks, index + reach - self.context + 1, -1)
    covered = np.cumsum(marks)[:-1] > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], covered, [0]])))
    for lo, hi in zip(edges[::2].tolist(), edges[1::2].tolist()):
      self._refresh(chunk, 0, lo - reach, hi - lo)

  def _refresh(self, chunk, index, first, count):
    """Re-prioritizes the items starting at [first, +count).

    Positions are relative to (chunk, index); missing or dead ones are
    skipped.
    """
    length = self.length
    prios = self._read(chunk, index, first, count + length - 1,
                       lambda c: c.prio, np.nan)
    items = self._read(chunk, index, first, count, lambda c: c.items, -1)
    live = items >= self._items.first
    if not live.any():
      return
    windows = np.lib.stride_tricks.sliding_window_view(prios, length)[live]
    self._mixture.prioritize(items[live], np.ascontiguousarray(windows))

  # --- Persistence (format: disk) -----------------------------------------

  @_locked
  def save(self, keep=()):
    """Writes the changed chunk files, the item table and the index.

    Returns the save's generation (None without a directory: a no-op).
    keep: earlier generations that stay loadable (`disk.Directory.save`).
    Atomic: readers see the previous or the new save, never a mix.
    """
    if not self._disk:
      return None
    self._generation += 1  # Also after a failed save: names are never reused.
    state = dict(
        length=self.length, chunk_size=self.chunk_size, spec=self._spec,
        streams={str(w): s for w, s in self._streams.items()},
        next_chunk=self._next_chunk, items=dict(
            first=self._items.first, next=self._items.next,
            slots=len(self._items.chunk)),
        rng=self._rng.bit_generator.state, counts=self._counts,
        selectors=self._mixture.get_state())
    files = self._disk.save(
        self._generation, self._chunks.values(), self._latent_keys,
        self._items.table(), self._queue, state, keep)
    for chunk in self._chunks.values():
      chunk.files, chunk.dirty = files[chunk.id], set()
    return self._generation

  @_locked
  def load(self, generation=None):
    """Restores save `generation` (None: the last save) from `directory`,
    replacing the current state.

    On an error the current state is kept. Raises ReplayMissingError when
    there is no such save, ReplayCorruptError when it is damaged.
    """
    if not self._disk:
      raise ValueError('This replay has no directory to load from.')
    saved = self._disk.load(self.length, self.chunk_size, self.prio_initial,
                            generation)
    state = dict(self.__dict__)
    try:
      self._reset(0)
      self._restore(*saved)
      # Saves after this one (abandoned by the caller) keep their names.
      self._generation = max(self._generation, self._disk.last_generation())
    except BaseException:
      self.__dict__.update(state)
      raise

  def _restore(self, index, chunks, items, selector_state):
    self._spec, self._latent_keys = index['spec'], tuple(index['latent_keys'])
    for saved in chunks:
      chunk = _Chunk(saved.id, saved.worker, self.chunk_size, {}, 0)
      for field, value in saved._asdict().items():  # Arrays padded to size.
        setattr(chunk, field, value)
      chunk.dirty = set()
      self._chunks[chunk.id] = chunk
    table, meta = self._items, index['items']
    table.first = table.next = meta['first']
    table.resize(meta['slots'])
    for chunk_id, i in zip(items[0].tolist(), items[1].tolist()):
      self._chunks[chunk_id].items[i] = table.append(chunk_id, i)
    self._queue.extend(items[2].tolist())
    try:
      missing = self._mixture.set_state(selector_state, table.first,
                                        table.next)
    except (KeyError, TypeError, ValueError) as e:
      raise ReplayCorruptError(
          f'Replay selector state in {self._disk.path(meta["file"])} and '
          f'{self._disk.path(disk.INDEX)} does not fit the item table: '
          f'{e!r}. Delete the replay directory or restore it from a '
          'backup.') from e
    if 'priority' in missing:  # Rebuilt from the stored step priorities.
      if 'priority' in selector_state:
        warnings.warn(
            f'Replay {self.directory}: its item priorities were saved with '
            f'other settings ({selector_state["priority"].get("aggregation")}'
            f'; now {self._mixture.prioritized.aggregation}); recomputed '
            'from the stored step priorities.', stacklevel=3)
      for chunk in self._chunks.values():
        self._refresh(chunk, 0, 0, chunk.length)
    self._streams = {int(w): list(s) for w, s in index['streams'].items()}
    self._next_chunk, self._generation = index['next_chunk'], index[
        'generation']
    self._rng.bit_generator.state = index['rng']
    self._counts.update(index['counts'])
    while len(self._items) > self.capacity:
      self._evict()
