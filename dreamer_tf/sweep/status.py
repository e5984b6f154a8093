"""A sweep's runs as recorded on disk: each run's last attempt
(<logdir>/sweep.json, `write_record`), its status (`read_status`: done,
running, partial, failed or pending, from that record, <logdir>/done.json
and whether the logdir exists; with the checkpoint the run last saved)
and the sweep's index (<root>/index.json and
index.md, `write_index`, read back by `load_index`).

`sweep/local.py` writes the records as it starts and ends runs;
`launch.sweep --mode=status`, `launch.results` and the experiment tables read
them. A run is `running` only while the process its record names lives
(same pid and start time; on another host, until it records its end).
"""
import collections
import json
import os
import signal
import socket
import time

import psutil

from dreamer_tf import files
from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import DONE_FILE
from dreamer_tf.sweep.plan import Run

INDEX_JSON, INDEX_MD = 'index.json', 'index.md'
LOG_FILE, RECORD_FILE = 'sweep.log', 'sweep.json'
STATUSES = ('pending', 'running', 'partial', 'failed', 'done')


def read_status(run):
  """The run's status from disk as a dict (see STATUSES).

  done: done.json exists. running: its last attempt is running (on another
  host: was started and has not ended). failed: its last attempt exited
  nonzero. partial: started, not finished (rerunning resumes it). pending:
  no logdir.
  """
  return logdir_status(run.logdir)


def logdir_status(logdir):
  """`read_status` of the run in `logdir`."""
  record = read_record(logdir)
  checkpoint = _read_text(os.path.join(logdir, 'ckpt', ckpt_lib.LATEST))
  if os.path.exists(os.path.join(logdir, DONE_FILE)):
    status = 'done'
  elif record.get('state') == 'running' and _alive(record):
    status = 'running'
  elif (record.get('state') == 'exited' and not record.get('interrupted')
        and record.get('exit_code') != 0):
    status = 'failed'
  elif os.path.isdir(logdir):
    status = 'partial'
  else:
    status = 'pending'
  return dict(status=status, exit_code=record.get('exit_code'),
              checkpoint=checkpoint, host=record.get('host'),
              started=record.get('started'), ended=record.get('ended'))


def read_record(logdir):
  """The run's <logdir>/sweep.json as a dict ({} when it has none)."""
  record = read_json(os.path.join(logdir, RECORD_FILE))
  return record if isinstance(record, dict) else {}


def write_index(root, runs):
  """Writes <root>/index.json and index.md from the runs' status on disk."""
  entries = [dict(index=i, name=run.name, logdir=run.logdir, task=run.task,
                  seed=run.seed, experiment=run.experiment,
                  description=run.description, bindings=dict(run.bindings),
                  command=run.shell, argv=list(run.argv), **read_status(run))
             for i, run in enumerate(runs)]
  counts = collections.Counter(e['status'] for e in entries)
  os.makedirs(root, exist_ok=True)
  files.write_atomic(os.path.join(root, INDEX_JSON), json.dumps(
      dict(root=root, updated=now(), counts=dict(counts), runs=entries),
      indent=1) + '\n')
  lines = [f'# Sweep {root}', '', _count_line(counts), '',
           '| # | status | exit | checkpoint | task | seed | experiment | '
           'grid point | logdir |', '|---|---|---|---|---|---|---|---|---|']
  for e in entries:
    point = ', '.join(f'{k}={v}' for k, v in e['bindings'].items())
    lines.append(
        f"| {e['index']} | {e['status']} | {exit_text(e['exit_code'])} | "
        f"{e['checkpoint'] or ''} | {e['task']} | {e['seed']} | "
        f"{e['experiment']} | {point} | "
        f"`{e['logdir']}` |")
  lines += ['', 'Commands:', '', '```']
  lines += [e['command'] for e in entries] + ['```', '']
  files.write_atomic(os.path.join(root, INDEX_MD), '\n'.join(lines))
  return entries


def load_index(root):
  """The runs listed in <root>/index.json, located under `root` as given."""
  path = os.path.join(root, INDEX_JSON)
  if not os.path.exists(path):
    raise ValueError(f'No sweep index at {path}; pass the sweep flags '
                     '(--tasks, ...) or the --root of a launched sweep.')
  index = read_json(path)
  if not isinstance(index, dict) or not isinstance(index.get('runs'), list):
    raise ValueError(f'{path} is unreadable or not a sweep index; launch '
                     'the sweep again with its flags (--tasks, ...) to '
                     'rewrite it.')
  return [Run(e['name'], os.path.join(root, e['name']), e['task'], e['seed'],
              tuple(e['bindings'].items()), (), (), tuple(e['argv']),
              e.get('experiment', ''), e.get('description', ''))
          for e in index['runs']]


def status_table(runs):
  """The status table of `runs` as text, a count line last."""
  rows = [('#', 'status', 'exit', 'checkpoint', 'run')]
  counts = collections.Counter()
  for i, run in enumerate(runs):
    st = read_status(run)
    counts[st['status']] += 1
    rows.append((str(i), st['status'], exit_text(st['exit_code']),
                 st['checkpoint'] or '-', run.name))
  widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
  lines = ['  '.join(cell.ljust(w) for cell, w in zip(row, widths)) + '  ' +
           row[-1] for row in rows]
  return '\n'.join(lines + [_count_line(counts)])


def write_record(run, **record):
  """<logdir>/sweep.json: the attempt (`record`), the command and what the
  run is (task, seed; experiment, description and method if any)."""
  record.setdefault('host', socket.gethostname())
  identity = dict(name=run.name, task=run.task, seed=run.seed)
  if run.experiment:
    identity.update(experiment=run.experiment, description=run.description,
                    method=run.method)
  files.write_atomic(os.path.join(run.logdir, RECORD_FILE), json.dumps(
      dict(record, command=run.shell, **identity), indent=1))


def _alive(record):
  """Whether the record's process runs (on another host: assumed so; a
  record without a host is this host's)."""
  if record.get('host', socket.gethostname()) != socket.gethostname():
    return True
  try:
    return abs(psutil.Process(record['pid']).create_time() -
               (record.get('pid_start') or 0)) < 1.0
  except (psutil.Error, KeyError, TypeError):
    return False


def create_time(pid):
  """Start time of process `pid` (psutil's, seconds since the epoch), or
  None when it is gone."""
  try:
    return psutil.Process(pid).create_time()
  except psutil.Error:
    return None


def read_json(path):
  """The JSON of a file, or None when it is missing or not JSON."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _read_text(path):
  try:
    with open(path) as f:
      return f.read().strip() or None
  except OSError:
    return None


def exit_text(code):
  """A run's exit code as text: '-' for none, the signal's name for a
  negative one (SIGKILL), else the number."""
  if code is None:
    return '-'
  if code < 0:
    try:
      return signal.Signals(-code).name
    except ValueError:
      return f'signal {-code}'
  return str(code)


def _count_line(counts):
  return ', '.join(f'{counts[s]} {s}' for s in STATUSES if counts[s]) or (
      'no runs')


def now():
  """Local time as ISO seconds (2026-11-29T23:08:11), the records' times."""
  return time.strftime('%Y-%m-%dT%H:%M:%S')
