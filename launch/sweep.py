"""Runs a sweep: every task x grid point x seed as one `launch.train` run.

  # 2 tasks x 2 train ratios x 3 seeds = 12 runs, 2 at a time on this machine:
  python -m launch.sweep --root=runs/sweep1 \
      --gin_file=gin_configs/suites/dmc_proprio.gin \
      --tasks=dmc:walker_walk,dmc:cheetah_run --seeds=0-2 \
      --grid=train.train_ratio=256,512 --parallel=2

  # The same sweep on a cluster: one shell-quoted `python -m launch.train ...`
  # line per run (all runs, so that line i is always run i) ...
  python -m launch.sweep <same flags> --mode=print > runs.txt
  # ... or a job array (sbatch --array=0-11) whose task i runs run i only:
  python -m launch.sweep <same flags> --array_index=$SLURM_ARRAY_TASK_ID

  # done / running / partial / failed / pending, read from disk:
  python -m launch.sweep --root=runs/sweep1 --mode=status

Run directories are <root>/<task>/<grid point>/seed<k>, e.g.
runs/sweep1/dmc_walker_walk/train_ratio=256/seed0 (no grid level without
--grid). Rerunning a sweep skips finished runs (<logdir>/done.json), resumes
started ones from their checkpoint (the same command resumes) and starts the
rest. The gin config of every run is validated before anything starts.

Each run's output goes to <logdir>/sweep.log (appended on every attempt) and
its last attempt to <logdir>/sweep.json; <root>/index.json and index.md list
all runs with their status. Ctrl-C (or SIGTERM) stops the running runs
cleanly: they get SIGINT, write a final checkpoint and exit; a second Ctrl-C
or --stop_timeout kills them.
"""
import collections
import dataclasses
import itertools
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import gin
import psutil

from dreamer_tf import checkpoint as ckpt_lib
from dreamer_tf import envs as envs_lib
from dreamer_tf.run import DONE_FILE
from launch import common_flags  # noqa: F401  (--gin_file, --seed, ...)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What launch.train parses without --gin_file (launch/train.py DEFAULT_GIN).
DEFAULT_GIN = [os.path.join(ROOT, 'gin_configs', 'default.gin')]

INDEX_JSON, INDEX_MD = 'index.json', 'index.md'
LOG_FILE, RECORD_FILE = 'sweep.log', 'sweep.json'
STATUSES = ('pending', 'running', 'partial', 'failed', 'done')

flags.DEFINE_string('seeds', '0', 'Seeds: 0,1,2 or an inclusive range 0-4 '
                    '(or both: 0-2,7).')
flags.DEFINE_multi_string('grid', [],
                          'Binding=v1,v2,...: values to sweep; several --grid '
                          'flags sweep their cartesian product. Example: '
                          "--grid=train.train_ratio=256,512 --grid=\"Agent."
                          "precision='float32','bfloat16'\".")
flags.DEFINE_string('root', None, 'Sweep directory.')
flags.DEFINE_integer('parallel', 1, 'Local runs at once.', lower_bound=1)
flags.DEFINE_enum('mode', 'local', ['local', 'print', 'status'],
                  'local: run; print: one launch.train command per run; '
                  'status: the table of runs from disk.')
flags.DEFINE_integer('array_index', None,
                     'Only run (or print) run i, 0-based, e.g. '
                     '$SLURM_ARRAY_TASK_ID.')
flags.DEFINE_float('stop_timeout', 120.0,
                   'Seconds an interrupted run may take to save and exit '
                   'before it is killed.')
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Run:
  """One run of the sweep; `argv` is the full command that trains it."""
  name: str  # logdir relative to the sweep root: <task>/<grid point>/seed<k>
  logdir: str
  task: str
  seed: int
  bindings: tuple  # The grid point: ((binding, value), ...).
  gin_files: tuple
  gin_params: tuple  # All bindings of the run: --gin_param, task, grid point.
  argv: tuple

  @property
  def shell(self):
    """`argv` as one shell command line."""
    return ' '.join(quote(arg) for arg in self.argv)


# --- Expansion (pure) --------------------------------------------------------


