"""Logged metrics of our runs: `<logdir>/metrics.jsonl` read back.

The training loop appends one record per log interval (`step` = env
frames, `time`, and the scalars: `train/loss/policy`, `fps/policy`,
`replay/items`, ...; dreamer_tf/run/logger.py). A metric is asked for by
its full key or by a tail of it after a '/': `loss/policy` and `policy`
both name `train/loss/policy` when no other key ends so. A name that no run
logs is an error naming the closest logged keys; a run that does not log a
metric another run logs simply has no value for it (e.g. the intrinsic
reward weight of an exploration experiment, next to the baseline).
"""
import difflib
import os

import numpy as np

from dreamer_tf.analysis import scores
from dreamer_tf.run import logger as log_lib

FILE = 'metrics.jsonl'
# Record fields that are not metrics.
_FIELDS = ('step', 'time')


class MissingMetricError(ValueError):
  """No run logs a requested metric (or a name matches several keys)."""


def read(logdir):
  """The records of <logdir>/metrics.jsonl ([] when it has none). A torn
  last line (a run killed while writing it) is skipped; a bad line
  elsewhere is an error."""
  path = os.path.join(logdir, FILE)
  if not os.path.exists(path):
    return []
  # The JSONL reader of the logger; kind=None keeps every record.
  return log_lib.read_scores(path, kind=None)


def keys(records):
  """The metric keys of `records`, in first-seen order."""
  return list(dict.fromkeys(k for r in records for k in r
                            if k not in _FIELDS))


def match(name, available):
  """The key of `available` that `name` names: itself, else the one key
  ending in '/' + name; None when none does. Raises MissingMetricError
  when several keys end so."""
  if name in available:
    return name
  tails = [k for k in available if k.endswith('/' + name)]
  if len(tails) > 1:
    raise MissingMetricError(
        f'Metric {name!r} is ambiguous: it ends {sorted(tails)}; pass the '
        'full key.')
  return tails[0] if tails else None


def parse_names(names):
  """'a,b' or ['a', 'b'] -> ['a', 'b'] (empty entries dropped, repeats
  refused)."""
  if isinstance(names, str):
    names = names.split(',')
  names = [n.strip() for n in names if n and n.strip()]
  if len(set(names)) != len(names):
    raise ValueError(f'A metric repeats in {names}.')
  return names


def check_logged(names, logged):
  """Raises MissingMetricError for a name of `names` that matches no key of
  `logged` (the keys logged by any of the runs), naming the closest."""
  for name in names:
    if match(name, logged) is None:
      tails = {k.split('/', i)[-1]: k for k in logged
               for i in range(k.count('/') + 1)}
      close = list(dict.fromkeys(tails[c] for c in difflib.get_close_matches(
          name, list(tails), n=6, cutoff=0.6)))[:3]
      hint = (f" (did you mean {' or '.join(repr(c) for c in close)}"
              '?)') if close else ''
      raise MissingMetricError(
          f'No run logs the metric {name!r}{hint}. The runs log '
          f'{len(logged)} metrics: {", ".join(sorted(logged)) or "none"}.')


def check_found(names, found, logdirs):
  """Raises MissingMetricError for the first of `names` not in `found` (the
  names some run has a value of): naming the closest keys the runs in
  `logdirs` log, or saying that they log it without a finite value."""
  missing = [n for n in names if n not in found]
  if missing:
    logged = set().union(*(keys(read(d)) for d in logdirs))
    check_logged(missing, logged)
    raise MissingMetricError(
        f'The runs log {missing[0]!r} with no finite value.')


def last_values(records, names):
  """{name: the last logged value} for each of `names` the records have
  (NaN values are skipped; a metric never logged is left out)."""
  available = keys(records)
  result = {}
  for name in names:
    key = match(name, available)
    if key is None:
      continue
    values = [r[key] for r in records if _finite(r.get(key))]
    if values:
      result[name] = float(values[-1])
  return result


def series(records, name):
  """([N] frames, [N] values) of one metric (NaN points dropped), or None
  when the records do not log it."""
  key = match(name, keys(records))
  if key is None:
    return None
  points = [(float(r['step']), float(r[key])) for r in records
            if 'step' in r and _finite(r.get(key))]
  xs = np.asarray([p[0] for p in points], np.float64)
  ys = np.asarray([p[1] for p in points], np.float64)
  order = np.argsort(xs, kind='stable')
  return xs[order], ys[order]


def metric_table(table, name):
  """{task: {method: [scores.Run of the metric]}} from a score table.

  table: {task: {method: [scores.Run]}} (scores.collect); each of our runs
  (`source` a run directory) contributes its series of metric `name` as a
  Run (xs = frames, ys = values); reference runs and runs that do not log
  it contribute nothing. Raises MissingMetricError when no run logs it.
  """
  result, logdirs = {}, []
  for task, methods in table.items():
    for method, runs in methods.items():
      for run in runs:
        if not os.path.isdir(run.source):
          continue
        logdirs.append(run.source)
        points = series(read(run.source), name)
        if points is not None and points[0].size:
          result.setdefault(task, {}).setdefault(method, []).append(
              scores.Run(run.task, method, run.seed, *points, run.source))
  check_found([name], {name} if result else set(), logdirs)
  return result


def _finite(value):
  return isinstance(value, (int, float)) and np.isfinite(value)
