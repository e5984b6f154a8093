"""Score curves and benchmark statistics (spec §5.6, §6); numpy only.

Two sources of episode scores become the same `Run` records:
  * our run directories: `scores.jsonl` (one line per finished episode,
    `step` = env frames, `episode/score`, `kind` train|eval) and the run
    record `run.json` (env and seed, dreamer_tf/run/record.py);
  * official score files (gzip JSON list of {task, method, seed, xs, ys},
    xs = env frames, ys = episode returns or binned means, some null).
Task keys follow the score files: 'atari_pong', 'dmc_walker_walk'.

Our runs are named by `collect`'s label, or by their experiment when an
experiment sweep made them (dreamer_tf/sweep/experiments.py).

Statistics: curves binned on a common frame grid with the mean and a
bootstrap band over seeds; the score at a budget (mean of each seed's
episodes with frames in [lo, hi], then mean over the seeds that have one);
the final and best score of a run (means of K consecutive episodes);
scores relative to a baseline method; Atari human-normalised scores and
mean / median / IQM over tasks with stratified bootstrap confidence
intervals. Random numbers come from a
seeded generator, so every figure is reproducible.
"""
import ast
import dataclasses
import glob
import gzip
import json
import os
import re
import warnings

import numpy as np

from dreamer_tf import files
from dreamer_tf.envs.base import suggest
from dreamer_tf.run import DONE_FILE
from dreamer_tf.run import logger as log_lib
from dreamer_tf.run import record as record_lib
from dreamer_tf.sweep import experiments as sweep_experiments

METHOD = 'dreamer_tf'

# Atari random and human ("gamer") scores of the 57 games: the standard
# table of the DQN papers (human_at30; dqn_zoo atari_data, `atari57_gamer`
# of the official baselines.yaml). Task key -> (random, human).
ATARI_GAMER = {
    'atari_alien': (227.8, 7127.7),
    'atari_amidar': (5.8, 1719.5),
    'atari_assault': (222.4, 742.0),
    'atari_asterix': (210.0, 8503.3),
    'atari_asteroids': (719.1, 47388.7),
    'atari_atlantis': (12850.0, 29028.1),
    'atari_bank_heist': (14.2, 753.1),
    'atari_battle_zone': (2360.0, 37187.5),
    'atari_beam_rider': (363.9, 16926.5),
    'atari_berzerk': (123.7, 2630.4),
    'atari_bowling': (23.1, 160.7),
    'atari_boxing': (0.1, 12.1),
    'atari_breakout': (1.7, 30.5),
    'atari_centipede': (2090.9, 12017.0),
    'atari_chopper_command': (811.0, 7387.8),
    'atari_crazy_climber': (10780.5, 35829.4),
    'atari_defender': (2874.5, 18688.9),
    'atari_demon_attack': (152.1, 1971.0),
    'atari_double_dunk': (-18.6, -16.4),
    'atari_enduro': (0.0, 860.5),
    'atari_fishing_derby': (-91.7, -38.7),
    'atari_freeway': (0.0, 29.6),
    'atari_frostbite': (65.2, 4334.7),
    'atari_gopher': (257.6, 2412.5),
    'atari_gravitar': (173.0, 3351.4),
    'atari_hero': (1027.0, 30826.4),
    'atari_ice_hockey': (-11.2, 0.9),
    'atari_jamesbond': (29.0, 302.8),
    'atari_kangaroo': (52.0, 3035.0),
    'atari_krull': (1598.0, 2665.5),
    'atari_kung_fu_master': (258.5, 22736.3),
    'atari_montezuma_revenge': (0.0, 4753.3),
    'atari_ms_pacman': (307.3, 6951.6),
    'atari_name_this_game': (2292.3, 8049.0),
    'atari_phoenix': (761.4, 7242.6),
    'atari_pitfall': (-229.4, 6463.7),
    'atari_pong': (-20.7, 14.6),
    'atari_private_eye': (24.9, 69571.3),
    'atari_qbert': (163.9, 13455.0),
    'atari_riverraid': (1338.5, 17118.0),
    'atari_road_runner': (11.5, 7845.0),
    'atari_robotank': (2.2, 11.9),
    'atari_seaquest': (68.4, 42054.7),
    'atari_skiing': (-17098.1, -4336.9),
    'atari_solaris': (1236.3, 12326.7),
    'atari_space_invaders': (148.0, 1668.7),
    'atari_star_gunner': (664.0, 10250.0),
    'atari_surround': (-10.0, 6.5),
    'atari_tennis': (-23.8, -8.3),
    'atari_time_pilot': (3568.0, 5229.2),
    'atari_tutankham': (11.4, 167.6),
    'atari_up_n_down': (533.4, 11693.2),
    'atari_venture': (0.0, 1187.5),
    'atari_video_pinball': (16256.9, 17667.9),
    'atari_wizard_of_wor': (563.5, 4756.5),
    'atari_yars_revenge': (3092.9, 54576.9),
    'atari_zaxxon': (32.5, 9173.3),
}

