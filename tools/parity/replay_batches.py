"""Frozen replay batches from the official replay's chunk files (numpy only).

Shared by tools/parity/official_train.py (official venv, JAX) and
tools/parity/ours_train.py (our env, TensorFlow), so that both learners train
on byte-identical batches: the official side samples an *index* (which
chunk and start step each row begins at) and saves it with a SHA-1 per
batch; both sides rebuild every batch from the chunk files with `Reader`
and check the hash.

The official replay (embodied/core/replay.py, chunk.py) stores a worker's
steps in chunks saved as `<time>-<uuid>-<succ>-<length>.npz`, where `succ`
is the uuid of the chunk that *continues* the stream (Chunk.filename; a
successor that was never saved, e.g. after a restart, ends the stream).
A replay item is a start step from which `length` = replay_context +
batch_length consecutive steps exist within the stream; a sequence may
cross chunk boundaries (Replay._getseq) but not run past the stream's end
(Replay._numitems). The uniform selector draws items uniformly with
replacement. `annotate` then does what Replay._annotate_batch does:
is_first[:, 0] = True and is_last |= next step's is_first; the Consec
stream adds `consec` = 0 (consec_train 1).

  Batch keys: reward, is_first, is_last, is_terminal, position, to_target,
  velocity, action, dyn/deter [B, L, D], dyn/stoch [B, L, S, K],
  stepid [B, L, 20] uint8, consec [B, L] int32.
"""
import hashlib
import os

import numpy as np


def parse_name(name):
  """'<time>-<uuid>-<succ>-<length>.npz' -> (time, uuid, succ, length)."""
  time, uuid, succ, length = name[:-len('.npz')].split('-')
  return time, uuid, succ, int(length)


def list_chunks(directory, before=None):
  """Chunk file names in `directory`, sorted by time; with `before` (a POSIX
  time) only files last written at or before it (the replay as it was on
  disk when a checkpoint was taken)."""
  names = sorted(n for n in os.listdir(directory) if n.endswith('.npz'))
  if before is not None:
    names = [n for n in names
             if os.path.getmtime(os.path.join(directory, n)) <= before]
  if not names:
    raise FileNotFoundError(f'No replay chunks in {directory}'
                            + (f' written before {before}' if before else ''))
  return names


def item_table(names, length):
  """All replay items as (chunk index [I], start step [I]).

  The number of items of a chunk is Replay._numitems: its length + 1 -
  `length` + the steps of its saved successors, clipped to [0, length].
  """
  parsed = [parse_name(n) for n in names]
  by_uuid = {p[1]: i for i, p in enumerate(parsed)}
  if len(by_uuid) != len(parsed):
    raise ValueError('Duplicate chunk uuids.')
  future = {}

  def steps_after(i):  # Steps of chunk i and all its saved successors.
    if i not in future:
      total, j, seen = 0, i, set()
      while j is not None and j not in seen:
        seen.add(j)
        total += parsed[j][3]
        j = by_uuid.get(parsed[j][2])
      future[i] = total
    return future[i]
  chunk, start = [], []
  for i, (_, _, succ, size) in enumerate(parsed):
    succ_steps = steps_after(by_uuid[succ]) if succ in by_uuid else 0
    count = int(np.clip(size + 1 - length + succ_steps, 0, size))
    chunk += [i] * count
    start += list(range(count))
  return np.asarray(chunk, np.int32), np.asarray(start, np.int32)


def sample_index(names, length, num_batches, batch_size, seed):
  """Uniform items with replacement: (chunk [N, B], start [N, B])."""
  chunk, start = item_table(names, length)
  if not len(chunk):
    raise ValueError(f'No replay item of length {length}.')
  rng = np.random.default_rng(seed)
  pick = rng.integers(0, len(chunk), (num_batches, batch_size))
  return chunk[pick], start[pick], len(chunk)


def annotate(data):
  """Replay._annotate_batch (is_first at the start, is_last before every
  is_first) and Consec's `consec` = 0."""
  data = dict(data)
  data['is_first'] = data['is_first'].copy()
  data['is_first'][:, 0] = True
  following = np.roll(data['is_first'], -1, axis=1)
  following[:, -1] = False
  data['is_last'] = data['is_last'] | following
  data['consec'] = np.zeros(data['is_first'].shape, np.int32)
  return data


def batch_hash(data):
  """SHA-1 over the sorted keys' bytes: proves both sides' data identical."""
  h = hashlib.sha1()
  for key in sorted(data):
    h.update(key.encode())
    h.update(np.ascontiguousarray(data[key]).tobytes())
  return h.hexdigest()


class Reader:
  """Rebuilds the batches of an index file (see `save_index`)."""

  def __init__(self, index_path, directory=None):
    index = np.load(index_path, allow_pickle=False)
    self.directory = directory or str(index['directory'])
    self.names = [str(n) for n in index['names']]
    self.chunk, self.start = index['chunk'], index['start']  # [N, B]
    self.length = int(index['length'])
    self.hashes = [str(h) for h in index['hashes']]
    self._chunks = {}
    parsed = [parse_name(n) for n in self.names]
    self._succ = {i: {p[1]: j for j, p in enumerate(parsed)}.get(p[2])
                  for i, p in enumerate(parsed)}

  def __len__(self):
    return len(self.chunk)

  def _load(self, i):
    if i not in self._chunks:
      with np.load(os.path.join(self.directory, self.names[i])) as f:
        self._chunks[i] = {k: f[k] for k in f.files}
    return self._chunks[i]

  def sequence(self, chunk, start):
    """`length` steps from `start` of `chunk`, across its successors."""
    parts, need, i, offset = [], self.length, chunk, start
    while need > 0:
      if i is None:
        raise ValueError(f'Sequence from {self.names[chunk]}:{start} runs '
                         'past the end of its stream.')
      data = self._load(i)
      size = len(data['is_first'])
      take = min(need, size - offset)
      parts.append({k: v[offset:offset + take] for k, v in data.items()})
      need -= take
      i, offset = self._succ[i], 0
    return {k: np.concatenate([p[k] for p in parts], 0) for k in parts[0]}

  def batch(self, n, check=True):
    """Batch n: {key: [B, length, ...]}, annotated; checks its hash."""
    rows = [self.sequence(int(c), int(s))
            for c, s in zip(self.chunk[n], self.start[n])]
    data = annotate({k: np.stack([r[k] for r in rows], 0) for k in rows[0]})
    if check and self.hashes and self.hashes[n]:
      digest = batch_hash(data)
      if digest != self.hashes[n]:
        raise RuntimeError(f'Batch {n} differs from the one the index was '
                           f'made with ({digest} != {self.hashes[n]}).')
    return data


def save_index(path, directory, names, chunk, start, length, seed, items,
               before=None):
  """Writes the index and the hash of every batch it names."""
  out = dict(directory=np.asarray(os.path.abspath(directory)),
             names=np.asarray(names), chunk=chunk, start=start,
             length=np.asarray(length), seed=np.asarray(seed),
             items=np.asarray(items),
             before=np.asarray(-1.0 if before is None else before),
             hashes=np.asarray([''] * len(chunk)))
  tmp = path + '.tmp.npz'
  np.savez(tmp, **out)
  reader = Reader(tmp)
  out['hashes'] = np.asarray(
      [batch_hash(reader.batch(n, check=False)) for n in range(len(chunk))])
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez(path, **out)
  os.remove(tmp)
  return Reader(path)
