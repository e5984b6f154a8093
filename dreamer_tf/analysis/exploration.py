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
where a seed that never succeeded counts as "more than its episodes"
(right-censored; see `median_first`).

On DeepSea the scores also say how the actor moves: `right_moves` turns
each episode's score into its number of right moves, the propensity a
method has to go where the treasure is, long before it finds it.
"""
import dataclasses
import math
import re
import statistics

import numpy as np

from dreamer_tf.analysis import scores

THRESHOLD = 0.5
WINDOW = 100
RATE = 0.5
MOVE_COST = 0.01  # bsuite's unscaled_move_cost (envs/deepsea.py).


def deepsea_task_size(task):
  """N of a DeepSea task key ('deepsea_14'), None for another task."""
  match = re.fullmatch(r'deepsea_([0-9]+)', task)
  return int(match.group(1)) if match else None


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


def solved_at(run, threshold=THRESHOLD, window=WINDOW, rate=RATE):
  """1-based episode number at which the success rate of the last
  `window` episodes first reaches `rate`, or None if it never does. The
  time to solve, as opposed to a first success that may be luck: on
  DeepSea 10 one baseline found the treasure at episode 154 and solved
  the task from episode ~2,400 (docs/benchmarks/xp-deepsea.md)."""
  hits = (run.ys > threshold).astype(np.float64)
  if hits.size < window:
    return None
  counts = np.convolve(hits, np.ones(window), mode='valid')  # [N-window+1]
  # Counts are integers: compare without dividing (rate * window may be
  # fractional).
  reached = np.flatnonzero(counts >= rate * window - 1e-9)
  return int(reached[0]) + window if reached.size else None


def deepest_so_far(run):
  """A run of per-episode diagonal depths (ys [E], `replay_moves.
  diagonal_depths`) with each replaced by the deepest reached up to that
  episode (ys [E], non-decreasing): its last value per bin
  (`scores.bin_curve(..., reduce='last')`), averaged over seeds, is how
  far down the diagonal the method has got by the bin's end."""
  return dataclasses.replace(
      run, ys=np.maximum.accumulate(run.ys).astype(np.float64))


def found_so_far(run, threshold=THRESHOLD, until=None):
  """The run with each score replaced by 1.0 from its first success on,
  else 0.0 (ys [E], non-decreasing): its last value per bin
  (`scores.bin_curve(..., reduce='last')`), averaged over seeds, is the
  fraction of seeds that have found a success by the bin's end, the
  time-to-first-success curve of a method (a seed that never succeeds
  stays at 0: censored, not left out). With `until` (frames), a run that
  found one and ended earlier gets a last point at `until`: found stays
  found, so a seed stopped early still counts where others ran on (one
  that found none ends where it ended: what it would have done is
  unknown)."""
  found = deepest_so_far(successes(run, threshold))
  if (until is None or not found.ys.size or not found.ys[-1]
      or found.xs[-1] >= until):
    return found
  return dataclasses.replace(found, xs=np.append(found.xs, float(until)),
                             ys=np.append(found.ys, 1.0))


def right_moves(run, size, move_cost=MOVE_COST, threshold=THRESHOLD):
  """The run of a deterministic DeepSea N x N with each episode's score
  (ys [E]) replaced by its number of right moves (ys [E], integers 0..N).

  Each right move costs move_cost / N and the treasure adds 1
  (envs/deepsea.py), so an episode that made k right moves scores
  treasure - k move_cost / N, and k = (treasure - score) N / move_cost,
  where treasure is 1 for a success (score > threshold) and 0 otherwise.
  The treasure takes N right moves and N right moves reach it, so a
  success is k = N and any other episode k <= N - 1. Raises ValueError
  for a score that gives no such k (within 0.05 of a whole number: the
  float32 rewards' rounding grows with N / move_cost): not the scores of
  deterministic DeepSea N with this move cost (another size or cost, or
  the windy variant, whose failed right moves and noise the scores
  carry), or for a move_cost <= 0 (free moves leave no trace in the
  scores)."""
  if not move_cost > 0:
    raise ValueError(f'Right moves are counted from their cost, which must '
                     f'be > 0; got move_cost={move_cost!r}.')
  treasure = run.ys > threshold  # [E]
  moves = (treasure - run.ys) * size / move_cost  # [E]
  counts = np.round(moves)
  bad = np.flatnonzero((np.abs(moves - counts) > 0.05)
                       | np.where(treasure, counts != size,
                                  (counts < 0) | (counts > size - 1)))
  if bad.size:
    i = bad[0]
    raise ValueError(
        f'Episode {i + 1} of {run.method} seed {run.seed} on {run.task} '
        f'scores {run.ys[i]:g}, which deterministic DeepSea {size} with '
        f'move cost {move_cost:g} / {size} cannot give ({moves[i]:g} right '
        f'moves; a success is 1 - {move_cost:g}, {size} right moves, any '
        f'other episode -k {move_cost:g} / {size} for k = 0..{size - 1}). '
        'Right moves are counted only for that environment: pass its cost '
        '(DeepSeaEnv.unscaled_move_cost; launch.exploration --move_cost); '
        'the windy variant has no count.')
  return dataclasses.replace(run, ys=counts + 0.0)  # -0.0 -> 0.0


def depth_summary(runs):
  """Diagonal depths of one method's seeds (runs with ys [E] per-episode
  depths): `deepest` [seeds], the deepest row each seed reached (None
  without an episode), and `median_deepest`, the median over the seeds
  that have one (NaN if none)."""
  deepest = [int(r.ys.max()) if r.ys.size else None for r in runs]
  known = [d for d in deepest if d is not None]
  return dict(deepest=deepest,
              median_deepest=float(np.median(known)) if known else math.nan)