def parse_tasks(tasks):
  """'a,b' or ['a', 'b'] -> ['a', 'b'], each a valid 'suite:task' id."""
  if isinstance(tasks, str):
    tasks = tasks.split(',')
  tasks = [t.strip() for t in tasks if t.strip()]
  if not tasks:
    raise ValueError('No tasks: pass --tasks=suite:task[,...], e.g. '
                     '--tasks=dmc:walker_walk,dmc:cheetah_run.')
  for task in tasks:
    envs_lib.parse(task)  # Clear error on a malformed id or unknown suite.
  return tasks


def parse_seeds(text):
  """'0,1,2' -> [0, 1, 2]; '0-4' -> [0, 1, 2, 3, 4] (inclusive); mixed."""
  seeds = []
  for part in str(text).split(','):
    part = part.strip()
    match = re.fullmatch(r'(\d+)(?:-(\d+))?', part)
    if not match:
      raise ValueError(f'Bad seeds {text!r}: expected e.g. 0,1,2 or 0-4.')
    first, last = int(match[1]), int(match[2] or match[1])
    if last < first:
      raise ValueError(
          f'Bad seed range {part!r} in {text!r}: {last} < {first}.')
    seeds.extend(range(first, last + 1))
  if len(set(seeds)) != len(seeds):
    raise ValueError(f'Seeds {text!r} repeat a seed.')
  return seeds


def parse_grid(specs):
  """['Binding=v1,v2', ...] -> [('Binding', ['v1', 'v2']), ...].

  Values are gin literals split at top-level commas, so tuples, lists,
  dicts and quoted strings may contain commas: `Foo.bar=(1,2),(3,4)`.
  """
  grid = []
  for spec in specs:
    name, sep, values = spec.partition('=')
    name = name.strip()
    if not sep or not name:
      raise ValueError(f'Bad --grid {spec!r}: expected Binding=v1,v2,... '
                       'e.g. --grid=train.train_ratio=256,512.')
    values = _split_top_level(values)
    if not values or any(not v for v in values):
      raise ValueError(f'Bad --grid {spec!r}: empty value.')
    if len(set(values)) != len(values):
      raise ValueError(f'Bad --grid {spec!r}: a value repeats.')
    if name in dict(grid):
      raise ValueError(f'--grid binds {name} twice; give all its values in '
                       'one flag.')
    grid.append((name, values))
  return grid


def expand(tasks, seeds, grid, gin_files, gin_params, root, python='python'):
  """The runs of a sweep, tasks x grid points x seeds, in that nesting.

  tasks: 'suite:task' ids; seeds: ints; grid: mapping or (binding, values)
  pairs; gin_files/gin_params: passed to every run. `python` is the
  command's interpreter. Raises ValueError on unknown suites, bindings the
  sweep sets itself (train.env, train.seed) or also sweeps, and runs whose
  directory names clash.
  """
  tasks = parse_tasks(tasks)
  seeds = [int(s) for s in seeds]
  if not seeds:
    raise ValueError('No seeds.')
  grid = [(name, [str(v) for v in values]) for name, values in
          (grid.items() if isinstance(grid, dict) else grid)]
  gin_files, gin_params = tuple(gin_files), tuple(gin_params)
  fixed = {_binding_name(p) for p in gin_params}
  swept = [name for name, _ in grid]
  for name, use in (('train.env', '--tasks'), ('train.seed', '--seeds')):
    if name in fixed or name in swept:
      flag = '--gin_param' if name in fixed else '--grid'
      raise ValueError(f'{flag} binds {name}; the sweep sets it from {use}.')
  for name in swept:
    if name in fixed:
      raise ValueError(f'{name} is both swept (--grid) and fixed '
                       '(--gin_param); the grid would override it.')
  labels = _short_labels([name for name, _ in grid])
  points = list(itertools.product(*[
      [(name, value) for value in values] for name, values in grid]))
  runs, names = [], {}
  for task in tasks:
    task_binding = f'train.env={_gin_string(task)}'
    for point in points:
      for seed in seeds:
        parts = [_slug(task.replace(':', '_').replace('/', '_'))]
        if point:
          parts.append(','.join(f'{labels[n]}={_slug(v)}' for n, v in point))
        parts.append(f'seed{seed}')
        name = '/'.join(parts)
        if name in names:
          raise ValueError(
              f'Runs {names[name]} and {(task, point, seed)} would share the '
              f'directory {name!r}; make the grid values distinguishable.')
        names[name] = (task, point, seed)
        logdir = os.path.join(root, *parts)
        params = gin_params + (task_binding,) + tuple(
            f'{n}={v}' for n, v in point)
        argv = [python, '-m', 'launch.train', f'--logdir={logdir}',
                f'--seed={seed}']
        argv += [f'--gin_file={f}' for f in gin_files]
        argv += [f'--gin_param={p}' for p in params]
        runs.append(Run(name, logdir, task, seed, tuple(point), gin_files,
                        params, tuple(argv)))
  return runs


