"""Which DeepSea moves a run's replay holds (issue 12).

The probe's `disagreement_novelty` ranks each move by its rarity under a
uniform policy. Once an exploration arm's actor leaves the uniform policy,
that is no longer what its ensemble was trained on: the ensemble learns
from the replay. `moves(directory, size, mapping, steps)` counts, in the
replay a run saved, the moves (row, col, right) from rows 0 .. N-2 that
its first `steps` policy steps made, so that the probe can rank the
disagreement by the moves' counts in the data instead
(`deepsea_probe.probe(..., counts=...)`, `disagreement_replay_novelty`).

A replay step holds the observation x_t and the action a_t taken at it
(`model/agent.py` `split_context` shifts it into the previous action), so
a step at cell (r, c) with action a is the move right iff
a == mapping[r, c]. The step after the last move observes zeros (below
the grid) and ends the episode; it and every step of row N-1 make no
counted move.

The replay is read as saved (`replay/disk.py`, the newest save): each
env worker appends to its own chain of chunks, and the workers step in
lockstep, so the first `steps` policy steps are the first steps / W steps
of each of the W chains. A replay that has dropped the start of a chain
(capacity reached) cannot be cut like that, and is refused; so is one
whose workers are not the run's envs (`envs`; a multi-machine run keeps
one machine's share in each replay). `check` reads only the index, to
refuse such a replay before anything expensive runs. A replay refilled
after a loss (`train.lost_replay`) starts after step 0, which its index
does not show: `launch.exploration` compares the episode ends with the
run's scores.

`diagonal_depths(directory, size)` gives, per finished episode, how deep
along the diagonal it went: the largest r with (r, r) among its cells.
(r, r) is reached only by r right moves from (0, 0), so the depth is the
length of the episode's opening run of right moves, capped at N - 1; the
treasure needs depth N - 1 and one more right move. For an exploration
method that does not find the treasure, it is how close it came, and when.
"""
import typing

import numpy as np

from dreamer_tf.replay import disk

_KEYS = ('vector', 'action', 'is_first', 'is_last')


class _Chunk(typing.NamedTuple):
  """An entry of the index's `chunks` (replay/disk.py)."""
  id: int
  worker: int
  length: int
  pred: int
  succ: int
  refs: int
  steps_file: str
  latents_file: str


def check(directory, envs=None):
  """Reads the replay's index only (cheap): raises what `moves` and
  `diagonal_depths` would for a missing, damaged or truncated replay, or
  one whose env workers are not the run's `envs` (its record's num_envs;
  the replay of a multi-machine run holds one machine's share, which
  these counts cannot place)."""
  _chains(directory, envs)


def moves(directory, size, mapping, steps=None, envs=None):
  """{(row, col, right): n} of the replay in `directory`.

  size: the grid's N; mapping [N, N]: the env action that moves right at
  each cell (`DeepSeaEnv.action_mapping`); steps: the policy steps to count
  (e.g. a checkpoint's), None for all the replay holds; envs: the run's
  env count, checked against the replay's workers (see `check`). Raises
  ValueError when the replay cannot give that count (module docstring).
  """
  mapping = np.asarray(mapping)
  if mapping.shape != (size, size):
    raise ValueError(f'mapping has shape {mapping.shape}; a deepsea:{size} '
                     f'run has ({size}, {size}).')
  chains = _worker_steps(directory, size, envs)
  held = [sum(length for length, _ in chain) for chain in chains]
  if steps is None:
    quota = None
  else:
    if steps < 0 or steps % len(chains) or steps // len(chains) > min(held):
      raise ValueError(
          f'Cannot count the first {steps} policy steps in the replay '
          f'{directory}: it holds {sum(held)} steps of {len(chains)} env '
          f'workers (steps must be >= 0, a multiple of the workers, and '
          'each worker must hold its share; is this the replay of the '
          'probed run?).')
    quota = steps // len(chains)
  counts = {}
  for chain in chains:
    left = quota
    for length, load in chain:
      take = length if left is None else min(length, left)
      if take == 0:
        break
      vector, action, _, is_last = (v[:take] for v in load())
      _count(counts, size, mapping, vector, action, is_last)
      if left is not None:
        left -= take
  return counts


