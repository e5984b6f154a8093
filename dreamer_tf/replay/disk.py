"""On-disk format of the chunked replay (spec §1.7; latent replay, §4.3).

`Replay.save` and `Replay.load` (`buffer.py`) use this module; it knows
the files, the replay knows what they mean.

Layout of a replay directory (format 3):

  index-<gen>.json               The commit point of save <gen> (see below).
  index.json                     A copy of the newest committed index: what
                                 `load()` without a generation reads.
  items-<gen>.npz                The item table: `chunk` [N] and `index`
                                 [N] int64, the first step of every live
                                 item, oldest first; `queue` [Q] int64, the
                                 online queue (item ids, oldest first); the
                                 selectors' arrays, `selectors.<name>.<key>`
                                 (the prioritized selector's item
                                 priorities `selectors.priority.leaves` [N]
                                 float64, oldest first).
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
the chunk is full); `Replay.update` (latent write-back, step priorities)
changes only the latents file, and sampling changes no chunk file.
A save after training thus rewrites the latents files of the chunks trained
on and leaves the observations alone. Uncompressed sizes per step: the
steps file holds the observations (~12.3 kB for a 64x64x3 image plus a few
scalars), the latents file 4 + 4 * (deter + stoch * classes) bytes for
float32 latents (10,244 for size12m). Uniform sampling touches most chunks
between saves, so at 5M steps a save writes ~51 GB of size12m latents
instead of ~112 GB (float16 latents would halve that).

A key becomes a written-back key the first time `update` writes it (the
index lists them); the set only grows. Steps files written before that
still hold the key: until the chunk's latents file is rewritten with it, the
value there is current; afterwards the latents file has it and wins, and the
stale copy is skipped unread. Every spec key must be in one of the files.

index.json (JSON): format, generation, length, chunk_size, spec ({key:
[numpy dtype string, shape]} or null before the first step), latent_keys,
chunks ([id, worker, length, pred, succ, refs, steps file, latents file]
per live chunk), streams ({worker: [open chunk id, steps added]}),
next_chunk, items ({file, first, next, slots}), rng (numpy bit generator
state), counts, selectors (each selector's `get_state()`: {name: {key:
value}}, numpy arrays replaced by {"npz": <key in the items file>}).

Versions. Format 3 added the selector states (zero-on-sample became
selector state instead of zeros written into the step priorities). A
format 2 save is migrated on load: its files are read as they are, the
selectors start from the live items and the prioritized one recomputes the
item priorities from the stored step priorities (which hold the zeros the
format 2 code wrote when sampling); the next save writes format 3. Other
formats are refused with a ValueError naming both versions.

Atomicity: every file is written to `.tmp-<name>`, fsynced and renamed with
`os.replace`; after the chunk and item files the directory is fsynced, then
`index-<gen>.json` is written the same way (the commit point), then
`index.json`, and the directory is fsynced again. Only then are files deleted
that neither the new index nor a kept one references.

Kept generations. A save is told which earlier generations to keep
(`keep`): their index files and every file they reference survive it, so
each of them stays loadable (`load(generation=...)`). The training loop keeps
the generations its checkpoints name, so a checkpoint and the replay save it
was written with are one commit: when the newest checkpoint is unusable, the
previous one resumes with *its* replay, never a newer one. The cost is disk:
chunk files rewritten between the kept saves (the latents files of trained
chunks, the open chunks' steps files) exist once per kept generation.
Every save attempt takes a new generation, also after a failed one, so no
save overwrites a file a committed index references. A crash at any point
leaves the previous index and every file it references in place, so the
previous save stays loadable.

Loading validates what it reads: an unreadable index, a missing, truncated
or corrupt (zip CRC) npz file, or one whose keys, lengths, dtypes or shapes
differ from what the index expects raises `ReplayCorruptError` naming the
file.
"""
import collections
import json
import os
import re

import numpy as np

from dreamer_tf import files

