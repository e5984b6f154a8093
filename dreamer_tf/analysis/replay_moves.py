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
(capacity reached) cannot be cut like that, and is refused.

`diagonal_depths(directory, size)` gives, per finished episode, how deep
along the diagonal it went: the largest r with (r, r) among its cells.
(r, r) is reached only by r right moves from (0, 0), so the depth is the
length of the episode's opening run of right moves, capped at N - 1; the
treasure needs depth N - 1 and one more right move. For an exploration
method that does not find the treasure, it is how close it came, and when.
"""
import json

import numpy as np

from dreamer_tf.replay import disk

_KEYS = ('vector', 'action', 'is_last')


def moves(directory, size, mapping, steps=None):
  """{(row, col, right): n} of the replay in `directory`.

  size: the grid's N; mapping [N, N]: the env action that moves right at
  each cell (`DeepSeaEnv.action_mapping`); steps: the policy steps to count
  (e.g. a checkpoint's), None for all the replay holds. Raises ValueError
  when the replay cannot give that count (see the module docstring).
  """
  mapping = np.asarray(mapping)
  if mapping.shape != (size, size):
    raise ValueError(f'mapping has shape {mapping.shape}; a deepsea:{size} '
                     f'run has ({size}, {size}).')
  chains = _worker_steps(directory, size)
  held = [sum(length for length, _ in chain) for chain in chains]
  if steps is None:
    quota = None
  else:
    if steps % len(chains) or steps // len(chains) > min(held):
      raise ValueError(
          f'Cannot count the first {steps} policy steps in the replay '
          f'{directory}: it holds {sum(held)} steps of {len(chains)} env '
          f'workers (steps must be a multiple of the workers, and each '
          'worker must hold its share; is this the replay of the probed '
          'run?).')
    quota = steps // len(chains)
  counts = {}
  for chain in chains:
    left = quota
    for length, load in chain:
      take = length if left is None else min(length, left)
      if take == 0:
        break
      _count(counts, size, mapping, *(v[:take] for v in load()))
      if left is not None:
        left -= take
  return counts


def diagonal_depths(directory, size):
  """(steps [E], depth [E] int) of the replay's finished episodes, in the
  order they ended: the run's policy steps when each ended, as its
  scores.jsonl logs them (the W workers step in lockstep, and a worker's
  step k, from 0, is logged at k W), and the deepest diagonal row it
  reached (module docstring)."""
  chains = _worker_steps(directory, size)
  ends, depths = [], []
  for chain in chains:
    position, depth = 0, -1
    for _, load in chain:
      vector, _, is_last = load()
      on_grid = vector.max(-1) > 0
      row, col = np.divmod(np.argmax(vector, -1), size)
      diagonal = np.where(on_grid & (row == col), row, -1)
      for t in range(len(vector)):  # Episodes span chunks.
        depth = max(depth, int(diagonal[t]))
        if is_last[t]:
          ends.append((position + t) * len(chains))
          depths.append(depth)
          depth = -1
      position += len(vector)
  order = np.argsort(ends, kind='stable')
  return (np.asarray(ends, np.int64)[order],
          np.asarray(depths, np.int64)[order])


def _worker_steps(directory, size):
  """Per env worker, its chunks oldest first as (length, load), load()
  giving (vector [length, N*N], action [length], is_last [length])."""
  replay = disk.Directory(directory)
  chains = _chains(_index(replay), directory)
  if not chains:
    raise ValueError(f'The replay {directory} holds no steps.')

  def loader(entry):
    def load():
      data = replay.load_npz(entry[6], keys=_KEYS)
      missing = [k for k in _KEYS if k not in data]
      if missing:
        raise ValueError(
            f'Replay file {replay.path(entry[6])} lacks {missing}: '
            'not a DeepSea run (its steps need the observation '
            "'vector', 'action' and 'is_last').")
      if data['vector'].shape[1:] != (size * size,):
        raise ValueError(
            f"Replay file {replay.path(entry[6])}: 'vector' has shape "
            f"{data['vector'].shape[1:]} per step; a deepsea:{size} run's "
            f'is ({size * size},): pass the size the run was trained with.')
      return tuple(data[k][:entry[2]] for k in _KEYS)
    return load
  return [[(entry[2], loader(entry)) for entry in chain]
          for chain in chains.values()]


def _index(replay):
  """The newest save's index, checked against its own length and chunk
  size (ReplayMissingError / ReplayCorruptError name the problem)."""
  path = replay.path(disk.INDEX)
  if not replay.exists():
    raise disk.ReplayMissingError(f'There is no saved replay in '
                                  f'{replay.root}.')
  try:
    with open(path, 'rb') as f:
      raw = json.loads(f.read())
    length, chunk_size = raw['length'], raw['chunk_size']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise disk.ReplayCorruptError(
        f'Cannot read replay index {path}: {e}') from e
  return replay.load_index(length, chunk_size)


def _chains(index, directory):
  """{worker: [chunk entries, oldest first]}; refuses a chain whose start
  was dropped."""
  chains = {}
  for entry in sorted(index['chunks'], key=lambda c: c[0]):
    chains.setdefault(entry[1], []).append(entry)
  streams = index['streams']
  for worker, chain in chains.items():
    linked = all(a[4] == b[0] and b[3] == a[0]
                 for a, b in zip(chain, chain[1:]))
    added = streams.get(str(worker), [None, None])[1]
    if chain[0][3] != -1 or not linked or sum(c[2] for c in chain) != added:
      raise ValueError(
          f'The replay {directory} no longer holds the start of env worker '
          f"{worker}'s steps (capacity reached): its moves cannot be "
          'counted from the first step. Count a run whose replay kept '
          'every step (Replay.capacity above its steps).')
  return chains


def _count(counts, size, mapping, vector, action, is_last):
  """Adds the moves of steps (vector [T, N*N], action [T], is_last [T])."""
  on_grid = vector.max(-1) > 0
  cell = np.argmax(vector, -1)
  row, col = cell // size, cell % size
  made = on_grid & ~is_last & (row < size - 1)
  for r, c, a in zip(row[made], col[made], action[made]):
    key = (int(r), int(c), bool(a == mapping[r, c]))
    counts[key] = counts.get(key, 0) + 1