def diagonal_depths(directory, size, envs=None):
  """(steps [E], depth [E] int) of the replay's finished episodes, in the
  order they ended: the run's policy steps when each ended, as its
  scores.jsonl logs them (the W workers step in lockstep, and a worker's
  step k, from 0, is logged at k W; times frames_per_step for its frames),
  and the deepest diagonal row it reached (module docstring). An episode
  that a new one cut short (is_first without is_last before it: a
  restarted env) has no score and is left out too."""
  chains = _worker_steps(directory, size, envs)
  ends, depths = [], []
  for chain in chains:
    position, depth = 0, -1
    for _, load in chain:
      vector, _, is_first, is_last = load()
      diagonal = _diagonal_rows(vector, size)
      for t in range(len(vector)):  # Episodes span chunks.
        if is_first[t]:
          depth = -1
        depth = max(depth, int(diagonal[t]))
        if is_last[t]:
          ends.append((position + t) * len(chains))
          depths.append(depth)
          depth = -1
      position += len(vector)
  order = np.argsort(ends, kind='stable')
  return (np.asarray(ends, np.int64)[order],
          np.asarray(depths, np.int64)[order])


def check_priorities(directory, priorities):
  """Reads the saved priorities and the replay's index only (cheap):
  raises what `diagonal_priorities` would for a malformed priorities file
  or a replay that no longer holds its chunks whole. Returns (chunks
  [_Chunk], lengths [C], priority [steps] float64)."""
  try:
    with np.load(priorities, allow_pickle=False) as saved:
      chunk_ids, lengths = saved['chunk'], saved['length']  # [C], [C]
      prio = saved['priority'].astype(np.float64)  # [steps]
  except (OSError, KeyError, ValueError) as e:
    raise ValueError(f'Cannot read the step priorities {priorities} ({e}): '
                     'a replay_priorities.npz of launch.snapshot '
                     '--priorities holds chunk, length and priority.') from e
  if chunk_ids.shape != lengths.shape or prio.shape != (lengths.sum(),):
    raise ValueError(
        f'The step priorities {priorities} are malformed: {prio.shape[0]} '
        f'priorities for {chunk_ids.shape[0]} chunks of {lengths.sum()} '
        'steps.')
  current = {c.id: c for c in map(lambda c: _Chunk(*c), disk.Directory(
      directory).load_index(None, None)['chunks'])}
  chunks = []
  for chunk_id, length in zip(chunk_ids, lengths):
    chunk = current.get(int(chunk_id))
    if chunk is None or chunk.length < length:
      raise ValueError(
          f'The priorities {priorities} name chunk {chunk_id} ({length} '
          f'steps), which the replay {directory} no longer holds whole '
          '(capacity reached, or the replay of another run).')
    chunks.append(chunk)
  return chunks, lengths, prio


def diagonal_priorities(directory, priorities, size):
  """How prioritized replay weighed the diagonal at a checkpoint.

  directory: the run's replay; priorities: the step priorities of one of
  its saves, `replay_priorities.npz` of a checkpoint snapshot
  (`run/snapshots.py` `save_priorities`). The steps are read from the
  replay as it is now, chunk by chunk id (a chunk only grows, so its
  first steps are those the save had; ids are not unique across runs or
  a replay refilled after a loss, which the caller must rule out, as
  launch.probe_deepsea does for the replay it is given). Returns
    priority_unset: the fraction of the saved steps without a priority
      yet (inf: no update has trained on them);
    priority_diagonal [N]: per diagonal row r, the mean priority of the
      saved steps at cell (r, r) that have one over the mean priority of
      all saved steps that have one (> 1: favoured; None without such a
      step). Sampling draws sequences by a mix of their steps' max and
      mean priority^0.8 (`replay/selectors.py`), so this is how strongly
      the steps there pulled their sequences, not the sampling
      probability itself;
    priority_diagonal_steps [N]: how many steps at (r, r) had one.
  ValueError as `check_priorities`."""
  chunks, lengths, prio = check_priorities(directory, priorities)
  replay = disk.Directory(directory)
  diagonal = []  # [steps] the diagonal row of each saved step, -1 off it.
  for chunk, length in zip(chunks, lengths):
    vector = _load_steps(replay, chunk.steps_file, int(length), size)[0]
    diagonal.append(_diagonal_rows(vector, size))
  diagonal = np.concatenate(diagonal) if diagonal else np.zeros(0, np.int64)
  finite = np.isfinite(prio)
  mean = prio[finite].mean() if finite.any() else np.nan
  ratios, counts = [], []
  for r in range(size):
    at = finite & (diagonal == r)
    counts.append(int(at.sum()))
    ratios.append(float(prio[at].mean() / mean) if at.any() and mean > 0
                  else None)
  return dict(priority_unset=float(1 - finite.mean()) if prio.size else 0.0,
              priority_diagonal=ratios, priority_diagonal_steps=counts)


