"""DeepSea moves counted from a saved replay (analysis/replay_moves.py),
against the moves the environment made, and the refusals."""
import numpy as np
import pytest

from dreamer_tf import replay as replay_lib
from dreamer_tf.analysis import deepsea_probe
from dreamer_tf.analysis import replay_moves
from dreamer_tf.envs import deepsea
from dreamer_tf.replay import disk

N = 4


def play(replay, episodes, workers, seed=0, size=N, **env_kwargs):
  """Random DeepSea episodes, the workers stepping in lockstep as the
  training loop's envs do. Returns (mapping, the moves each worker made per
  step: [worker][step] -> (row, col, right) or None, no counted move,
  [(policy steps at its end, deepest diagonal row)] of every finished
  episode in the order they ended)."""
  rng = np.random.default_rng(seed)
  envs = [deepsea.DeepSeaEnv(size=size, **env_kwargs)
          for _ in range(workers)]
  mapping = np.asarray(envs[0].action_mapping)
  made = [[] for _ in range(workers)]
  obs = [env.reset(seed=0)[0] for env in envs]
  pos = [(0, 0)] * workers
  first, done = [True] * workers, [False] * workers
  depth, ended = [0] * workers, []
  for k in range(episodes * (size + 1)):
    for w, env in enumerate(envs):
      action = int(rng.integers(2))
      replay.add(dict(vector=obs[w], action=np.int32(action),
                      reward=np.float32(0), is_first=np.bool_(first[w]),
                      is_last=np.bool_(done[w]),
                      is_terminal=np.bool_(done[w])), w)
      if done[w]:  # The zeros step after the last move; no move made.
        ended.append((k * workers, depth[w]))  # As the loop logs it.
        depth[w] = 0
        made[w].append(None)
        obs[w], pos[w] = env.reset(seed=0)[0], (0, 0)
        first[w], done[w] = True, False
        continue
      row, col = pos[w]
      right = action == mapping[row, col]
      made[w].append((row, col, bool(right)) if row < size - 1 else None)
      obs[w], _, done[w], _, info = env.step(action)
      pos[w] = (info['row'], info['column'])
      if pos[w][0] == pos[w][1] and pos[w][0] < size:
        depth[w] = max(depth[w], pos[w][0])
      first[w] = False
      if not done[w]:  # The probe's move rule, as the counts assume.
        assert pos[w] == (row + 1, deepsea_probe.move(mapping, row, col,
                                                      right)[1])
  return mapping, made, ended


def tally(made, quota=None):
  counts = {}
  for steps in made:
    for move in steps[:quota]:
      if move is not None:
        counts[move] = counts.get(move, 0) + 1
  return counts


@pytest.fixture(name='saved')
def _saved(tmp_path):
  replay = replay_lib.Replay(str(tmp_path / 'replay'), capacity=10_000,
                             chunk_size=7, length=3)
  mapping, made, _ = play(replay, episodes=9, workers=3)
  replay.save()
  return str(tmp_path / 'replay'), mapping, made


def test_counts_every_move_the_env_made(saved):
  directory, mapping, made = saved
  counts = replay_moves.moves(directory, N, mapping)
  assert counts == tally(made)
  assert sum(counts.values()) == 3 * 9 * (N - 1)  # Rows 0 .. N-2, 3 workers.
  assert {r for r, _, _ in counts} == set(range(N - 1))