def quote(arg):
  """Shell-quotes one argument, readably: bare, "double" or 'single'."""
  if re.fullmatch(r'[\w@%+=:,./-]+', arg):
    return arg
  if not re.search(r'["$`\\!]', arg):
    return f'"{arg}"'
  return shlex.quote(arg)


def _split_top_level(text):
  """Splits at commas outside brackets and quotes."""
  parts, depth, quote_char, current = [], 0, None, []
  for char in text:
    if quote_char:
      quote_char = None if char == quote_char else quote_char
    elif char in '\'"':
      quote_char = char
    elif char in '([{':
      depth += 1
    elif char in ')]}':
      depth -= 1
    elif char == ',' and depth == 0:
      parts.append(''.join(current).strip())
      current = []
      continue
    current.append(char)
  parts.append(''.join(current).strip())
  return parts


def _binding_name(binding):
  return binding.partition('=')[0].strip()


def _gin_string(text):
  return "'" + text.replace('\\', '\\\\').replace("'", "\\'") + "'"


def _short_labels(names):
  """Binding -> its parameter name ('train.train_ratio' -> 'train_ratio'),
  or the whole binding where two swept bindings share a parameter name."""
  short = {n: n.rsplit('.', 1)[-1].rsplit('/', 1)[-1] for n in names}
  counts = collections.Counter(short.values())
  return {n: s if counts[s] == 1 else n.replace('/', '_')
          for n, s in short.items()}


def _slug(value):
  """A value as a file name part: quotes dropped, odd characters -> '_'."""
  value = value.strip().strip('\'"')
  value = re.sub(r'[^\w.+=-]+', '_', value).strip('_')
  return value or '_'


# --- Validation --------------------------------------------------------------


def validate(runs):
  """Parses every distinct gin config of `runs` once; ValueError on typos.

  Leaves gin cleared. Errors are those of `dreamer_tf.config.parse` (which
  name the closest valid binding), with the run that showed them.
  """
  from dreamer_tf import config  # pylint: disable=import-outside-toplevel  (loads TensorFlow)
  seen = set()
  for run in runs:
    key = (run.gin_files, run.gin_params)
    if key in seen:
      continue
    seen.add(key)
    gin.clear_config()
    try:
      config.parse(list(run.gin_files) or DEFAULT_GIN, run.gin_params)
    except ValueError as e:
      raise ValueError(f'{e}\n(in the config of run {run.name})') from e
    finally:
      gin.clear_config()


# --- Status on disk ----------------------------------------------------------


def read_status(run):
  """The run's status from disk as a dict (see STATUSES).

  done: done.json exists. running: its last attempt is running (on another
  host: was started and has not ended). failed: its last attempt exited
  nonzero. partial: started, not finished (rerunning resumes it). pending:
  no logdir.
  """
  record = _read_json(os.path.join(run.logdir, RECORD_FILE)) or {}
  checkpoint = _read_text(os.path.join(run.logdir, 'ckpt', ckpt_lib.LATEST))
  if os.path.exists(os.path.join(run.logdir, DONE_FILE)):
    status = 'done'
  elif record.get('state') == 'running' and _alive(record):
    status = 'running'
  elif (record.get('state') == 'exited' and not record.get('interrupted')
        and record.get('exit_code') != 0):
    status = 'failed'
  elif os.path.isdir(run.logdir):
    status = 'partial'
  else:
    status = 'pending'
  return dict(status=status, exit_code=record.get('exit_code'),
              checkpoint=checkpoint, host=record.get('host'),
              started=record.get('started'), ended=record.get('ended'))


