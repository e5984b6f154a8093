"""dreamer_tf/analysis/exploration.py: first success, solved, Wilson
intervals, the censored median, a method's summary, DeepSea's right moves
(exact fixtures)."""
import math

import numpy as np
import pytest

from dreamer_tf.analysis import exploration
from dreamer_tf.analysis import scores


def run(ys, seed=0):
  ys = np.asarray(ys, np.float64)
  return scores.Run('deepsea_10', 'baseline', seed,
                    10.0 * np.arange(1, ys.size + 1), ys)


def test_deepsea_task_size():
  assert exploration.deepsea_task_size('deepsea_14') == 14
  assert exploration.deepsea_task_size('deepsea_14b') is None
  assert exploration.deepsea_task_size('cartpole') is None


def test_first_success_and_successes():
  r = run([0.0, -0.01, -0.05, 0.99, 0.0, 0.99])
  assert exploration.first_success(r) == 4
  assert exploration.first_success(run([0.0, -0.09, 0.5])) is None  # > 0.5.
  assert exploration.first_success(run([])) is None
  s = exploration.successes(r)
  np.testing.assert_array_equal(s.ys, [0, 0, 0, 1, 0, 1])
  np.testing.assert_array_equal(s.xs, r.xs)
  assert s.seed == 0 and s.task == 'deepsea_10'


def test_solved_looks_at_the_last_window_only():
  late = run([0.0] * 90 + [0.99] * 6 + [0.0] * 4)
  assert exploration.solved(late, window=10, rate=0.6)
  assert not exploration.solved(late, window=10, rate=0.7)
  early = run([0.99] * 50 + [0.0] * 50)
  assert not exploration.solved(early, window=10, rate=0.1)
  assert not exploration.solved(run([0.99] * 5), window=10, rate=0.1)


def test_solved_at_is_when_the_trailing_window_first_reaches_the_rate():
  late = run([0.0] * 90 + [0.99] * 6 + [0.0] * 4)
  assert exploration.solved_at(late, window=10, rate=0.6) == 96
  assert exploration.solved_at(late, window=10, rate=0.7) is None
  # Reached early and lost later still counts, at its first episode.
  early = run([0.99] * 50 + [0.0] * 50)
  assert exploration.solved_at(early, window=10, rate=0.1) == 10
  assert exploration.solved_at(early, window=10, rate=1.0) == 10
  # A rate whose count is fractional: 0.25 of 10 needs 3 successes.
  three = run([0.0, 0.99, 0.99] + [0.0] * 7 + [0.99])  # 2 in 1-10, 3 in 2-11.
  assert exploration.solved_at(three, window=10, rate=0.2) == 10
  assert exploration.solved_at(three, window=10, rate=0.25) == 11
  assert exploration.solved_at(run([0.99] * 5), window=10, rate=0.1) is None


def test_wilson_interval():
  # Known values: 0 of 3 -> [0, 0.5615]; 3 of 3 -> [0.4385, 1];
  # 5 of 10 -> [0.2366, 0.7634].
  low, high = exploration.wilson(0, 3)
  assert low == pytest.approx(0.0, abs=1e-12)
  assert high == pytest.approx(0.56150, abs=1e-4)
  low, high = exploration.wilson(3, 3)
  assert low == pytest.approx(0.43850, abs=1e-4)
  assert high == pytest.approx(1.0, abs=1e-12)
  low, high = exploration.wilson(5, 10)
  assert (low, high) == (pytest.approx(0.23659, abs=1e-4),
                         pytest.approx(0.76341, abs=1e-4))
  assert all(math.isnan(v) for v in exploration.wilson(0, 0))
  for bad in ((4, 3), (-1, 3)):
    with pytest.raises(ValueError, match=r'A count of successes is in '
                       r'0\.\.total, got'):
      exploration.wilson(*bad)
  # Any level: 90% is narrower; 80% (z = 1.2816) too.
  low90, high90 = exploration.wilson(5, 10, level=0.9)
  assert 0.2366 < low90 < 0.5 < high90 < 0.7634
  low80, high80 = exploration.wilson(5, 10, level=0.8)
  assert low90 < low80 and high80 < high90
  assert low80 == pytest.approx(0.3122, abs=1e-4)  # By hand.
  with pytest.raises(ValueError, match=r'in \(0, 1\), got 95'):
    exploration.wilson(5, 10, level=95)


def test_fisher_exact_two_sided():
  assert exploration.fisher_exact(2, 2, 0, 2) == pytest.approx(1 / 3)
  assert exploration.fisher_exact(3, 3, 0, 3) == pytest.approx(0.1)
  assert exploration.fisher_exact(0, 3, 3, 3) == pytest.approx(0.1)
  assert exploration.fisher_exact(1, 3, 1, 3) == 1.0
  assert exploration.fisher_exact(0, 3, 0, 3) == 1.0
  # 5/5 against 1/5: 6 of 10 seeds found it. P(a has 5) = C(5, 5) C(5, 1)
  # / C(10, 6) = 5/210; the split as unlikely the other way, a has 1, is
  # 5/210 too; every other split is likelier.
  assert exploration.fisher_exact(5, 5, 1, 5) == pytest.approx(10 / 210)
  assert math.isnan(exploration.fisher_exact(0, 0, 1, 2))
  with pytest.raises(ValueError, match='3 successes of 2'):
    exploration.fisher_exact(3, 2, 0, 2)