# The 26 games of Atari100k.
ATARI100K = (
    'alien', 'amidar', 'assault', 'asterix', 'bank_heist', 'battle_zone',
    'boxing', 'breakout', 'chopper_command', 'crazy_climber',
    'demon_attack', 'freeway', 'frostbite', 'gopher', 'hero', 'jamesbond',
    'kangaroo', 'krull', 'kung_fu_master', 'ms_pacman', 'pong',
    'private_eye', 'qbert', 'road_runner', 'seaquest', 'up_n_down')


class EmptyWindowError(ValueError):
  """No run has an episode in the requested frame window."""


@dataclasses.dataclass
class Run:
  """Episode scores of one seed of one method on one task.

  xs: [N] env frames at the end of each episode (or bin), ascending.
  ys: [N] episode returns (finite; null points are dropped on load).
  """
  task: str
  method: str
  seed: object
  xs: np.ndarray
  ys: np.ndarray
  source: str = ''


# --- Task names --------------------------------------------------------


def task_key(name):
  """Our env id or a score-file task -> the score-file task key.

  'atari100k:Pong', 'atari:Pong', 'atari:pong' -> 'atari_pong';
  'dmc:walker_walk', 'dmc_vision:cup_catch' -> 'dmc_walker_walk',
  'dmc_ball_in_cup_catch'; 'gym:CartPole-v1' -> 'gym_CartPole-v1'.
  A name without ':' is taken to be a key already.
  """
  suite, sep, task = name.partition(':')
  if not sep:
    return name
  if not suite or not task:
    raise ValueError(f'Env id {name!r} is not of the form suite:task.')
  if suite in ('atari', 'atari100k'):
    game = re.sub(r'(?<!^)(?<!_)(?=[A-Z])', '_', task).lower()
    return 'atari_' + {'james_bond': 'jamesbond'}.get(game, game)
  if suite in ('dmc', 'dmc_vision'):
    return 'dmc_' + re.sub(r'^cup_', 'ball_in_cup_', task)
  return f'{suite}_{task}'


def resolve_tasks(requested, available):
  """Task keys of `requested` (env ids or keys), each one in `available`."""
  keys = []
  for name in requested:
    key = task_key(name)
    if key not in available:
      raise ValueError(
          f'Unknown task {name!r} (key {key!r}){suggest(key, available)}; '
          f'the runs and reference files have: {sorted(available)}.')
    keys.append(key)
  return keys


# --- Loading -----------------------------------------------------------


def load_run(path, kind='train', method=METHOD):
  """One run directory -> Run of its `kind` episodes ('train', 'eval' or
  None for all). Task and seed come from the run record (`run.json`, see
  dreamer_tf/run/record.py)."""
  try:
    record = record_lib.load(path)
  except record_lib.RunRecordError as e:
    raise FileNotFoundError(f'{e} Cannot tell its task.') from None
  records = log_lib.read_scores(os.path.join(path, 'scores.jsonl'), kind)
  xs = [float(r['step']) for r in records]
  ys = [float(r['episode/score']) for r in records]
  xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
  order = np.argsort(xs, kind='stable')
  return Run(task_key(record.env), method, record.seed, xs[order],
             ys[order], path)


def find_runs(patterns, markers=('scores.jsonl',)):
  """Run directories matched by glob `patterns`: a directory holding one of
  the files `markers` is a run; a matched directory without one
  contributes the run directories below it, at any depth (a sweep root:
  <root>/<task>/<experiment>/seed<k>), without searching inside runs."""
  found = []
  for pattern in patterns:
    for path in sorted(glob.glob(os.path.expanduser(pattern))):
      if os.path.basename(path) in markers:
        path = os.path.dirname(path) or '.'
      if not os.path.isdir(path):
        continue
      below = []
      for folder, subfolders, files in os.walk(path):
        if any(m in files for m in markers):
          below.append(folder)
          subfolders[:] = []  # Not into a run's replay/ or ckpt/.
      found += sorted(below)
  found = list(dict.fromkeys(os.path.normpath(p) for p in found))
  if not found:
    raise FileNotFoundError(
        f'No run directories match {list(patterns)}: a run directory '
        'holds scores.jsonl and config.gin (launch/train.py --logdir).')
  return found