FORMAT = 3
MIGRATED = (2,)  # Older formats `load` reads (see the module docstring).
INDEX = 'index.json'
_INDEX_PATTERN = re.compile(r'^index-(\d{6,})\.json$')
_GENERATION_PATTERN = re.compile(r'-(\d{6,})\.(?:npz|json)$')
PRIORITY = '__priority__'  # Step priorities inside latents files.
STEPS, LATENTS = 'steps', 'latents'  # The two files of a chunk.
PARTS = (STEPS, LATENTS)
_TEMP = '.tmp-'
_INDEX_FIELDS = ('generation', 'spec', 'latent_keys', 'chunks', 'streams',
                 'next_chunk', 'items', 'rng', 'counts', 'selectors')
_SELECTORS, _ARRAY = 'selectors', 'npz'  # Selector arrays in the items file.

# A loaded chunk: data {key: [chunk_size, ...]}, prio [chunk_size] float32
# (padded beyond `length`), files {part: name}.
SavedChunk = collections.namedtuple('SavedChunk', (
    'id', 'worker', 'length', 'pred', 'succ', 'refs', 'files', 'data',
    'prio'))


class ReplayCorruptError(IOError):
  """A file of a saved replay is missing, truncated or inconsistent."""


class ReplayMissingError(ReplayCorruptError):
  """The save asked for (a generation, or any save at all) is not there."""


def chunk_file(chunk_id, part, generation):
  """Name of the `part` (STEPS or LATENTS) file of a chunk."""
  return f'chunk-{chunk_id:010d}-{part}-{generation:06d}.npz'


def items_file(generation):
  return f'items-{generation:06d}.npz'


def index_file(generation):
  """Name of the commit point of save `generation`."""
  return f'index-{generation:06d}.json'


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


def pack_state(state, prefix=_SELECTORS):
  """(JSON-able copy of `state`, {npz key: array}) of a nested dict.

  Each numpy array becomes {"npz": key} with key = prefix.<dict keys>.
  """
  arrays = {}

  def pack(value, path):
    if isinstance(value, dict):
      return {k: pack(v, f'{path}.{k}') for k, v in value.items()}
    if isinstance(value, np.ndarray):
      arrays[path] = value
      return {_ARRAY: path}
    return value

  return pack(state, prefix), arrays


def unpack_state(state, arrays):
  """Inverse of `pack_state`; KeyError names a missing array."""
  if isinstance(state, dict):
    if set(state) == {_ARRAY}:
      return arrays[state[_ARRAY]]
    return {k: unpack_state(v, arrays) for k, v in state.items()}
  return state


