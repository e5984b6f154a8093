"""The results of a sweep: one row per run, read from the run directories.

`read_results(root)` finds every run below a sweep root (a directory with
run.json, scores.jsonl or sweep.json; launch.sweep lays them out as
<root>/<task>/<experiment>/seed<k>) and reads one row per run:

  experiment, description  the run's experiment (sweep.json; '' for a run
                           no experiment sweep made), dreamer_tf/sweep/
                           experiments.py
  method                   how plots and tables name it: the experiment
                           (`/<grid point>` with a grid), else the label
  task, seed               run.json: the env id and the seed
  logdir, status           the directory; done / running / partial /
                           failed as `launch.sweep --mode=status` says
  start                    run.json `created`: when the run first started
  end                      when done.json was written (a finished run),
                           else the last write to metrics.jsonl or
                           scores.jsonl
  duration                 end - start in seconds: wall-clock, so the time
                           between a stop and its resume counts
  frames                   done.json `frames`, else the last logged step
  episodes                 episodes of the scored kind (train by default)
  final_score              mean of the last K episodes
  best_score               best mean of K consecutive episodes
  <metric>                 the last logged value of each requested metric
                           (dreamer_tf/analysis/metrics.py; empty when the
                           run does not log it)
  gin:<binding>            the run's resolved config, one column per binding

Times are UTC, 'YYYY-MM-DDTHH:MM:SSZ'. The resolved config is the run's
operative_config.gin (gin.operative_config_str(): every parameter of every
configurable the run built, defaults included), or for runs older than it
config.gin (gin.config_str(): only the bindings of the run's files and
--gin_param, after includes and overrides).
"""
import calendar
import csv
import io
import os
import re
import time

import numpy as np

from dreamer_tf.analysis import metrics as metrics_lib
from dreamer_tf.analysis import scores
from dreamer_tf.run import DONE_FILE
from dreamer_tf.run import record as record_lib
from dreamer_tf.sweep import experiments as sweep_experiments
from dreamer_tf.sweep import status as sweep_status

COLUMNS = ['experiment', 'description', 'method', 'task', 'seed', 'logdir',
           'status', 'start', 'end', 'duration', 'frames', 'episodes',
           'final_score', 'best_score']
# A directory holding one of these is a run.
RUN_FILES = (record_lib.FILE, 'scores.jsonl', sweep_status.RECORD_FILE)
CONFIG_FILES = ('operative_config.gin', 'config.gin')  # Preferred first.
GIN_PREFIX = 'gin:'
_TIME_FORMAT = '%Y-%m-%dT%H:%M:%SZ'


def read_results(root, metrics=(), count=10, kind='train',
                 label=scores.METHOD,
                 experiments_dir=sweep_experiments.DIRECTORY):
  """Rows (dicts) of the runs below `root`, by task, method and seed.

  metrics: names of logged metrics (full keys or tails, see
  metrics.match); count: episodes of the final and best scores; kind:
  'train', 'eval' or None (all) episodes; label: the method of runs made
  without an experiment; experiments_dir: where the description of a run
  without sweep.json is looked up (see experiments.of_run). Raises
  FileNotFoundError when `root` is not a directory or holds no run,
  MissingMetricError when no run logs a metric.
  """
  names = metrics_lib.parse_names(metrics)
  if not os.path.isdir(root):
    raise FileNotFoundError(f'No sweep root {root!r}: pass the --root of '
                            'a launch.sweep (or a directory of runs).')
  try:
    paths = scores.find_runs([root], RUN_FILES)
  except FileNotFoundError:
    raise FileNotFoundError(
        f'No runs under {root!r}: a run directory holds '
        f'{" or ".join(RUN_FILES)} (launch.sweep --root and launch.train '
        '--logdir write them).') from None
  rows = [read_run(path, names, count, kind, label, experiments_dir)
          for path in paths]
  metrics_lib.check_found(
      names, {n for row in rows for n in names if n in row}, paths)
  return sorted(rows, key=lambda r: (r['task'], r['method'],
                                     _seed_order(r['seed'])))