def reach_counts(run, rows, episodes=None):
  """How many episodes of a run of per-episode diagonal depths (ys [E],
  `replay_moves.diagonal_depths`; its first `episodes`, None: all) reached
  at least each diagonal row of `rows`: [len(rows)] ints. An episode that
  reached row r passed every row above it, so the counts fall with r; how
  fast they fall says how often a method went how deep, where the deepest
  row alone can be one lucky episode."""
  ys = run.ys if episodes is None else run.ys[:episodes]  # [E']
  return [int(np.sum(ys >= row)) for row in rows]


def wilson(successes_count, total, level=0.95):
  """Wilson score interval (low, high) of a proportion at confidence
  `level` (0 < level < 1); (nan, nan) for total 0. ValueError for a
  count outside 0..total."""
  if not 0 < level < 1:
    raise ValueError(f'A confidence level is in (0, 1), got {level}.')
  if not 0 <= successes_count <= total:
    raise ValueError(f'A count of successes is in 0..total, got '
                     f'{successes_count} of {total}.')
  if total == 0:
    return math.nan, math.nan
  z = statistics.NormalDist().inv_cdf((1 + level) / 2)
  p = successes_count / total
  centre = (p + z * z / (2 * total)) / (1 + z * z / total)
  half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (
      1 + z * z / total)
  return max(0.0, centre - half), min(1.0, centre + half)


def fisher_exact(successes_a, total_a, successes_b, total_b):
  """Two-sided p of Fisher's exact test that two proportions are equal
  (seeds that found the treasure in one method against another): the
  chance, with the margins fixed (hypergeometric), of a split at most as
  likely as the observed one (the two-sided p of R's fisher.test and
  scipy.stats.fisher_exact). 2/2 against 0/2 gives 1/3, 3/3 against 0/3
  1/10: three seeds per arm cannot reach p < 0.05. ValueError for counts
  outside 0..total; nan when a method has no seeds."""
  for count, total in ((successes_a, total_a), (successes_b, total_b)):
    if not 0 <= count <= total:
      raise ValueError(f'{count} successes of {total}: a count is 0 to the '
                       'total.')
  if total_a == 0 or total_b == 0:
    return math.nan
  found, seeds = successes_a + successes_b, total_a + total_b
  # Ways for method a to hold k of the `found` successes; over
  # comb(seeds, found) they are the chances (integers: ties stay exact).
  ways = {k: math.comb(total_a, k) * math.comb(total_b, found - k)
          for k in range(max(0, found - total_b), min(found, total_a) + 1)}
  observed = ways[successes_a]
  return sum(w for w in ways.values() if w <= observed) / math.comb(
      seeds, found)


def median_first(firsts, episodes):
  """Median over seeds of episodes to the first success, with right
  censoring: a seed without one (None) is known only to need more than
  its episode count n, so n stands in for it and ranks above an equal
  first success. Returns (value, censored): the median, and True when a
  censored seed sits at or below the middle of the order, where its
  unknown value could move the median up: the value is then a lower bound
  ("at least"). Seeds of uneven length are handled by their own n: with
  firsts [None, 400, 500] and episodes [300, 1000, 1000] the median is at
  least 400, not 500."""
  if not firsts:
    return math.nan, False
  order = sorted(
      (n, True) if f is None else (f, False) for f, n in zip(firsts, episodes))
  upper = len(order) // 2
  middle = order[(len(order) - 1) // 2:upper + 1]
  censored = any(c for _, c in order[:upper + 1])
  return float(np.mean([v for v, _ in middle])), censored


def summary(runs, threshold=THRESHOLD, window=WINDOW, rate=RATE, reps=2000,
            seed=0):
  """Statistics of one method's seeds (a list of scores.Run) on one task:
  seeds, episodes per seed, the first success per seed, the found and
  solved fractions with Wilson intervals, the median first success, the
  episode each seed first reached the solved rate (`solved_at`) and their
  median (censored like the first success), and
  the final success rate (last `window` episodes, or all of a shorter
  run's; mean over seeds, 95% bootstrap CI).

  Runs without an episode yet (a sweep's run that has just started) are
  left out of every statistic and listed by seed in `without_episodes`;
  ValueError when no run has an episode."""
  empty = [r.seed for r in runs if r.ys.size == 0]
  if len(empty) == len(runs):
    names = f'{runs[0].method} on {runs[0].task}, ' if runs else ''
    raise ValueError(
        f'No run ({names}seeds {empty}) has an episode yet; wait for the '
        'first episodes or leave these runs out.')
  runs = [r for r in runs if r.ys.size]
  firsts = [first_success(r, threshold) for r in runs]
  episodes = [int(r.ys.size) for r in runs]
  found = sum(f is not None for f in firsts)
  solved_count = sum(solved(r, threshold, window, rate) for r in runs)
  final = [float(np.mean(r.ys[-window:] > threshold)) for r in runs]
  final_mean, final_low, final_high = scores.bootstrap_ci(
      np.asarray(final), reps=reps, seed=seed)
  median, censored = median_first(firsts, episodes)
  solves = [solved_at(r, threshold, window, rate) for r in runs]
  median_solve, solve_censored = median_first(solves, episodes)
  return dict(
      seeds=len(runs), episodes=episodes, first_success=firsts,
      solved_at=solves, median_solved_at=median_solve,
      median_solved_censored=solve_censored,
      without_episodes=empty,
      found=found, found_ci=wilson(found, len(runs)),
      solved=solved_count, solved_ci=wilson(solved_count, len(runs)),
      median_first=median, median_censored=censored,
      final_rate=final_mean, final_rate_ci=(final_low, final_high))