def test_median_first_counts_seeds_without_a_success_as_larger():
  assert exploration.median_first([30, 10, 20], [100] * 3) == (20.0, False)
  assert exploration.median_first([30, 10, 20, 40], [100] * 4) == (25.0,
                                                                    False)
  # Median on a censored seed: "more than" its episodes stand in for it.
  assert exploration.median_first([None, 10, None], [400, 500, 300]) == (
      300.0, True)
  assert exploration.median_first([None, 10], [300, 500]) == (155.0, True)
  assert exploration.median_first([None, 10, 20], [100] * 3) == (20.0, False)
  # Runs of uneven length: the short censored seed (300 episodes) ranks by
  # its own count, below both successes: the median is at least 400.
  assert exploration.median_first([None, 400, 500], [300, 1000, 1000]) == (
      400.0, True)
  # A censored seed ranks above an equal first success.
  assert exploration.median_first([None, 300, 100], [300, 1000, 1000]) == (
      300.0, False)
  value, censored = exploration.median_first([], [])
  assert math.isnan(value) and not censored


def test_summary_of_three_seeds():
  runs = [run([0.0] * 7 + [0.99] * 3, seed=0),   # first 8, last 4: 3/4.
          run([0.99] + [0.0] * 9, seed=1),        # first 1, last 4: 0/4.
          run([0.0] * 10, seed=2)]                # never.
  s = exploration.summary(runs, window=4, rate=0.5, reps=200)
  assert s['seeds'] == 3 and s['episodes'] == [10, 10, 10]
  assert s['first_success'] == [8, 1, None]
  assert s['found'] == 2 and s['solved'] == 1
  assert s['found_ci'] == exploration.wilson(2, 3)
  assert s['solved_ci'] == exploration.wilson(1, 3)
  assert (s['median_first'], s['median_censored']) == (8.0, False)
  assert s['solved_at'] == [9, None, None]  # Seed 0: episodes 6-9.
  assert (s['median_solved_at'], s['median_solved_censored']) == (10.0, True)
  assert s['final_rate'] == pytest.approx(0.25)
  low, high = s['final_rate_ci']
  assert 0.0 <= low <= 0.25 <= high <= 0.75


def test_summary_leaves_out_runs_without_episodes():
  runs = [run([0.0, 0.99], seed=0), run([], seed=1), run([0.0, 0.0], seed=2)]
  s = exploration.summary(runs, window=2, reps=100)
  assert s['seeds'] == 2 and s['without_episodes'] == [1]
  assert s['episodes'] == [2, 2] and s['first_success'] == [2, None]
  assert s['final_rate'] == pytest.approx(0.25)
  with pytest.raises(ValueError, match=r'No run \(baseline on deepsea_10, '
                     r'seeds \[1, 2\]\) has an episode yet'):
    exploration.summary([run([], seed=1), run([], seed=2)])


def test_deepest_so_far_and_the_depth_summary():
  depths = run([1.0, 3.0, 2.0, 5.0, 0.0])
  np.testing.assert_array_equal(exploration.deepest_so_far(depths).ys,
                                [1, 3, 3, 5, 5])
  summary = exploration.depth_summary([depths, run([2.0, 1.0], seed=1),
                                       run([], seed=2)])
  assert summary['deepest'] == [5, 2, None]
  assert summary['median_deepest'] == 3.5
  assert math.isnan(exploration.depth_summary([run([])])['median_deepest'])


def test_found_so_far_is_one_from_the_first_success_on():
  r = run([0.0, -0.01, 0.99, 0.0, 0.99])
  found = exploration.found_so_far(r)
  np.testing.assert_array_equal(found.ys, [0, 0, 1, 1, 1])
  np.testing.assert_array_equal(found.xs, r.xs)
  np.testing.assert_array_equal(exploration.found_so_far(run([0.0, 0.0])).ys,
                                [0, 0])
  # Its last value per bin, over seeds: the fraction that found it by then.
  never = exploration.found_so_far(run([0.0] * 5, seed=1))
  ends = [scores.bin_curve(f.xs, f.ys, np.array([0.0, 25.0, 50.0]),
                           reduce='last') for f in (found, never)]
  np.testing.assert_array_equal(np.mean(ends, 0), [0.0, 0.5])
  # A seed that found it and stopped early stays found to `until`; one
  # that found nothing ends where it ended.
  np.testing.assert_array_equal(
      exploration.found_so_far(r, until=90.0).xs, [10, 20, 30, 40, 50, 90])
  assert exploration.found_so_far(r, until=90.0).ys[-1] == 1.0
  np.testing.assert_array_equal(
      exploration.found_so_far(run([0.0, 0.0]), until=90.0).xs, [10, 20])
  np.testing.assert_array_equal(
      exploration.found_so_far(r, until=50.0).xs, r.xs)