def run_method(path, default=METHOD):
  """The method name of our run in `path`: its experiment (with its grid
  point, if any) when an experiment sweep made it, else `default`."""
  try:
    env = record_lib.load(path).env
  except record_lib.RunRecordError:
    return default
  return sweep_experiments.of_run(path, env)[2] or default


def load_runs(patterns, kind='train', method=METHOD):
  """All runs matched by the glob `patterns` (see find_runs)."""
  return [load_run(p, kind, method) for p in find_runs(patterns)]


def load_reference(path, method=None):
  """An official score file -> Runs (null points dropped). `method`
  overrides the file's method names (e.g. to tell two files apart)."""
  with open(path, 'rb') as f:
    data = f.read()
  if data[:2] == b'\x1f\x8b':
    data = gzip.decompress(data)
  runs = []
  for record in json.loads(data):
    xs = np.asarray([np.nan if x is None else x for x in record['xs']],
                    np.float64)
    ys = np.asarray([np.nan if y is None else y for y in record['ys']],
                    np.float64)
    keep = np.isfinite(xs) & np.isfinite(ys)
    order = np.argsort(xs[keep], kind='stable')
    runs.append(Run(record['task'], method or record['method'],
                    record['seed'], xs[keep][order], ys[keep][order], path))
  return runs


def save_reference(path, runs):
  """Writes `runs` as a score file in the official format that
  `load_reference` reads back unchanged (gzip JSON when `path` ends in
  .gz): a list of {task, method, seed, xs, ys}. So a sweep's curves can be
  kept and shared without its run directories. Atomic: a reader sees the
  old file or the new one."""
  records = [dict(task=r.task, method=r.method, seed=r.seed,
                  xs=[float(x) for x in r.xs], ys=[float(y) for y in r.ys])
             for r in runs]
  data = json.dumps(records, separators=(',', ':')).encode()
  if path.endswith('.gz'):
    data = gzip.compress(data, mtime=0)  # The same runs, the same bytes.
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  return files.write_atomic(path, data)


def select_methods(table, methods):
  """The table with only `methods` ({task: {method: [Run]}}); tasks left
  without any are dropped. Raises ValueError on a method no task has."""
  available = list(dict.fromkeys(m for t in table.values() for m in t))
  for method in methods:
    if method not in available:
      raise ValueError(
          f'Unknown method {method!r}{suggest(method, available)}; the runs '
          f'have: {available}.')
  selected = {task: {m: r for m, r in per.items() if m in methods}
              for task, per in table.items()}
  return {task: per for task, per in selected.items() if per}


def by_task(runs):
  """{task: {method: [Run]}} in first-seen order."""
  table = {}
  for run in runs:
    table.setdefault(run.task, {}).setdefault(run.method, []).append(run)
  return table