@pytest.mark.parametrize('steps', [3, 3 * 7, 3 * 8, 3 * 20])
def test_counts_the_first_steps_of_every_worker(saved, steps):
  directory, mapping, made = saved
  assert replay_moves.moves(directory, N, mapping, steps=steps) == tally(
      made, steps // 3)


@pytest.mark.parametrize('steps, problem', [
    (4, 'multiple of the workers'), (3 * 9 * (N + 1) + 3, 'holds 135 steps')])
def test_refuses_a_cut_the_replay_cannot_give(saved, steps, problem):
  directory, mapping, _ = saved
  with pytest.raises(ValueError, match=problem):
    replay_moves.moves(directory, N, mapping, steps=steps)


def test_refuses_a_replay_that_dropped_its_first_steps(tmp_path):
  replay = replay_lib.Replay(str(tmp_path), capacity=10, chunk_size=4,
                             length=2)
  mapping, _, _ = play(replay, episodes=6, workers=1)
  replay.save()
  with pytest.raises(ValueError, match='no longer holds the start'):
    replay_moves.moves(str(tmp_path), N, mapping)


def test_diagonal_depths_of_every_finished_episode(tmp_path):
  replay = replay_lib.Replay(str(tmp_path), capacity=10_000, chunk_size=7,
                             length=3)
  # The last episode of every worker is cut off before its end (not
  # counted).
  _, _, ended = play(replay, episodes=40, workers=3, seed=1)
  for w in range(3):
    replay.add(dict(vector=np.eye(N * N, dtype=np.float32)[0],
                    action=np.int32(0), reward=np.float32(0),
                    is_first=np.bool_(True), is_last=np.bool_(False),
                    is_terminal=np.bool_(False)), w)
  replay.save()
  steps, depths = replay_moves.diagonal_depths(str(tmp_path), N)
  assert list(zip(steps.tolist(), depths.tolist())) == ended
  assert len(depths) == 3 * 40 and set(depths.tolist()) == set(range(N))


def test_refuses_a_missing_replay_and_a_wrong_mapping(tmp_path, saved):
  with pytest.raises(disk.ReplayMissingError, match='no saved replay'):
    replay_moves.moves(str(tmp_path / 'none'), N, np.zeros([N, N]))
  directory, mapping, _ = saved
  with pytest.raises(ValueError, match=r'deepsea:5 run has \(5, 5\)'):
    replay_moves.moves(directory, 5, mapping)
  with pytest.raises(ValueError, match=r"deepsea:5 run's is \(25,\)"):
    replay_moves.diagonal_depths(directory, 5)


def test_refuses_a_replay_without_deepsea_steps(tmp_path):
  replay = replay_lib.Replay(str(tmp_path), capacity=100, chunk_size=4,
                             length=2)
  for t in range(6):
    replay.add(dict(image=np.zeros([2], np.float32), action=np.int32(0),
                    is_last=np.bool_(False)))
  replay.save()
  with pytest.raises(ValueError, match="not a DeepSea run"):
    replay_moves.moves(str(tmp_path), N, np.zeros([N, N], int))


def test_refuses_an_empty_replay_and_a_worker_short_of_its_share(tmp_path):
  empty = replay_lib.Replay(str(tmp_path / 'empty'), capacity=100,
                            chunk_size=4, length=2)
  empty.save()
  with pytest.raises(ValueError, match='holds no steps'):
    replay_moves.moves(str(tmp_path / 'empty'), N, np.zeros([N, N], int))
  uneven = replay_lib.Replay(str(tmp_path / 'uneven'), capacity=100,
                             chunk_size=4, length=2)
  mapping, _, _ = play(uneven, episodes=2, workers=1)  # Worker 0: 10 steps.
  step = dict(vector=np.eye(N * N, dtype=np.float32)[0], action=np.int32(0),
              reward=np.float32(0), is_first=np.bool_(True),
              is_last=np.bool_(False), is_terminal=np.bool_(False))
  for _ in range(4):
    uneven.add(step, 1)
  uneven.save()
  assert sum(replay_moves.moves(str(tmp_path / 'uneven'), N, mapping,
                                steps=8).values()) == 3 + 4
  # Worker 0's first 4 steps: the moves from rows 0, 1, 2 and the last row;
  # worker 1's: 4 moves from (0, 0).
  with pytest.raises(ValueError, match='each worker must hold its share'):
    replay_moves.moves(str(tmp_path / 'uneven'), N, mapping, steps=10)