def test_found_curve_over_seeds_never_drops():
  """Seed 0 finds it in episode 2 and stops after 3 episodes; seeds 1 and
  2 run 9 episodes and find nothing (episode k ends at frame 10 k, in bin
  k of 9): the fraction found is 0, then 1/3 to the end (not 1/3, then 0
  in the bins seed 0 did not run)."""
  until = 90.0
  runs = [run([0.0, 0.99, 0.0]), run([0.0] * 9, seed=1),
          run([0.0] * 9, seed=2)]
  found = [exploration.found_so_far(r, until=until) for r in runs]
  binned = scores.bin_runs(found, scores.frame_grid(until, 9), reduce='last')
  np.testing.assert_array_equal(binned[0], [np.nan, 0.0] + [1.0] * 7)
  np.testing.assert_allclose(np.mean(binned, 0), [np.nan, 0.0] + [1 / 3] * 7)
  # One that found nothing and stopped early is left out after its end.
  short = exploration.found_so_far(run([0.0] * 3, seed=3), until=until)
  curve = scores.bin_curve(short.xs, short.ys, scores.frame_grid(until, 9),
                           reduce='last')
  np.testing.assert_array_equal(curve[:4], [np.nan, 0.0, 0.0, 0.0])
  assert np.isnan(curve[4:]).all()


def test_right_moves_from_deepsea_scores():
  """k right moves cost k 0.01 / N; the treasure adds 1 (after N rights)."""
  cost = 0.01 / 14
  ys = [0.0, -3 * cost, -13 * cost, 1 - 14 * cost, 1e-12]
  moves = exploration.right_moves(run(ys), 14)
  np.testing.assert_array_equal(moves.ys, [0, 3, 13, 14, 0])
  assert not np.signbit(moves.ys).any()  # round(-1e-10) is -0.0.
  np.testing.assert_array_equal(moves.xs, run(ys).xs)
  # float32 sums, as an env's rewards add up, still count exactly, also
  # where N / cost magnifies their rounding.
  summed = np.float32(0)
  for _ in range(5):
    summed += np.float32(-cost)
  assert exploration.right_moves(run([summed]), 14).ys[0] == 5
  big = np.float32(0)
  for _ in range(400):
    big += np.float32(-0.01 / 400)
  assert exploration.right_moves(run([big + np.float32(1)]), 400).ys[0] == 400
  # Another move cost: --move_cost.
  assert exploration.right_moves(run([-0.01]), 10, move_cost=0.02).ys[0] == 5
  for free in (0.0, -0.01, float('nan')):
    with pytest.raises(ValueError, match='must be > 0; got move_cost='):
      exploration.right_moves(run([0.0]), 10, move_cost=free)


@pytest.mark.parametrize('score, why', [
    (-0.0003, '0.3'),     # Between two counts: another cost or size.
    (-0.02, '20'),        # More right moves than the episode has.
    (-0.01, '10'),        # N right moves, but no treasure.
    (0.995, '5'),         # A success with fewer than N right moves.
    (1.2, '-200'),        # A success above 1: noise of the windy variant.
])
def test_right_moves_refuse_scores_deepsea_cannot_give(score, why):
  with pytest.raises(ValueError, match=(
      rf'Episode 2 of baseline seed 0 on deepsea_10 scores {score:g}, which '
      r'deterministic DeepSea 10 with move cost 0.01 / 10 cannot give '
      rf'\({why} right moves; a success is 1 - 0.01, 10 right moves')):
    exploration.right_moves(run([0.0, score]), 10)


def test_reach_counts_count_episodes_at_least_that_deep():
  depths = run([1.0, 3.0, 2.0, 5.0, 0.0, 3.0])
  assert exploration.reach_counts(depths, [0, 2, 3, 4, 5, 6]) == [
      6, 4, 3, 1, 1, 0]
  # The first 3 episodes only (e.g. those before another seed's find).
  assert exploration.reach_counts(depths, [2, 3], episodes=3) == [2, 1]
  assert exploration.reach_counts(run([]), [0, 1]) == [0, 0]


def test_fisher_exact_matches_scipy_on_every_small_split():
  stats = pytest.importorskip('scipy.stats')
  for total_a in range(1, 6):
    for total_b in range(1, 6):
      for a in range(total_a + 1):
        for b in range(total_b + 1):
          expected = stats.fisher_exact(
              [[a, total_a - a], [b, total_b - b]])[1]
          assert exploration.fisher_exact(a, total_a, b, total_b) == (
              pytest.approx(expected, abs=1e-12)), (a, total_a, b, total_b)
