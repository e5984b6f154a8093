"""DeepSea moves counted from a saved replay (analysis/replay_moves.py),
against the moves the environment made, the step priorities of a save
per diagonal row, and the refusals."""
import numpy as np
import pytest

from dreamer_tf import replay as replay_lib
from dreamer_tf.analysis import replay_moves
from dreamer_tf.replay import disk
from dreamer_tf.run import snapshots
from tests.analysis.fakes import play_deepsea as play
from tests.analysis.fakes import tally_moves as tally

N = 4


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


def test_an_episode_cut_short_by_a_new_one_has_no_depth(tmp_path):
  """A restarted env starts a new episode (is_first) without ending the
  old one: the old one has no score, and its depth must not leak into the
  next episode's."""
  replay = replay_lib.Replay(str(tmp_path), capacity=100, chunk_size=4,
                             length=2)
  cell = lambda r, c: np.eye(N * N, dtype=np.float32)[r * N + c]
  below = np.zeros(N * N, np.float32)
  steps = [(cell(0, 0), True, False), (cell(1, 1), False, False),
           (cell(2, 2), False, False),  # Cut short at depth 2.
           (cell(0, 0), True, False), (cell(1, 0), False, False),
           (cell(2, 1), False, False), (cell(3, 0), False, False),
           (below, False, True)]  # Ends at depth 0.
  for vector, is_first, is_last in steps:
    replay.add(dict(vector=vector, action=np.int32(0),
                    is_first=np.bool_(is_first), is_last=np.bool_(is_last)))
  replay.save()
  steps, depths = replay_moves.diagonal_depths(str(tmp_path), N)
  assert steps.tolist() == [7] and depths.tolist() == [0]


def test_refuses_other_env_counts_and_negative_steps(saved):
  directory, mapping, _ = saved
  replay_moves.check(directory, envs=3)
  for call in (lambda: replay_moves.check(directory, envs=4),
               lambda: replay_moves.moves(directory, N, mapping, envs=2),
               lambda: replay_moves.diagonal_depths(directory, N, envs=1)):
    with pytest.raises(ValueError, match='holds the steps of 3 env workers'):
      call()
  with pytest.raises(ValueError, match='must be >= 0'):
    replay_moves.moves(directory, N, mapping, steps=-3)


def test_diagonal_priorities_against_the_updates_that_set_them(tmp_path):
  """Priorities written through sampled batches (a step's value from its
  cell), saved with the replay's save, read back per diagonal row: the
  same ratios as the batches give by brute force; the steps no batch
  named are unset."""
  directory = str(tmp_path / 'replay')
  replay = replay_lib.Replay(directory, capacity=10_000, chunk_size=7,
                             length=3, fracs=dict(uniform=1.0))
  play(replay, episodes=9, workers=3)
  given = {}  # (chunk, index) -> (priority, diagonal row or -1)
  for seed in range(4):
    batch = replay.sample(8)
    cell = np.argmax(batch['vector'], -1)  # [B, T]
    row, col = np.divmod(cell, N)
    on_diagonal = (batch['vector'].max(-1) > 0) & (row == col)
    value = np.where(on_diagonal, 2.0 + row, 1.0 + 0.1 * seed)  # [B, T]
    replay.update(dict(stepid=batch['stepid'], priority=value))
    for (chunk, index), v, d in zip(batch['stepid'].reshape(-1, 2),
                                    value.reshape(-1),
                                    np.where(on_diagonal, row, -1).reshape(-1)):
      given[int(chunk), int(index)] = (v, d)  # The last write wins.
  generation = replay.save()
  saved = str(tmp_path / 'priorities.npz')
  snapshots.save_priorities(directory, generation, saved)
  result = replay_moves.diagonal_priorities(directory, saved, N)
  mean = np.mean([v for v, _ in given.values()])
  for r in range(N):
    at = [v for v, d in given.values() if d == r]
    assert result['priority_diagonal_steps'][r] == len(at)
    if at:
      assert result['priority_diagonal'][r] == pytest.approx(
          np.mean(at) / mean)
    else:
      assert result['priority_diagonal'][r] is None
  assert result['priority_unset'] == pytest.approx(
      1 - len(given) / (3 * 9 * (N + 1)))
  # A malformed file, and a save whose chunks the replay no longer holds,
  # are refused (check_priorities reads only the file and the index).
  with np.load(saved) as f:
    arrays = dict(f)
  np.savez(saved, **dict(arrays, priority=arrays['priority'][:-1]))
  with pytest.raises(ValueError, match='malformed: 134 priorities for 21 '
                     'chunks of 135 steps'):
    replay_moves.check_priorities(directory, saved)
  np.savez(saved, **dict(arrays, length=None))
  with pytest.raises(ValueError, match='Cannot read the step priorities'):
    replay_moves.diagonal_priorities(directory, saved, N)
  np.savez(saved, **dict(arrays, chunk=arrays['chunk'] + 100))
  with pytest.raises(ValueError, match='name chunk 100 .* which the replay'):
    replay_moves.diagonal_priorities(directory, saved, N)