def _worker_steps(directory, size, envs):
  """Per env worker, its chunks oldest first as (length, load), load()
  giving (vector [length, N*N], action, is_first, is_last [length])."""
  replay = disk.Directory(directory)
  chains = _chains(directory, envs)

  def loader(chunk):
    return lambda: _load_steps(replay, chunk.steps_file, chunk.length, size)
  return [[(chunk.length, loader(chunk)) for chunk in chain]
          for chain in chains]


def _load_steps(replay, name, length, size):
  """(vector [length, N*N], action, is_first, is_last [length]) of a steps
  file of the disk.Directory `replay`; ValueError for a file that is not
  a deepsea:`size` run's."""
  data = replay.load_npz(name, keys=_KEYS)
  missing = [k for k in _KEYS if k not in data]
  path = replay.path(name)
  if missing:
    raise ValueError(
        f'Replay file {path} lacks {missing}: not a DeepSea run (its '
        "steps need the observation 'vector', 'action', 'is_first' and "
        "'is_last').")
  if data['vector'].shape[1:] != (size * size,):
    raise ValueError(
        f"Replay file {path}: 'vector' has shape "
        f"{data['vector'].shape[1:]} per step; a deepsea:{size} run's "
        f'is ({size * size},): pass the size the run was trained with.')
  return tuple(data[k][:length] for k in _KEYS)


def _chains(directory, envs):
  """[[_Chunk, oldest first] per env worker, by worker id]; refuses an
  empty replay, a chain whose start was dropped and a worker count other
  than `envs` (None: any)."""
  index = disk.Directory(directory).load_index(None, None)
  chains = {}
  for chunk in sorted(map(lambda c: _Chunk(*c), index['chunks'])):
    chains.setdefault(chunk.worker, []).append(chunk)
  if not chains:
    raise ValueError(f'The replay {directory} holds no steps.')
  if envs is not None and len(chains) != envs:
    raise ValueError(
        f'The replay {directory} holds the steps of {len(chains)} env '
        f'workers; the run steps {envs} envs. The policy steps cannot be '
        'placed (a multi-machine run keeps one machine\'s share in each '
        'replay): count a one-machine run, with its own replay.')
  streams = index['streams']
  for worker, chain in chains.items():
    linked = all(a.succ == b.id and b.pred == a.id
                 for a, b in zip(chain, chain[1:]))
    added = streams.get(str(worker), [None, None])[1]
    if (chain[0].pred != -1 or not linked
        or sum(c.length for c in chain) != added):
      raise ValueError(
          f'The replay {directory} no longer holds the start of env worker '
          f"{worker}'s steps (capacity reached): its moves cannot be "
          'counted from the first step. Count a run whose replay kept '
          'every step (Replay.capacity above its steps).')
  return [chains[w] for w in sorted(chains)]


def _diagonal_rows(vector, size):
  """[T] the row r of each step at a diagonal cell (r, r), -1 elsewhere
  (off the diagonal or below the grid), of vector [T, N*N]."""
  on_grid, row, col = _cells(vector, size)
  return np.where(on_grid & (row == col), row, -1)


def _cells(vector, size):
  """(on_grid, row, col) [T] of one-hot observations vector [T, N*N]; the
  zeros below the grid are off it."""
  row, col = np.divmod(np.argmax(vector, -1), size)
  return vector.max(-1) > 0, row, col


def _count(counts, size, mapping, vector, action, is_last):
  """Adds the moves of steps (vector [T, N*N], action [T], is_last [T])."""
  on_grid, row, col = _cells(vector, size)
  made = on_grid & ~is_last & (row < size - 1)
  for r, c, a in zip(row[made], col[made], action[made]):
    key = (int(r), int(c), bool(a == mapping[r, c]))
    counts[key] = counts.get(key, 0) + 1