def write_index(root, runs):
  """Writes <root>/index.json and index.md from the runs' status on disk."""
  entries = [dict(index=i, name=run.name, logdir=run.logdir, task=run.task,
                  seed=run.seed, bindings=dict(run.bindings),
                  command=run.shell, argv=list(run.argv), **read_status(run))
             for i, run in enumerate(runs)]
  counts = collections.Counter(e['status'] for e in entries)
  os.makedirs(root, exist_ok=True)
  _write_atomic(os.path.join(root, INDEX_JSON), json.dumps(
      dict(root=root, updated=_now(), counts=dict(counts), runs=entries),
      indent=1) + '\n')
  lines = [f'# Sweep {root}', '', _count_line(counts), '',
           '| # | status | exit | checkpoint | task | seed | grid point | '
           'logdir |', '|---|---|---|---|---|---|---|---|']
  for e in entries:
    point = ', '.join(f'{k}={v}' for k, v in e['bindings'].items())
    lines.append(
        f"| {e['index']} | {e['status']} | {_exit_text(e['exit_code'])} | "
        f"{e['checkpoint'] or ''} | {e['task']} | {e['seed']} | {point} | "
        f"`{e['logdir']}` |")
  lines += ['', 'Commands:', '', '```']
  lines += [e['command'] for e in entries] + ['```', '']
  _write_atomic(os.path.join(root, INDEX_MD), '\n'.join(lines))
  return entries


def load_index(root):
  """The runs listed in <root>/index.json, located under `root` as given."""
  path = os.path.join(root, INDEX_JSON)
  index = _read_json(path)
  if index is None:
    raise ValueError(f'No sweep index at {path}; pass the sweep flags '
                     '(--tasks, ...) or the --root of a launched sweep.')
  return [Run(e['name'], os.path.join(root, e['name']), e['task'], e['seed'],
              tuple(e['bindings'].items()), (), (), tuple(e['argv']))
          for e in index['runs']]


def status_table(runs):
  """The status table of `runs` as text, a count line last."""
  rows = [('#', 'status', 'exit', 'checkpoint', 'run')]
  counts = collections.Counter()
  for i, run in enumerate(runs):
    st = read_status(run)
    counts[st['status']] += 1
    rows.append((str(i), st['status'], _exit_text(st['exit_code']),
                 st['checkpoint'] or '-', run.name))
  widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
  lines = ['  '.join(cell.ljust(w) for cell, w in zip(row, widths)) + '  ' +
           row[-1] for row in rows]
  return '\n'.join(lines + [_count_line(counts)])


# --- Local runner ------------------------------------------------------------


class _Interrupted(Exception):
  """SIGTERM reached the sweep (Ctrl-C raises KeyboardInterrupt)."""


def run_local(runs, parallel=1, root=None, index_runs=None, out=None,
              stop_timeout=120.0, poll=0.2):
  """Runs the unfinished `runs` as subprocesses, `parallel` at once.

  Each run executes its `argv` (cwd unchanged, the repo on PYTHONPATH) with
  output appended to <logdir>/sweep.log. Finished runs are skipped, as are
  runs a live process on this host is already running. A failing run does
  not stop the others. If `root` is given, <root>/index.json (listing
  `index_runs`, default `runs`) is rewritten whenever a run starts or ends.
  Returns the exit status: 0 if every launched run finished, 1 if any
  failed or ended unfinished, 130 if interrupted.
  """
  out = out or sys.stdout
  index_runs = index_runs or runs
  update_index = (lambda: write_index(root, index_runs)) if root else (
      lambda: None)
  todo, skipped = collections.deque(), collections.Counter()
  for run in runs:
    status = read_status(run)
    here = status['host'] == socket.gethostname()
    if status['status'] == 'done':
      skipped['done'] += 1
      _say(out, f'skip  {run.name}: done')
    elif status['status'] == 'running' and here:
      skipped['running'] += 1
      _say(out, f'skip  {run.name}: already running on this host')
    else:
      if status['status'] == 'running':
        _say(out, f'note  {run.name} is recorded as running on '
             f"{status['host']}; starting it here (assuming that run died)")
      todo.append(run)
  total, active, results = len(todo), {}, {}
  update_index()
  previous = _handle_sigterm()
  interrupted = False
  try:
    while todo or active:
      while todo and len(active) < parallel:
        run = todo.popleft()
        proc = _start(run)
        if not proc:
          results[run.name] = 'failed'
          _say(out, f'fail  {run.name}: could not start (see '
               f'{os.path.join(run.logdir, LOG_FILE)})')
        else:
          active[run] = proc  # (Popen, log file)
          _say(out, f'start {run.name} [{len(results) + len(active)}/'
               f'{total}]')
        update_index()
      for run, proc in list(active.items()):
        code = proc[0].poll()
        if code is not None:
          del active[run]
          results[run.name] = _finish(run, proc, code)
          _say(out, f'{results[run.name]:<5} {run.name} (exit '
               f'{_exit_text(code)})')
          update_index()
      if active:
        time.sleep(poll)
  except (KeyboardInterrupt, _Interrupted):
    interrupted = True
    _say(out, f'Interrupted: stopping {len(active)} run(s) (SIGINT; '
         f'killed after {stop_timeout:g} s or on a second Ctrl-C).')
    _stop(active, stop_timeout)
    for run, proc in active.items():
      results[run.name] = _finish(run, proc, proc[0].returncode,
                                  interrupted=True)
    update_index()
  finally:
    _restore_sigterm(previous)
  _summary(out, runs, results, skipped, interrupted, len(todo))
  if interrupted:
    return 130
  return 0 if all(r == 'done' for r in results.values()) else 1