def read_run(logdir, metrics=(), count=10, kind='train',
             label=scores.METHOD,
             experiments_dir=sweep_experiments.DIRECTORY):
  """One run's row (see the module docstring); arguments as
  `read_results`."""
  sweep = sweep_status.read_record(logdir)
  try:
    record = record_lib.load(logdir)
  except record_lib.RunRecordError:  # E.g. it failed before it started.
    record = None
  task = record.env if record else sweep.get('task', '')
  experiment, description, method = sweep_experiments.of_run(
      logdir, task, experiments_dir)
  row = dict(experiment=experiment, description=description,
             method=method or label, task=task,
             seed=record.seed if record else sweep.get('seed', ''),
             logdir=logdir, status=sweep_status.logdir_status(logdir)['status'])
  done = sweep_status.read_json(os.path.join(logdir, DONE_FILE))
  records = metrics_lib.read(logdir)
  start = _parse_time(record.created) if record else None
  if start is None and records:
    start = records[0].get('time')
  end = _end_time(logdir, done is not None)
  row.update(start=_format_time(start), end=_format_time(end),
             duration=float('nan') if None in (start, end)
             else round(end - start, 3))
  logged = scores.load_run(logdir, None) if record and os.path.exists(
      os.path.join(logdir, 'scores.jsonl')) else None
  steps = [r['step'] for r in records if 'step' in r]
  steps += list(logged.xs) if logged else []
  row['frames'] = (done or {}).get('frames', int(max(steps, default=0)))
  episodes = logged and (scores.load_run(logdir, kind) if kind else logged)
  row['episodes'] = int(episodes.ys.size) if episodes else 0
  row['final_score'] = (scores.final_score(episodes, count) if episodes
                        else float('nan'))
  row['best_score'] = (scores.best_score(episodes, count) if episodes
                       else float('nan'))
  row.update(metrics_lib.last_values(records, metrics))
  row.update({GIN_PREFIX + k: v for k, v in read_config(logdir).items()})
  return row


def read_config(logdir):
  """{binding: value text} of the run's resolved config (`CONFIG_FILES`,
  the first that exists; {} without one)."""
  for name in CONFIG_FILES:
    path = os.path.join(logdir, name)
    if os.path.exists(path):
      with open(path) as f:
        return gin_bindings(f.read())
  return {}


def gin_bindings(text):
  """{binding: value text} of gin config text as gin.config_str() writes
  it: `name = value` lines, a long value continued on indented lines after
  `name = \\`. Comments, imports and includes are dropped; a value's lines
  are joined with single spaces."""
  bindings, name = {}, None
  for line in text.splitlines():
    stripped = line.strip()
    if not stripped or stripped.startswith('#'):
      continue
    if line[0].isspace() and name:
      bindings[name] = f'{bindings[name]} {stripped}'.strip()
      continue
    match = re.fullmatch(r'([\w./%]+)\s*=\s*(.*)', stripped)
    name = match[1] if match else None
    if name:
      bindings[name] = match[2].rstrip('\\').strip()
  return bindings


def columns(rows):
  """COLUMNS, then the metric columns in request order, then the gin
  bindings sorted."""
  extra = list(dict.fromkeys(k for row in rows for k in row
                             if k not in COLUMNS))
  gin = sorted(k for k in extra if k.startswith(GIN_PREFIX))
  return COLUMNS + [k for k in extra if k not in gin] + gin


def to_csv(rows, fields=None):
  """CSV text of `rows` with the header `fields` (default: `columns`);
  NaN and missing values are written as empty cells."""
  fields = columns(rows) if fields is None else fields
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fields, restval='', lineterminator='\n')
  writer.writeheader()
  for row in rows:
    writer.writerow({k: ('' if isinstance(v, float) and not np.isfinite(v)
                         else v) for k, v in row.items()})
  return buffer.getvalue()


def _end_time(logdir, done):
  """When the run last wrote: done.json's time, else its logs' times."""
  names = [DONE_FILE] if done else ['metrics.jsonl', 'scores.jsonl']
  times = [os.path.getmtime(os.path.join(logdir, n)) for n in names
           if os.path.exists(os.path.join(logdir, n))]
  return max(times, default=None)


def _parse_time(text):
  try:
    return float(calendar.timegm(time.strptime(text, _TIME_FORMAT)))
  except (TypeError, ValueError):
    return None


def _format_time(seconds):
  return '' if seconds is None else time.strftime(
      _TIME_FORMAT, time.gmtime(seconds))


def _seed_order(seed):
  return (0, seed, '') if isinstance(seed, int) else (1, 0, str(seed))
