"""On-disk format of the chunked replay (spec §1.7; latent replay, §4.3).

`Replay.save` and `Replay.load` (dreamer_tf/replay.py) use this module; it
knows the files, the replay knows what they mean.

Layout of a replay directory (format 2):

  index.json                     The commit point of a save (see below).
  items-<gen>.npz                The item table: `chunk` [N] and `index`
                                 [N] int64, the first step of every live
                                 item, oldest first; `queue` [Q] int64, the
                                 online queue (item ids, oldest first).
  chunk-<id>-steps-<gen>.npz     The appended steps of a chunk: every step
                                 key except the written-back ones, each
                                 [length, ...] in the step's dtype.
  chunk-<id>-latents-<gen>.npz   The mutable part of the chunk: the keys
                                 written back by `Replay.update` (the
                                 latents `deter`, `stoch` of §4.3), each
                                 [length, ...], and `__priority__` [length]
                                 float32, the step priorities.
  .tmp-<name>                    A write in progress or left by a crash;
                                 deleted by the next save.

<id> is the chunk id (10 digits) and <gen> the generation (6 digits) of the
save that wrote the file. Files are never modified in place: a save writes a
changed part of a chunk under a new name and keeps the names of the
unchanged ones. Appending to a chunk changes both of its files (only until
the chunk is full); latent write-back (`update`) and priority changes
(`update_priorities`, prioritized sampling) change only the latents file.
A save after training thus rewrites the latents files of the chunks trained
on and leaves the observations alone. Uncompressed sizes per step: the
steps file holds the observations (12,288 bytes for a 64x64x3 image plus a
few scalars), the latents file 4 + 4 * (deter + stoch * classes) bytes for
float32 latents (10,244 for size12m).

A key becomes a written-back key the first time `update` writes it; the
index lists these keys. Steps files written before that still hold a copy of
the key; the latents file holds the current value (once rewritten) and wins
on loading. Every key of the step spec must be in one of the two files.

index.json (JSON): format, generation, length, chunk_size, spec ({key:
[numpy dtype string, shape]} or null before the first step), latent_keys,
chunks ([id, worker, length, pred, succ, refs, steps file, latents file]
per live chunk), streams ({worker: [open chunk id, steps added]}),
next_chunk, items ({file, first, next, slots}), rng (numpy bit generator
state), counts.

Atomicity: every file is written to `.tmp-<name>`, fsynced and renamed with
`os.replace`; after the chunk and item files the directory is fsynced, then
the index is written the same way (the commit point) and the directory
fsynced again. Only then are files the new index does not reference deleted.
A crash at any point leaves the previous index and every file it references
in place, so the previous save stays loadable.

Loading validates what it reads: an unreadable index, a missing, truncated
or corrupt (zip CRC) npz file, or one whose keys, lengths, dtypes or shapes
differ from what the index expects raises `ReplayCorruptError` naming the
file.
"""
import json
import os

import numpy as np

FORMAT = 2
INDEX = 'index.json'
PRIORITY = '__priority__'  # Step priorities inside latents files.
STEPS, LATENTS = 'steps', 'latents'  # The two files of a chunk.
PARTS = (STEPS, LATENTS)
_TEMP = '.tmp-'
_INDEX_FIELDS = ('generation', 'spec', 'latent_keys', 'chunks', 'streams',
                 'next_chunk', 'items', 'rng', 'counts')


class ReplayCorruptError(IOError):
  """A file of a saved replay is missing, truncated or inconsistent."""


def chunk_file(chunk_id, part, generation):
  """Name of the `part` (STEPS or LATENTS) file of a chunk."""
  return f'chunk-{chunk_id:010d}-{part}-{generation:06d}.npz'


def items_file(generation):
  return f'items-{generation:06d}.npz'


def split_chunk(data, prio, length, latent_keys):
  """{part: {name: [length, ...]}}: the contents of the two chunk files."""
  latent_keys = set(latent_keys)
  steps = {k: v[:length] for k, v in data.items() if k not in latent_keys}
  latents = {k: v[:length] for k, v in data.items() if k in latent_keys}
  latents[PRIORITY] = prio[:length]
  return {STEPS: steps, LATENTS: latents}


def encode_spec(spec):
  if spec is None:
    return None
  return {k: [np.dtype(d).str, list(s)] for k, (d, s) in spec.items()}


def decode_spec(spec):
  if spec is None:
    return None
  return {k: (np.dtype(d), tuple(s)) for k, (d, s) in spec.items()}


