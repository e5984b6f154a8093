"""Hard-exploration statistics of a task with a rare success (DeepSea's
treasure): when each seed first succeeds, which seeds solve it, the
success rate over training.

An episode *succeeds* when its score exceeds `threshold` (DeepSea: the
treasure episode scores 1 - 0.01 = 0.99 after N moves right, every other
episode <= 0, so 0.5 tells them apart). A seed *finds* the treasure when
any episode succeeds, and *solves* the task when the success rate of its
last `window` episodes is at least `rate` (the policy goes for the
treasure, not an accident of exploration). Fractions of seeds come with a
Wilson score interval (honest at 3-5 seeds, unlike a bootstrap); episodes
to the first success are reported per seed and as the median over seeds,
where a seed that never succeeded counts as "more than its episodes".
"""
import dataclasses
import math

import numpy as np

from dreamer_tf.analysis import scores

THRESHOLD = 0.5
WINDOW = 100
RATE = 0.5


def successes(run, threshold=THRESHOLD):
  """The run with each score replaced by 1.0 (succeeded) or 0.0: its
  binned mean is the success rate."""
  return dataclasses.replace(run, ys=(run.ys > threshold).astype(np.float64))


def first_success(run, threshold=THRESHOLD):
  """1-based episode number of the run's first success (episodes in frame
  order), or None when no episode succeeded."""
  hits = np.flatnonzero(run.ys > threshold)
  return int(hits[0]) + 1 if hits.size else None


def solved(run, threshold=THRESHOLD, window=WINDOW, rate=RATE):
  """Whether the success rate of the run's last `window` episodes is at
  least `rate` (False for a run with fewer than `window` episodes)."""
  if run.ys.size < window:
    return False
  return bool(np.mean(run.ys[-window:] > threshold) >= rate)


def wilson(successes_count, total, level=0.95):
  """Wilson score interval (low, high) of a proportion; (nan, nan) for
  total 0."""
  if total == 0:
    return math.nan, math.nan
  z = {0.9: 1.6448536269514722, 0.95: 1.959963984540054,
       0.99: 2.5758293035489004}[level]
  p = successes_count / total
  centre = (p + z * z / (2 * total)) / (1 + z * z / total)
  half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (
      1 + z * z / total)
  return max(0.0, centre - half), min(1.0, centre + half)


def median_first(firsts, episodes):
  """Median over seeds of episodes to the first success, where a seed
  without one (None) ranks above every seed with one. Returns (value,
  censored): the median, or a lower bound of it and True when the median
  falls on a seed that never succeeded (its episode count stands in for
  its first success: "more than that")."""
  if not firsts:
    return math.nan, False
  order = sorted(
      (f if f is not None else math.inf, n) for f, n in zip(firsts, episodes))
  middle = order[(len(order) - 1) // 2:len(order) // 2 + 1]
  if any(math.isinf(f) for f, _ in middle):
    # A censored seed's first success is beyond its episode count n.
    return float(np.mean([n if math.isinf(f) else f for f, n in middle])), True
  return float(np.mean([f for f, _ in middle])), False


def summary(runs, threshold=THRESHOLD, window=WINDOW, rate=RATE, reps=2000,
            seed=0):
  """Statistics of one method's seeds (a list of scores.Run) on one task:
  seeds, episodes per seed, the first success per seed, the found and
  solved fractions with Wilson intervals, the median first success and
  the final success rate (last `window` episodes; mean over seeds, 95%
  bootstrap CI)."""
  firsts = [first_success(r, threshold) for r in runs]
  episodes = [int(r.ys.size) for r in runs]
  found = sum(f is not None for f in firsts)
  solved_count = sum(solved(r, threshold, window, rate) for r in runs)
  final = [float(np.mean(r.ys[-window:] > threshold)) if r.ys.size else
           math.nan for r in runs]
  final_mean, final_low, final_high = scores.bootstrap_ci(
      np.asarray(final), reps=reps, seed=seed)
  median, censored = median_first(firsts, episodes)
  return dict(
      seeds=len(runs), episodes=episodes, first_success=firsts,
      found=found, found_ci=wilson(found, len(runs)),
      solved=solved_count, solved_ci=wilson(solved_count, len(runs)),
      median_first=median, median_censored=censored,
      final_rate=final_mean, final_rate_ci=(final_low, final_high))