def collect(run_patterns=(), reference_paths=(), tasks=(), kind='train',
            label=METHOD, by_experiment=True, finished_only=False):
  """Our runs and reference runs of the selected tasks.

  label: the method name of our runs, or one name per run pattern (e.g.
  to compare grid points of a sweep). by_experiment: runs that an
  experiment sweep made are named by their experiment instead (see
  `run_method`); pass False when the labels should name every run (the
  launchers do when --label is given). Tasks: `tasks` (env ids or keys) if
  given, else those of our runs, else those of the reference files.
  Reference methods are named by the file's method, or by the file name
  when another file or one of our labels has that name. finished_only:
  leave out our runs that have not spent their budget (no done.json; a
  warning counts them), e.g. so that a score file keeps only final runs.
  Returns (task keys, {task: {method: [Run]}}).
  """
  if not run_patterns and not reference_paths:
    raise ValueError('Nothing to read: pass run directories (--runs) '
                     'and/or reference score files (--reference).')
  labels = [label] if isinstance(label, str) else list(label)
  if len(labels) == 1:
    labels *= len(run_patterns)
  if len(labels) != len(run_patterns):
    raise ValueError(f'Got {len(labels)} labels for {len(run_patterns)} '
                     'run patterns; pass one label, or one per pattern.')
  ours, seen, unfinished = [], set(), []
  for pattern, name in zip(run_patterns, labels):
    for path in find_runs([pattern]):
      if path in seen:
        continue
      seen.add(path)
      if finished_only and not os.path.exists(os.path.join(path, DONE_FILE)):
        unfinished.append(path)
        continue
      ours.append(load_run(path, kind, run_method(path, name)
                           if by_experiment else name))
  if unfinished:
    if not ours and not reference_paths:
      raise ValueError(
          f'None of the {len(unfinished)} runs matched is finished (no '
          f'{DONE_FILE}); drop --finished_only (finished_only=False) to '
          'read running and stopped runs too.')
    warnings.warn(f'Left out {len(unfinished)} unfinished run(s) (no '
                  f'{DONE_FILE}): {", ".join(unfinished)}')
  refs = [load_reference(p) for p in reference_paths]
  methods = [{r.method for r in runs} for runs in refs]
  for i, (path, runs) in enumerate(zip(reference_paths, refs)):
    others = set(labels).union(
        *(m for j, m in enumerate(methods) if j != i))
    if methods[i] & others:
      name = os.path.basename(path).split('.')[0]
      for run in runs:
        run.method = name
  everything = ours + [r for runs in refs for r in runs]
  available = list(dict.fromkeys(r.task for r in everything))
  if tasks:
    keys = resolve_tasks(tasks, available)
  else:
    keys = list(dict.fromkeys(r.task for r in ours or everything))
  table = by_task(r for r in everything if r.task in keys)
  return keys, {k: table[k] for k in keys}


# --- Curves ------------------------------------------------------------


def frame_grid(max_frames, bins):
  """[bins + 1] bin edges from 0 to max_frames."""
  if max_frames <= 0 or bins < 1:
    raise ValueError(f'Need max_frames > 0 and bins >= 1, got '
                     f'{max_frames} and {bins}.')
  return np.linspace(0.0, float(max_frames), int(bins) + 1)


BIN_REDUCTIONS = ('mean', 'last')


def last_frame(methods):
  """The last frame of any run of one task's {method: [Run]} (0.0 when no
  run has a point)."""
  return max((float(r.xs.max()) for runs in methods.values() for r in runs
              if r.xs.size), default=0.0)


def bin_curve(xs, ys, edges, reduce='mean'):
  """[K] one value per bin of the ys with x in [edges[k], edges[k+1]) (the
  last bin closed). reduce: 'mean' of the bin's ys (NaN for an empty
  bin; points outside the grid are dropped), or 'last': what a running total
  or maximum has reached by the bin's end, the y of the latest point up
  to it (the latest in order among equal xs, points before the grid
  included). A bin without a point of its own carries that value while
  the run goes on (it has a point at or after the bin's start); bins
  before the run's first point and after its last are NaN."""
  if reduce not in BIN_REDUCTIONS:
    raise ValueError(f'reduce is one of {BIN_REDUCTIONS}, got {reduce!r}.')
  xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
  bins = len(edges) - 1
  if reduce == 'last':
    binned = np.full(bins, np.nan)
    if not xs.size:
      return binned
    order = np.argsort(xs, kind='stable')
    xs, ys = xs[order], ys[order]
    # The index of the latest point before each bin's end (the last
    # bin's end included).
    latest = np.searchsorted(xs, edges[1:], side='left') - 1  # [K]
    latest[-1] = np.searchsorted(xs, edges[-1], side='right') - 1
    going = (latest >= 0) & (xs[-1] >= np.asarray(edges[:-1]))
    binned[going] = ys[latest[going]]
    return binned
  index = np.searchsorted(edges, xs, side='right') - 1
  index[xs == edges[-1]] = bins - 1
  inside = (index >= 0) & (index < bins)
  sums = np.bincount(index[inside], ys[inside], minlength=bins)
  counts = np.bincount(index[inside], minlength=bins)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def bin_runs(runs, edges, reduce='mean'):
  """[R, K] binned curves of `runs` on a common grid (reduce: see
  `bin_curve`)."""
  return np.stack([bin_curve(r.xs, r.ys, edges, reduce) for r in runs]) \
      if runs else np.zeros((0, len(edges) - 1))


