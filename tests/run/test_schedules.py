"""Intrinsic-weight schedules (run/schedules.py): values over time,
direction, state round trips and errors."""
import json
import math

import numpy as np
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
  # noise = √(π/2) √(1/3 + 1/7 - 2/5) = √(4π/105) = 0.3459476;
  # excess = 4/3 - 2 * noise.
  assert sched.noise == pytest.approx(0.3459476, abs=1e-7)
  assert sched.value(0) == pytest.approx(
      2.0 * math.exp(-(4 / 3 - 2 * 0.3459476)), rel=1e-6)
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
  # A state another schedule saved ({} of Fixed) is refused by name.
  with pytest.raises(ValueError, match=r'ReturnProgress state \{\} is not '
                     'one it saved .*train.intrinsic_schedule'):
    restored.set_state({})


def test_return_progress_noise_is_the_spread_of_progress_on_flat_returns():
  sched = schedules.ReturnProgress()  # fast 0.1, slow 0.01
  rng = np.random.default_rng(0)
  progress = []
  for i in range(20_000):
    sched.observe(rng.normal())
    if i >= 1_000:
      progress.append(sched.progress)
  assert np.std(progress) == pytest.approx(sched.noise, rel=0.1)


@pytest.mark.parametrize('noise_sds, explores', [(2.0, True), (0.0, False)])
def test_noisy_flat_returns_are_not_progress(noise_sds, explores):
  # DeepSea 10 without the treasure: -0.001 per right move, the uniform
  # policy's ~5 right moves per episode.
  sched = schedules.ReturnProgress(noise_sds=noise_sds)
  rng = np.random.default_rng(1)
  weights = []
  for i in range(5_000):
    sched.observe(-0.001 * rng.binomial(10, 0.5))
    if i >= 500:
      weights.append(sched.value(0))
  weights = np.array(weights)
  if explores:
    assert weights.mean() > 0.98 and (weights < 0.5).mean() < 0.005
  else:  # Without the margin, noise reads as progress.
    assert weights.mean() < 0.9 and (weights < 0.5).mean() > 0.02


def test_return_progress_still_reacts_to_a_rising_trend():
  sched = schedules.ReturnProgress()
  rng = np.random.default_rng(2)
  for _ in range(300):
    sched.observe(0.1 * rng.normal())
  assert sched.value(0) > 0.9
  for i in range(30):  # Rising by 0.2 noise deviations per episode.
    sched.observe(0.02 * i + 0.1 * rng.normal())
  assert sched.value(0) < 0.2


def test_bad_settings_fail_clearly():
  with pytest.raises(ValueError, match='Fixed.weight'):
    schedules.Fixed(-1.0)
  with pytest.raises(ValueError, match='half_life'):
    schedules.ExponentialDecay(half_life=0)
  with pytest.raises(ValueError, match='slow < fast'):
    schedules.ReturnProgress(fast=0.01, slow=0.1)
  with pytest.raises(ValueError, match='tolerance'):
    schedules.ReturnProgress(tolerance=0)
  with pytest.raises(ValueError, match='ReturnProgress.noise_sds'):
    schedules.ReturnProgress(noise_sds=-1)
  with pytest.raises(ValueError, match='ReturnProgress.high'):
    schedules.ReturnProgress(high=float('inf'))
