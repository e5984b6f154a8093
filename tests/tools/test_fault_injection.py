"""SIGKILL at seeded random points (`tools/fault_injection.py`): the
resumed run ends as a run that was never stopped, and after every kill the
checkpoint a resume takes agrees with its replay save. The suite kills the
DreamerV3-XP variant (tests/conftest.py), whose resume has the most state:
the ensemble, the intrinsic critic, the schedule, the step priorities and
the prioritized selector; tests/run/test_train.py stops the baseline with
Ctrl-C."""
import pytest

from dreamer_tf import replay as replay_lib
from dreamer_tf.run import checkpoint as ckpt_lib
from tests.conftest import REPLAY_KWARGS, launch_flags
from tools import fault_injection

# 5 kill points, every kind among them (the seed is chosen for that: a
# start-up kill after the first logged steps, a write, two steps, an early
# start-up kill); the 20-point run of the tool is in
# docs/benchmarks/fault-injection-2026-11-27.md.
KILLS, SEED = 5, 2


def test_kill_points_are_seeded_and_cover_every_kind():
  points = fault_injection.draw_kill_points(KILLS, seed=SEED)
  assert points == fault_injection.draw_kill_points(KILLS, seed=SEED)
  assert points != fault_injection.draw_kill_points(KILLS, seed=SEED + 1)
  assert {p['kind'] for p in points} == set(fault_injection.KINDS)


@pytest.mark.slow
def test_a_run_killed_at_random_points_ends_as_an_uninterrupted_one(
    tmp_path, straight_runs):
  replay_kwargs = REPLAY_KWARGS['xp']
  report = fault_injection.inject(
      tmp_path, fault_injection.draw_kill_points(KILLS, seed=SEED),
      straight=straight_runs('xp'), extra=launch_flags('xp'),
      replay_kwargs=replay_kwargs)
  assert report['killed'] == KILLS, report['kills']
  assert report['during_writes'] >= 1, report['kills']
  assert not report['resume_problems'], report['resume_problems']
  assert not report['differences'], report['differences']
  assert report['equal']
  # The compared state is the XP state: the schedule saw episodes and the
  # replay draws prioritized batches with importance weights.
  faulted = tmp_path / 'faulted'
  counters = ckpt_lib.Checkpointer(str(faulted / 'ckpt')).load()[1][
      'parts']['counters']
  assert counters['schedule']['fast'] is not None
  batch = replay_lib.Replay(str(faulted / 'replay'), length=9,
                            **replay_kwargs).sample(8)
  assert 'weight' in batch