def _padded(value, size, fill):
  """value [n, ...] extended to [size, ...] with `fill`."""
  if len(value) == size:
    return value
  out = np.full((size, *value.shape[1:]), fill, value.dtype)
  out[:len(value)] = value
  return out


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

  def last_generation(self):
    """The highest generation any replay file in the directory names (0
    if none): a replay that starts fresh over old files numbers its saves
    after it, so it never overwrites a file an old index references."""
    if not os.path.isdir(self.root):
      return 0
    found = [int(m.group(1)) for m in map(_GENERATION_PATTERN.search,
                                          os.listdir(self.root)) if m]
    return max(found, default=0)

  # --- Saving --------------------------------------------------------------

  def save(self, generation, chunks, latent_keys, items, queue, state,
           keep=()):
    """Writes and commits a save named `generation` (unused by earlier ones).

    chunks: chunk records (id, worker, length, pred, succ, refs, data {key:
    [size, ...]}, prio [size], files {part: name} in the last save, dirty
    {part}); only their dirty or missing files are written. items: (chunk
    ids [N], indices [N]) of the live items, oldest first; queue: item ids;
    state: the other index fields (spec as {key: (dtype, shape)};
    selectors with numpy arrays, stored in the items file). keep: earlier
    generations to keep loadable. Deletes the files that neither the new
    index nor a kept one references. Returns {chunk id: {part: name}}, the
    chunk files of the new save.
    """
    os.makedirs(self.root, exist_ok=True)
    present = set(os.listdir(self.root))
    files, entries = {}, []
    for c in chunks:
      files[c.id] = dict(c.files)
      parts = [p for p in PARTS if p in c.dirty
               or c.files.get(p) not in present]  # Or deleted by hand.
      contents = split_chunk(c.data, c.prio, c.length, latent_keys)
      for part in parts:
        files[c.id][part] = chunk_file(c.id, part, generation)
        self.write(files[c.id][part], contents[part], self.compress)
      entries.append([c.id, c.worker, c.length, c.pred, c.succ, c.refs,
                      *(files[c.id][p] for p in PARTS)])
    items_name = items_file(generation)
    chunk_ids, indices = items
    selectors, arrays = pack_state(state[_SELECTORS])
    self.write(items_name, dict(
        arrays, chunk=np.asarray(chunk_ids, np.int64),
        index=np.asarray(indices, np.int64),
        queue=np.asarray(queue, np.int64).reshape(-1)), True)
    self.sync()
    index = dict(
        state, format=FORMAT, generation=generation,
        spec=encode_spec(state['spec']), latent_keys=list(latent_keys),
        chunks=entries, items=dict(state['items'], file=items_name),
        selectors=selectors)
    content = json.dumps(index).encode()
    self.write(index_file(generation), content, False)  # Commit point.
    self.write(INDEX, content, False)
    self.sync()
    names = {n for f in files.values() for n in f.values()}
    names |= {items_name, INDEX, index_file(generation)}
    for kept in set(keep) - {generation}:
      names |= self._referenced(kept)
    self.collect_garbage(names)
    return files

  def _referenced(self, generation):
    """The files save `generation` consists of (its index and every file
    the index names); none if its index is gone or unreadable."""
    try:
      with open(self.path(index_file(generation)), 'rb') as f:
        index = json.loads(f.read())
      names = {n for c in index['chunks'] for n in c[6:]}
      return names | {index['items']['file'], index_file(generation)}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
      return set()

  def collect_garbage(self, keep):
    """Deletes replay files (and temp files) not in `keep`."""
    for name in os.listdir(self.root):
      ours = name.startswith(('chunk-', 'items-', 'index-', _TEMP))
      if ours and name not in keep:
        os.remove(self.path(name))

  def write(self, name, content, compress):
    """Atomically writes bytes or {name: array} (npz) to root/name."""
    if not isinstance(content, bytes):
      save = np.savez_compressed if compress else np.savez
      arrays, content = content, lambda f: save(f, **arrays)
    files.write_atomic(self.path(name), content, fsync=True,
                       temp=self.path(_TEMP + name))

  def sync(self):
    """fsyncs the directory, making renames and creations durable."""
    fd = os.open(self.root, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)

  # --- Loading -------------------------------------------------------------

  def load(self, length, chunk_size, prio_initial, generation=None):
    """(index, [SavedChunk], (chunk ids, indices, queue), selectors).

    The save `generation` (None: the last one). Chunk arrays are padded
    to chunk_size: steps with zeros, priorities with prio_initial.
    selectors: the selector states ({} from a format 2 save). Raises
    ReplayMissingError when that save is not in the directory,
    ReplayCorruptError (naming the file) when it is damaged, ValueError
    for another format, length or chunk_size.
    """
    index = self.load_index(length, chunk_size, generation)
    chunks = []
    for id_, worker, steps, pred, succ, refs, *names in index['chunks']:
      files = dict(zip(PARTS, names))
      data, prio = self.load_chunk(files, index['spec'], steps)
      data = {k: _padded(v, chunk_size, 0) for k, v in data.items()}
      prio = _padded(prio, chunk_size, prio_initial)
      chunks.append(SavedChunk(id_, worker, steps, pred, succ, refs, files,
                               data, prio))
    items = self.load_items(index['items'], {c.id: c.length for c in chunks})
    return index, chunks, items, self.load_selectors(index)

  def load_index(self, length, chunk_size, generation=None):
    """The index of save `generation` (None: the last) with its spec
    decoded; checks it fits the replay (length and chunk_size None: a
    reader that takes the saved ones, e.g. analysis/replay_moves.py).

    Raises ReplayMissingError if there is no such save, ReplayCorruptError
    if its index is unreadable or incomplete and ValueError if it was
    written with another format, length or chunk_size.
    """
    path = self._index_path(generation)
    try:
      with open(path, 'rb') as f:
        index = json.loads(f.read())
      if not isinstance(index, dict):
        raise ValueError(f'not a JSON object but {type(index).__name__}')
    except (OSError, ValueError) as e:
      raise ReplayCorruptError(f'Cannot read replay index {path}: {e}') from e
    if (index.get('format') not in (FORMAT, *MIGRATED)
        or index.get('length') != (length or index.get('length'))
        or index.get('chunk_size') != (chunk_size
                                       or index.get('chunk_size'))):
      raise ValueError(
          f'Replay in {self.root} has length {index.get("length")} and '
          f'chunk_size {index.get("chunk_size")} (format '
          f'{index.get("format")}); this replay uses {length}, '
          f'{chunk_size} (format {FORMAT}; it also reads format '
          f'{", ".join(map(str, MIGRATED))}).')
    if index['format'] in MIGRATED:  # Before selector states were saved.
      index.setdefault(_SELECTORS, {})
    missing = [k for k in _INDEX_FIELDS if k not in index]
    bad = [c for c in index.get('chunks', []) if len(c) != 6 + len(PARTS)]
    if missing or bad:
      raise ReplayCorruptError(
          f'Replay index {path} lacks {missing} or has malformed chunk '
          f'entries {bad[:3]}.')
    if generation is not None and index['generation'] != generation:
      raise ReplayCorruptError(
          f'Replay index {path} is of save {index["generation"]}, not '
          f'{generation}.')
    index['spec'] = decode_spec(index['spec'])
    return index

  def _index_path(self, generation):
    """Path of the index of save `generation` (None: the last save)."""
    if generation is None:
      if not self.exists():
        raise ReplayMissingError(f'There is no saved replay in {self.root}.')
      return self.path(INDEX)
    path = self.path(index_file(generation))
    if os.path.exists(path):
      return path
    try:  # A save by dreamer_tf before index-<gen>.json: only index.json.
      with open(self.path(INDEX), 'rb') as f:
        if json.loads(f.read()).get('generation') == generation:
          return self.path(INDEX)
    except (OSError, ValueError, AttributeError):
      pass
    what = (f'its index {index_file(generation)} is missing'
            if os.path.isdir(self.root) else 'the directory is missing')
    raise ReplayMissingError(
        f'Replay save {generation} is not in {self.root} ({what}).')

  def load_chunk(self, files, spec, length):
    """(data {key: [length, ...]}, prio [length] float32) of one chunk.

    files: {part: name}. Keys in both files come from the latents file.
    """
    latents = self.load_npz(files[LATENTS])
    steps = self.load_npz(files[STEPS], skip=latents)
    origin = {**{k: files[STEPS] for k in steps},
              **{k: files[LATENTS] for k in latents}}
    prio = self._checked_prio(latents.pop(PRIORITY, None), files, length)
    data = {**steps, **latents}
    if set(data) != set(spec or {}):
      raise ReplayCorruptError(
          f'Replay chunk files {self.path(files[STEPS])} and '
          f'{self.path(files[LATENTS])} hold keys {sorted(data)}; the index '
          f'expects {sorted(spec or {})}.')
    for key, (dtype, shape) in (spec or {}).items():
      value = data[key]
      if value.dtype != dtype or value.shape != (length, *shape):
        raise ReplayCorruptError(
            f'Replay chunk file {self.path(origin[key])}: {key!r} is '
            f'{value.shape} {value.dtype}, expected ({length}, *{shape}) '
            f'{dtype}.')
    return data, prio

  def load_priorities(self, generation=None):
    """(index, [prio [length] float32 per entry of index['chunks']]) of save
    `generation` (None: the last): the step priorities alone, read without
    the rest of the latents files (e.g. a record of what prioritized
    replay favoured at a checkpoint, run/snapshots.py). Raises as `load`.
    """
    index = self.load_index(None, None, generation)
    prios = []
    for _, _, length, _, _, _, *names in index['chunks']:
      files = dict(zip(PARTS, names))
      prio = self.load_npz(files[LATENTS], keys=(PRIORITY,)).get(PRIORITY)
      prios.append(self._checked_prio(prio, files, length))
    return index, prios

  def _checked_prio(self, prio, files, length):
    """The step priorities of a chunk's latents file, or ReplayCorruptError
    naming the file when they are missing or malformed."""
    if prio is None or prio.shape != (length,) or prio.dtype != np.float32:
      raise ReplayCorruptError(
          f'Replay latents file {self.path(files[LATENTS])} holds '
          f'{PRIORITY} {getattr(prio, "shape", None)} '
          f'{getattr(prio, "dtype", None)}; expected ({length},) float32.')
    return prio

  def load_items(self, meta, lengths):
    """(chunk ids [N], indices [N], queue [Q]) int64 of the item table.

    meta: the index's `items`; lengths: {chunk id: steps} of the saved
    chunks, which must hold every item's first step.
    """
    path = self.path(meta['file'])
    table = self.load_npz(meta['file'], keys=('chunk', 'index', 'queue'))
    chunk, index, queue = (table.get(k) for k in ('chunk', 'index', 'queue'))
    if (chunk is None or index is None or queue is None
        or chunk.shape != index.shape or chunk.ndim != 1
        or any(x.dtype != np.int64 for x in (chunk, index, queue))):
      raise ReplayCorruptError(
          f'Replay item table {path} holds '
          f'{ {k: (v.shape, str(v.dtype)) for k, v in table.items()} }; '
          'expected chunk [N], index [N] and queue [Q] int64.')
    if len(chunk) != meta['next'] - meta['first']:
      raise ReplayCorruptError(
          f'Replay item table {path} holds {len(chunk)} items, the index '
          f'expects {meta["next"] - meta["first"]}.')
    for chunk_id, step in zip(chunk.tolist(), index.tolist()):
      if not 0 <= step < lengths.get(chunk_id, 0):
        raise ReplayCorruptError(
            f'Replay item table {path} names step {step} of chunk '
            f'{chunk_id}, which the index does not hold.')
    return chunk, index, queue

  def load_selectors(self, index):
    """The selector states of the index, arrays read from the items file."""
    name = index['items']['file']
    keys = lambda k: k.startswith(_SELECTORS + '.')
    try:
      return unpack_state(index[_SELECTORS], self.load_npz(name, keys=keys))
    except KeyError as e:
      raise ReplayCorruptError(
          f'Replay item table {self.path(name)} lacks the selector array '
          f'{e}, which {self.path(INDEX)} names.') from e

  def load_npz(self, name, skip=(), keys=None):
    """{key: array} of an npz file, without the keys in `skip`.

    keys: the keys to read (a collection or a predicate), None for all.
    """
    path = self.path(name)
    wanted = keys if callable(keys) else (
        (lambda k: True) if keys is None else set(keys).__contains__)
    try:
      with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files
                if k not in skip and wanted(k)}
    except Exception as e:  # zipfile, OSError, ValueError, EOFError, ...
      raise ReplayCorruptError(
          f'Replay file {path} is missing, truncated or corrupt '
          f'({type(e).__name__}: {e}). Delete the replay directory or restore '
          'it from a backup.') from e