def bootstrap_band(curves, level=0.95, reps=1000, seed=0):
  """Mean over seeds of [R, K] curves and a bootstrap confidence band.

  Seeds are resampled with replacement; each resample's mean ignores
  seeds without data in a bin. Returns (mean, low, high), each [K], NaN
  where no seed has data.
  """
  curves = np.asarray(curves, np.float64)
  count = curves.shape[0]
  if count == 0:
    raise ValueError('No curves to average.')
  rng = np.random.default_rng(seed)
  samples = curves[rng.integers(0, count, (reps, count))]  # [reps, R, K]
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', RuntimeWarning)
    mean = np.nanmean(curves, 0)
    means = np.nanmean(samples, 1)
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(means, [tail, 100 - tail], axis=0)
  return mean, low, high


# --- Final and best scores of a run ------------------------------------


def episode_means(run, count):
  """Mean score of every `count` consecutive episodes of the run (in frame
  order): [N - count + 1]; one mean of all N episodes when N < count;
  empty without episodes."""
  if count < 1:
    raise ValueError(f'Need at least one episode per window, got {count}.')
  if run.ys.size < count:
    return run.ys[None].mean(1) if run.ys.size else np.zeros(0)
  return np.lib.stride_tricks.sliding_window_view(run.ys, count).mean(1)


def final_score(run, count):
  """Mean of the run's last `count` episodes (NaN without episodes)."""
  means = episode_means(run, count)
  return float(means[-1]) if means.size else float('nan')


def best_score(run, count):
  """Best mean of `count` consecutive episodes (NaN without episodes)."""
  means = episode_means(run, count)
  return float(means.max()) if means.size else float('nan')


NORMALIZE_MODES = ('ratio', 'difference')


def relative_to(table, baseline, count, mode='ratio'):
  """Scores relative to the `baseline` method's final score on their task.

  table: {task: {method: [Run]}}. The baseline's final score b on a task
  is the mean over its seeds with episodes of `final_score(run, count)`.
  `mode`:
    'ratio':      y / b. A b that is not positive, or is ~0 (below 1e-6
                  of the largest absolute score of the task), is refused
                  with a ValueError: dividing by it would blow the curves
                  up or flip them.
    'difference': y - b, for any b: tasks whose baseline scores <= 0
                  (DeepSea without the treasure, MountainCar's -200).
  A task without baseline runs is refused. Returns a new table (the Runs
  are copies).
  """
  if mode not in NORMALIZE_MODES:
    raise ValueError(f'Unknown normalisation {mode!r}; use one of '
                     f'{list(NORMALIZE_MODES)}.')
  result = {}
  for task, methods in table.items():
    if baseline not in methods:
      raise ValueError(
          f'Cannot normalise {task!r} by {baseline!r}'
          f'{suggest(baseline, methods)}: that task has runs of '
          f'{list(methods)} only.')
    finals = [final_score(r, count) for r in methods[baseline]]
    finals = [f for f in finals if not np.isnan(f)]  # Seeds with episodes.
    if not finals:
      raise ValueError(
          f'Cannot normalise {task!r} by {baseline!r}: it has no final '
          f'score (no episodes in its last {count}).')
    value = float(np.mean(finals))
    if mode == 'ratio':
      scale = max((float(np.abs(r.ys).max()) for runs in methods.values()
                   for r in runs if r.ys.size), default=0.0)
      if value <= 1e-6 * max(scale, 1e-12):
        raise ValueError(
            f'Cannot normalise {task!r} by {baseline!r}: its final score '
            f'(mean of the last {count} episodes over its seeds) is '
            f'{value:g}, not clearly positive, so a ratio is meaningless. '
            'Use the difference from it instead (launch.plot '
            '--normalize_by=difference), or plot raw scores.')
    relate = np.divide if mode == 'ratio' else np.subtract
    result[task] = {
        method: [dataclasses.replace(r, ys=relate(r.ys, value)) for r in runs]
        for method, runs in methods.items()}
  return result


# --- Scores at a budget ------------------------------------------------


def window_mean(run, lo, hi):
  """Mean score of the run's episodes with frames in [lo, hi], or NaN."""
  mask = (run.xs >= lo) & (run.xs <= hi)
  return float(run.ys[mask].mean()) if mask.any() else float('nan')


def budget_score(runs, lo, hi):
  """Score at a budget: per seed the mean of its episodes in [lo, hi]
  frames, then the mean over the seeds that have such an episode.

  Returns (mean, [S] per-seed means of those seeds). Raises
  EmptyWindowError when no run has an episode in the window.
  """
  if lo > hi:
    raise ValueError(f'Empty frame window [{lo}, {hi}]: lo > hi.')
  values = np.asarray([window_mean(r, lo, hi) for r in runs], np.float64)
  values = values[np.isfinite(values)]
  if not values.size:
    spans = sorted({(float(r.xs.min()), float(r.xs.max())) for r in runs
                    if r.xs.size})
    names = sorted({f'{r.method}/{r.task}' for r in runs})
    raise EmptyWindowError(
        f'No episode of {names or "any run"} ends in [{lo:g}, {hi:g}] '
        f'frames; the runs span {[f"{a:g}-{b:g}" for a, b in spans]}.')
  return float(values.mean()), values


