"""Intrinsic-weight schedules (run/schedules.py): values over time,
direction, state round trips and errors."""
import json
import math

import pytest

from dreamer_tf.run import schedules


def test_fixed_is_constant():
  fixed = schedules.Fixed(0.3)
  fixed.observe(5.0)
  assert [fixed.value(u) for u in (0, 10, 10**6)] == [0.3] * 3
  assert fixed.get_state() == {}


def test_exponential_decay_halves_the_distance_every_half_life():
  decay = schedules.ExponentialDecay(start=1.0, end=0.2, half_life=100)
  values = [decay.value(u) for u in (0, 100, 200, 300, 10**5)]
  assert values[:4] == pytest.approx([1.0, 0.6, 0.4, 0.3])
  assert values[4] == pytest.approx(0.2)
  assert all(a > b for a, b in zip(values, values[1:]))  # Decreasing.
  rising = schedules.ExponentialDecay(start=0.0, end=1.0, half_life=10)
  assert rising.value(10) == pytest.approx(0.5)  # The other direction too.


def test_return_progress_explores_while_returns_stagnate():
  sched = schedules.ReturnProgress(high=1.0, low=0.1, fast=0.5, slow=0.05,
                                   tolerance=0.5)
  assert sched.value(0) == 1.0  # Before any episode: explore.
  for _ in range(50):
    sched.observe(-0.01)  # Flat returns (DeepSea without the treasure).
  assert sched.progress == 0.0 and sched.value(0) == 1.0
  trace = []
  for score in [0.0, 0.5, 1.0, 1.0, 1.0, 1.0]:  # Returns rise.
    sched.observe(score)
    trace.append(sched.value(0))
  assert trace[-1] < 0.2 and trace[-1] >= 0.1
  assert sched.progress > 0
  for _ in range(400):
    sched.observe(1.0)  # A new plateau: back to exploring.
  assert sched.value(0) > 0.9
  for score in [1.0, 0.5, 0.0, -0.5]:  # Falling: full exploration.
    sched.observe(score)
  assert sched.value(0) == 1.0


def test_return_progress_by_hand_and_state_round_trip():
  sched = schedules.ReturnProgress(high=2.0, low=0.0, fast=0.5, slow=0.25,
                                   tolerance=1.0)
  sched.observe(0.0)
  sched.observe(4.0)
  # fast = 2, slow = 1, spread = 0.25 * |4 - 1| = 0.75; progress = 4/3.
  assert sched.progress == pytest.approx(4 / 3)
  assert sched.value(0) == pytest.approx(2.0 * math.exp(-4 / 3))
  state = json.loads(json.dumps(sched.get_state()))
  restored = schedules.ReturnProgress(high=2.0, low=0.0, fast=0.5,
                                      slow=0.25, tolerance=1.0)
  restored.set_state(state)
  for score in (3.0, -1.0, 7.5):
    sched.observe(score)
    restored.observe(score)
    assert restored.value(0) == sched.value(0)
  sched.observe(float('nan'))  # Ignored.
  assert sched.get_state() == restored.get_state()


def test_bad_settings_fail_clearly():
  with pytest.raises(ValueError, match='Fixed.weight'):
    schedules.Fixed(-1.0)
  with pytest.raises(ValueError, match='half_life'):
    schedules.ExponentialDecay(half_life=0)
  with pytest.raises(ValueError, match='slow < fast'):
    schedules.ReturnProgress(fast=0.01, slow=0.1)
  with pytest.raises(ValueError, match='tolerance'):
    schedules.ReturnProgress(tolerance=0)
  with pytest.raises(ValueError, match='ReturnProgress.high'):
    schedules.ReturnProgress(high=float('inf'))