def _start(run):
  """Starts `run` in its own session: (Popen, log), or None on failure."""
  os.makedirs(run.logdir, exist_ok=True)
  log = open(os.path.join(run.logdir, LOG_FILE), 'a', buffering=1)
  log.write(f'\n=== launch.sweep {_now()} on {socket.gethostname()}: '
            f'{run.shell}\n')
  env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=os.pathsep.join(
      [ROOT] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
  try:
    proc = subprocess.Popen(
        list(run.argv), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, env=env, start_new_session=True)
  except OSError as e:
    log.write(f'launch.sweep: could not start: {e}\n')
    log.close()
    _write_record(run, state='exited', exit_code=None, error=str(e),
                  ended=_now())
    return None
  _write_record(run, state='running', pid=proc.pid,
                pid_start=_create_time(proc.pid), started=_now())
  return proc, log


def _finish(run, proc, code, interrupted=False):
  """Records how `run` ended; returns done, failed or partial."""
  proc[1].close()
  record = _read_json(os.path.join(run.logdir, RECORD_FILE)) or {}
  record.update(state='exited', exit_code=code, ended=_now(),
                interrupted=interrupted)
  _write_record(run, **record)
  done = os.path.exists(os.path.join(run.logdir, DONE_FILE))
  if done:
    return 'done'
  return 'partial' if interrupted or code == 0 else 'failed'


def _stop(active, timeout):
  """SIGINT to every run (a clean stop), SIGKILL to its session after
  `timeout` seconds or a second Ctrl-C."""
  procs = [proc for proc, _ in active.values()]
  for proc in procs:
    _signal(proc, signal.SIGINT, group=False)
  deadline = time.time() + timeout
  try:
    while any(p.poll() is None for p in procs):
      if time.time() > deadline:
        break
      time.sleep(0.1)
  except (KeyboardInterrupt, _Interrupted):
    pass
  for proc in procs:
    if proc.poll() is None:
      _signal(proc, signal.SIGKILL, group=True)
      proc.wait()
    else:  # Its env workers, if any are left.
      _signal(proc, signal.SIGKILL, group=True)


def _signal(proc, sig, group):
  try:
    if group:
      os.killpg(proc.pid, sig)
    else:
      proc.send_signal(sig)
  except (ProcessLookupError, PermissionError):
    pass


def _handle_sigterm():
  def handle(*unused):
    raise _Interrupted()
  try:
    return signal.signal(signal.SIGTERM, handle)
  except ValueError:  # Not the main thread.
    return None


def _restore_sigterm(previous):
  if previous is not None:
    signal.signal(signal.SIGTERM, previous)


def _summary(out, runs, results, skipped, interrupted, not_started):
  counts = collections.Counter(results.values())
  parts = [f'{counts[k]} {k}' for k in ('done', 'partial', 'failed')
           if counts[k]]
  parts += [f'{n} skipped ({k})' for k, n in sorted(skipped.items())]
  if not_started:
    parts.append(f'{not_started} not started')
  _say(out, f'Sweep{" interrupted" if interrupted else ""}: '
       f'{len(runs)} run(s): ' + (', '.join(parts) or 'nothing to do') + '.')
  by_name = {run.name: run for run in runs}
  for name, result in results.items():
    if result == 'failed':
      log = os.path.join(by_name[name].logdir, LOG_FILE)
      _say(out, f'FAILED {name}; last lines of {log}:')
      for line in _tail(log, 5):
        _say(out, f'    {line}')
    elif result == 'partial' and not interrupted:
      _say(out, f'UNFINISHED {name}: exited 0 without '
           f'{DONE_FILE} (stopped by a signal?); rerun to resume.')


# --- Helpers -----------------------------------------------------------------


def _write_record(run, **record):
  record.setdefault('host', socket.gethostname())
  _write_atomic(os.path.join(run.logdir, RECORD_FILE),
                json.dumps(dict(record, command=run.shell), indent=1))


def _alive(record):
  """Whether the record's process runs (on another host: assumed so)."""
  if record.get('host') != socket.gethostname():
    return True
  try:
    return abs(psutil.Process(record['pid']).create_time() -
               (record.get('pid_start') or 0)) < 1.0
  except (psutil.Error, KeyError, TypeError):
    return False


def _create_time(pid):
  try:
    return psutil.Process(pid).create_time()
  except psutil.Error:
    return None


def _write_atomic(path, text):
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.',
                             prefix=os.path.basename(path) + '.',
                             suffix='.tmp')
  with os.fdopen(fd, 'w') as f:
    f.write(text)
  os.replace(tmp, path)


