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
  replay = disk.Directory(directory)
  index = _index(replay)
  chains = _chains(index, directory)
  if not chains:
    raise ValueError(f'The replay {directory} holds no steps.')
  held = [sum(c[2] for c in chain) for chain in chains.values()]
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
  for chain in chains.values():
    left = quota
    for _, _, length, _, _, _, steps_file, _ in chain:
      take = length if left is None else min(length, left)
      if take == 0:
        break
      data = replay.load_npz(steps_file, keys=_KEYS)
      missing = [k for k in _KEYS if k not in data]
      if missing:
        raise ValueError(
            f'Replay file {replay.path(steps_file)} lacks {missing}: '
            'not a DeepSea run (its steps need the observation '
            "'vector', 'action' and 'is_last').")
      _count(counts, size, mapping, *(data[k][:take] for k in _KEYS))
      if left is not None:
        left -= take
  return counts


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