class Directory:
  """Reads and writes the files of one replay directory (see above).

  compress: zlib-compress chunk files (smaller, slower saves).
  """

  def __init__(self, path, compress=False):
    self.root, self.compress = path, compress

  def path(self, name):
    return os.path.join(self.root, name)

  def exists(self):
    return os.path.exists(self.path(INDEX))

  # --- Writing -------------------------------------------------------------

  def begin(self):
    """Creates the directory; returns the set of file names in it."""
    os.makedirs(self.root, exist_ok=True)
    return set(os.listdir(self.root))

  def save_chunk(self, chunk_id, generation, files, parts, contents):
    """Writes `parts` of a chunk under generation names.

    files: {part: name} of the last save. contents: `split_chunk` output.
    Returns the new {part: name}.
    """
    files = dict(files)
    for part in parts:
      files[part] = chunk_file(chunk_id, part, generation)
      self.write(files[part], contents[part], self.compress)
    return files

  def save_items(self, generation, chunk_ids, indices, queue):
    name = items_file(generation)
    self.write(name, dict(
        chunk=np.asarray(chunk_ids, np.int64),
        index=np.asarray(indices, np.int64),
        queue=np.asarray(queue, np.int64).reshape(-1)), True)
    return name

  def commit(self, index):
    """Writes the index (the commit point) after syncing every other file.

    index: the fields listed above except `format`; `spec` as {key: (dtype,
    shape)} or None.
    """
    self.sync()
    index = dict(index, format=FORMAT, spec=encode_spec(index['spec']))
    self.write(INDEX, json.dumps(index).encode(), False)
    self.sync()

  def collect_garbage(self, keep):
    """Deletes replay files (and temp files) not in `keep`."""
    for name in os.listdir(self.root):
      ours = name.startswith(('chunk-', 'items-', _TEMP))
      if ours and name not in keep:
        os.remove(self.path(name))

  def write(self, name, content, compress):
    """Atomically writes bytes or {name: array} (npz) to root/name."""
    path, temp = self.path(name), self.path(_TEMP + name)
    try:
      with open(temp, 'wb') as f:
        if isinstance(content, bytes):
          f.write(content)
        else:
          (np.savez_compressed if compress else np.savez)(f, **content)
        f.flush()
        os.fsync(f.fileno())
      os.replace(temp, path)
    except BaseException:
      if os.path.exists(temp):
        os.remove(temp)
      raise

  def sync(self):
    """fsyncs the directory, making renames and creations durable."""
    fd = os.open(self.root, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)

  # --- Reading -------------------------------------------------------------

  def load_index(self, length, chunk_size):
    """The index with its spec decoded; checks it fits the replay.

    Raises ReplayCorruptError if it is unreadable or incomplete and
    ValueError if it was written with another format, length or chunk_size.
    """
    path = self.path(INDEX)
    try:
      with open(path, 'rb') as f:
        index = json.loads(f.read())
      if not isinstance(index, dict):
        raise ValueError(f'not a JSON object but {type(index).__name__}')
    except (OSError, ValueError) as e:
      raise ReplayCorruptError(f'Cannot read replay index {path}: {e}') from e
    if (index.get('format') != FORMAT or index.get('length') != length
        or index.get('chunk_size') != chunk_size):
      raise ValueError(
          f'Replay in {self.root} has length {index.get("length")} and '
          f'chunk_size {index.get("chunk_size")} (format '
          f'{index.get("format")}); this replay uses {length}, '
          f'{chunk_size} (format {FORMAT}).')
    missing = [k for k in _INDEX_FIELDS if k not in index]
    if missing:
      raise ReplayCorruptError(f'Replay index {path} lacks {missing}.')
    index['spec'] = decode_spec(index['spec'])
    return index

  def load_chunk(self, files, spec, length):
    """(data {key: [length, ...]}, prio [length] float32) of one chunk.

    files: {part: name}. Keys in both files come from the latents file.
    """
    latents = self.load_npz(files[LATENTS])
    steps = self.load_npz(files[STEPS], skip=latents)
    origin = {**{k: files[STEPS] for k in steps},
              **{k: files[LATENTS] for k in latents}}
    prio = latents.pop(PRIORITY, None)
    if prio is None or prio.shape != (length,) or prio.dtype != np.float32:
      raise ReplayCorruptError(
          f'Replay latents file {self.path(files[LATENTS])} holds '
          f'{PRIORITY} {getattr(prio, "shape", None)} '
          f'{getattr(prio, "dtype", None)}; expected ({length},) float32.')
    data = {**steps, **latents}
    if set(data) != set(spec):
      raise ReplayCorruptError(
          f'Replay chunk files {self.path(files[STEPS])} and '
          f'{self.path(files[LATENTS])} hold keys {sorted(data)}; the index '
          f'expects {sorted(spec)}.')
    for key, (dtype, shape) in spec.items():
      value = data[key]
      if value.dtype != dtype or value.shape != (length, *shape):
        raise ReplayCorruptError(
            f'Replay chunk file {self.path(origin[key])}: {key!r} is '
            f'{value.shape} {value.dtype}, expected ({length}, *{shape}) '
            f'{dtype}.')
    return data, prio

  def load_items(self, name):
    """(chunk ids [N], indices [N], queue [Q]) int64 of an item table."""
    table = self.load_npz(name)
    chunk, index = table.get('chunk'), table.get('index')
    queue = table.get('queue')
    if (chunk is None or index is None or queue is None
        or chunk.shape != index.shape or chunk.ndim != 1
        or any(x.dtype != np.int64 for x in (chunk, index, queue))):
      raise ReplayCorruptError(
          f'Replay item table {self.path(name)} holds '
          f'{ {k: (v.shape, str(v.dtype)) for k, v in table.items()} }; '
          'expected chunk [N], index [N] and queue [Q] int64.')
    return chunk, index, queue

  def load_npz(self, name, skip=()):
    """{key: array} of an npz file, without the keys in `skip`."""
    path = self.path(name)
    try:
      with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files if k not in skip}
    except Exception as e:  # zipfile, OSError, ValueError, EOFError, ...
      raise ReplayCorruptError(
          f'Replay file {path} is missing, truncated or corrupt '
          f'({type(e).__name__}: {e}). Delete the replay directory or restore '
          'it from a backup.') from e
