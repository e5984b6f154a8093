"""SIGKILL at seeded random points (`tools/fault_injection.py`): the
resumed run ends as a run that was never stopped, and after every kill the
checkpoint a resume takes agrees with its replay save."""
import pytest

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
  report = fault_injection.inject(
      tmp_path, fault_injection.draw_kill_points(KILLS, seed=SEED),
      straight=straight_runs('baseline'))
  assert report['killed'] == KILLS, report['kills']
  assert report['during_writes'] >= 1, report['kills']
  assert not report['resume_problems'], report['resume_problems']
  assert not report['differences'], report['differences']
  assert report['equal']