def _read_json(path):
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


def _tail(path, n):
  try:
    with open(path, errors='replace') as f:
      return [line.rstrip('\n') for line in collections.deque(f, n)]
  except OSError:
    return []


def _exit_text(code):
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


def _now():
  return time.strftime('%Y-%m-%dT%H:%M:%S')


def _say(out, line):
  print(line, file=out, flush=True)


# --- Main --------------------------------------------------------------------


def sweep(tasks, seeds, grid, gin_files, gin_params, root, mode='local',
          parallel=1, array_index=None, stop_timeout=120.0, out=None):
  """Expands, validates and runs (or prints) a sweep; returns exit status.

  tasks, seeds and grid as the flags (strings, or parsed lists). Nothing is
  written or started before every run's config is valid.
  """
  out = out or sys.stdout
  if mode not in ('local', 'print', 'status'):
    raise ValueError(f'Unknown mode {mode!r}: local, print or status.')
  if not root:
    raise ValueError('--root is required.')
  if mode == 'status' and not tasks:
    runs = load_index(root)
  else:
    if isinstance(seeds, str):
      seeds = parse_seeds(seeds)
    if isinstance(grid, (list, tuple)) and all(isinstance(g, str)
                                               for g in grid):
      grid = parse_grid(grid)
    runs = expand(tasks, seeds, grid, gin_files, gin_params, root,
                  python=sys.executable if mode == 'local' else 'python')
    if mode != 'status':
      validate(runs)
  selected = runs
  if array_index is not None:
    if not 0 <= array_index < len(runs):
      raise ValueError(f'--array_index={array_index} is out of range: the '
                       f'sweep has {len(runs)} runs (0-{len(runs) - 1}).')
    selected = [runs[array_index]]
  if mode == 'print':
    for run in selected:
      print(run.shell, file=out)
    print(f'# {len(runs)} runs: a job array of indices 0-{len(runs) - 1}',
          file=sys.stderr)
    return 0
  if mode == 'status':
    print(status_table(runs), file=out)
    return 0
  return run_local(selected, parallel, root=root, index_runs=runs, out=out,
                   stop_timeout=stop_timeout)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    return sweep(FLAGS.tasks, FLAGS.seeds, FLAGS.grid, FLAGS.gin_file or [],
                 FLAGS.gin_param, FLAGS.root, FLAGS.mode, FLAGS.parallel,
                 FLAGS.array_index, FLAGS.stop_timeout)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f'launch.sweep: {e}')


if __name__ == '__main__':
  app.run(main)
