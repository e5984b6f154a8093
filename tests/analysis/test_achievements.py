"""Achievement success rates and the Crafter score."""
import math

import pytest

from dreamer_tf.analysis import achievements


def episode(**counts):
  return {'episode/score': 1.0, **{
      f'log/achievement_{k}': v for k, v in counts.items()}}


def test_success_rate_is_the_percent_of_episodes_with_the_achievement():
  records = [episode(wood=2, stone=0), episode(wood=0, stone=0),
             episode(wood=1, stone=0), episode(wood=5, stone=1),
             {'episode/score': 3.0}]  # No achievements: skipped.
  assert achievements.success_rates(records) == {'stone': 25.0, 'wood': 75.0}
  assert achievements.success_rates([{'episode/score': 1.0}]) == {}


def test_crafter_score_is_the_shifted_geometric_mean():
  assert achievements.crafter_score({'a': 100.0, 'b': 100.0}) == (
      pytest.approx(100.0))
  assert achievements.crafter_score({'a': 0.0, 'b': 0.0}) == 0.0
  # exp((ln 1 + ln 101) / 2) - 1 = sqrt(101) - 1.
  assert achievements.crafter_score({'a': 0.0, 'b': 100.0}) == (
      pytest.approx(math.sqrt(101) - 1))
  # Rare achievements weigh more than their arithmetic share.
  assert achievements.crafter_score({'a': 1.0, 'b': 99.0}) < 50.0


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match='Crafter run'):
    achievements.crafter_score({})
  with pytest.raises(ValueError, match='percentages'):
    achievements.crafter_score({'a': 0.5, 'b': 150.0})
  with pytest.raises(ValueError, match='disagree'):
    achievements.success_rates([episode(wood=1), episode(stone=1)])