# --- Normalisation and aggregates --------------------------------------


def load_baselines(path, table='atari57_gamer'):
  """{task: (low, high)} of one table of a baselines.yaml file.

  Uses PyYAML when installed; otherwise reads the file's simple
  `table:` / `  task: [low, high]` layout.
  """
  with open(path) as f:
    text = f.read()
  try:
    import yaml  # pylint: disable=import-outside-toplevel
    tables = yaml.safe_load(text)
  except ImportError:
    tables, current = {}, None
    for line in text.splitlines():
      line = line.split('#')[0].rstrip()
      if not line:
        continue
      if not line[0].isspace():
        current = tables.setdefault(line.rstrip(':').strip(), {})
      elif current is not None:
        key, _, value = line.strip().partition(':')
        current[key.strip()] = ast.literal_eval(value.strip())
  if table not in tables:
    raise ValueError(f'No table {table!r} in {path}; it has '
                     f'{sorted(tables)}.')
  return {k: (float(v[0]), float(v[1])) for k, v in tables[table].items()}


def normalise(scores, task, baselines=None):
  """(score - low) / (high - low) with the task's baseline bounds
  (default: Atari random / human gamer scores)."""
  baselines = ATARI_GAMER if baselines is None else baselines
  if task not in baselines:
    raise ValueError(f'No baseline scores for task {task!r}'
                     f'{suggest(task, baselines)}.')
  low, high = baselines[task]
  return (np.asarray(scores, np.float64) - low) / (high - low)


def iqm(values):
  """Interquartile mean: the mean of the middle 50% of the sorted values
  (floor(n/4) cut from each end, as scipy.stats.trim_mean(x, 0.25)).
  Works along the last axis."""
  values = np.sort(np.asarray(values, np.float64), axis=-1)
  count = values.shape[-1]
  cut = count // 4
  return values[..., cut:count - cut].mean(-1)


def aggregate(per_task, level=0.95, reps=2000, seed=0):
  """Mean, median and IQM over tasks, with stratified bootstrap CIs.

  per_task: {task: [S_task] per-seed scores} (seed counts may differ).
  mean / median: over tasks of each task's mean over seeds; iqm: over all
  (task, seed) scores. The bootstrap resamples seeds within each task
  (rliable's stratified bootstrap) and takes percentile intervals.
  Returns {'mean'|'median'|'iqm': (value, low, high), 'tasks': T}.
  """
  arrays = [np.asarray(v, np.float64) for v in per_task.values()]
  arrays = [a[np.isfinite(a)] for a in arrays]
  arrays = [a for a in arrays if a.size]
  if not arrays:
    raise ValueError('No task scores to aggregate.')
  rng = np.random.default_rng(seed)
  samples = [a[rng.integers(0, a.size, (reps, a.size))] for a in arrays]
  task_means = np.stack([s.mean(1) for s in samples], 1)  # [reps, T]
  pooled = np.concatenate(samples, 1)  # [reps, N]
  points = np.asarray([a.mean() for a in arrays])
  estimates = {
      'mean': (points.mean(), task_means.mean(1)),
      'median': (np.median(points), np.median(task_means, 1)),
      'iqm': (iqm(np.concatenate(arrays)), iqm(pooled)),
  }
  tail = 100 * (1 - level) / 2
  result = {'tasks': len(arrays)}
  for name, (point, boot) in estimates.items():
    low, high = np.percentile(boot, [tail, 100 - tail])
    result[name] = (float(point), float(low), float(high))
  return result


def bootstrap_ci(values, level=0.95, reps=2000, seed=0):
  """(mean, low, high) of the mean of `values` over bootstrap resamples."""
  values = np.asarray(values, np.float64)
  if not values.size:
    raise ValueError('No values.')
  rng = np.random.default_rng(seed)
  means = values[rng.integers(0, values.size, (reps, values.size))].mean(1)
  tail = 100 * (1 - level) / 2
  low, high = np.percentile(means, [tail, 100 - tail])
  return float(values.mean()), float(low), float(high)
