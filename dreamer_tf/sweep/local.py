"""Runs a sweep's plan on this machine.

`run_local` starts every unfinished run of a plan (`sweep_plan.Run`) as a
subprocess, N at once, each with its output in <logdir>/sweep.log and its
last attempt in <logdir>/sweep.json (with the run's task, seed and, for an
experiment sweep, its experiment, description and method, which
`launch.results` reads); finished runs (<logdir>/done.json) are
skipped and started ones resume from their checkpoint; <root>/index.json
and index.md list every run's status (sweep/status.py reads and writes
those files). Ctrl-C or SIGTERM stops the running runs cleanly (SIGINT,
then SIGKILL after a timeout or a second Ctrl-C).

With `snapshot_every` the sweep also copies each running run's newest
checkpoint aside every so many seconds, and once more after the run ends
or is stopped (`run/snapshots.py`, into <logdir>/snapshots, as
`launch.snapshot` does beside a single run), optionally with the replay's
step priorities, for `launch.probe_deepsea` and `launch.evaluate`. Every
checkpoint is kept when snapshot_every is below the runs'
`train.save_every`; a pass with nothing new reads only state.json files.
A copy that fails is reported (once, until one succeeds) and never stops
the sweep. One copier per directory: do not also run `launch.snapshot
--out=<logdir>/snapshots` on a run the sweep copies.
"""
import collections
import os
import signal
import socket
import subprocess
import sys
import time

from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import DONE_FILE
from dreamer_tf.run import snapshots
from dreamer_tf.sweep import status as sweep_status

# The project root: on the runs' PYTHONPATH so that `launch.train` imports.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class _Interrupted(Exception):
  """SIGTERM reached the sweep (Ctrl-C raises KeyboardInterrupt)."""


def run_local(runs, parallel=1, root=None, index_runs=None, out=None,
              stop_timeout=120.0, poll=0.2, nice=0, snapshot_every=None,
              snapshot_priorities=False):
  """Runs the unfinished `runs` as subprocesses, `parallel` at once.

  Each run executes its `argv` (cwd unchanged, the repo on PYTHONPATH) with
  output appended to <logdir>/sweep.log. Finished runs are skipped, as are
  runs a live process on this host is already running. A failing run does
  not stop the others. If `root` is given, <root>/index.json (listing
  `index_runs`, default `runs`) is rewritten whenever a run starts or ends.
  Returns the exit status: 0 if every launched run finished, 1 if any
  failed or ended unfinished, 130 if interrupted. `nice` (0-19) lowers the
  runs' CPU priority (`_lower_priority`). `snapshot_every` (seconds, None
  off) and `snapshot_priorities`: checkpoint copies (module docstring).
  """
  if not 0 <= nice <= 19:
    raise ValueError(f'nice={nice}: use 0 (normal) to 19 (lowest).')
  if snapshot_every is not None and not snapshot_every > 0:
    raise ValueError(f'snapshot_every={snapshot_every}: seconds > 0 between '
                     'checkpoint copies, or None for none.')
  out = out or sys.stdout
  copier = _Snapshots(snapshot_every, snapshot_priorities, out)
  index_runs = index_runs or runs

  def update_index():
    if root:
      sweep_status.write_index(root, index_runs)

  todo, skipped = collections.deque(), collections.Counter()
  for run in runs:
    status = sweep_status.read_status(run)
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
        proc = _start(run, nice)
        if not proc:
          results[run.name] = 'failed'
          _say(out, f'fail  {run.name}: could not start (see '
               f'{os.path.join(run.logdir, sweep_status.LOG_FILE)})')
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
               f'{sweep_status.exit_text(code)})')
          update_index()
          copier.copy(run)  # Its final checkpoint, written at its exit.
      copier.poll(active)
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
    copier.copy_last(active)  # The checkpoints they saved on the way out.
  finally:
    _restore_sigterm(previous)
  _summary(out, runs, results, skipped, interrupted, len(todo))
  if interrupted:
    return 130
  return 0 if all(r == 'done' for r in results.values()) else 1


class _Snapshots:
  """Checkpoint copies of the running runs (`run_local`'s snapshot_every):
  `poll` copies every `every` seconds, `copy` at once, `copy_last` after
  an interrupt; off when every is None."""

  def __init__(self, every, priorities, out):
    self.every, self.priorities, self.out = every, priorities, out
    self.due = time.monotonic() + (every or 0)
    self.failed = set()  # Runs whose copy failure was reported.

  def poll(self, active):
    if self.every and time.monotonic() >= self.due:
      for run in active:
        self.copy(run)
      self.due = time.monotonic() + self.every  # After a slow pass too.

  def copy_last(self, runs):
    """Copies the runs' checkpoints; another Ctrl-C (or SIGTERM) skips the
    copies left, naming them."""
    runs = list(runs)
    for i, run in enumerate(runs):
      try:
        self.copy(run)
      except (KeyboardInterrupt, _Interrupted):
        for left in runs[i:]:  # An incomplete copy is removed.
          _say(self.out, f'note  {left.name}: last checkpoint not copied '
               '(interrupted)')
        return

  def copy(self, run):
    ckpt = os.path.join(run.logdir, 'ckpt')
    if not self.every or not os.path.isfile(os.path.join(ckpt,
                                                         ckpt_lib.LATEST)):
      return  # Off, or no checkpoint yet (a run starting up).
    try:
      path = snapshots.copy_newest(
          run.logdir, os.path.join(run.logdir, 'snapshots'), self.priorities)
    except _Interrupted:
      raise
    except Exception as e:  # pylint: disable=broad-except
      # A copy never stops the sweep (the runs would go on unsupervised).
      if run.name not in self.failed:
        self.failed.add(run.name)
        _say(self.out, f'note  {run.name}: checkpoint copy failed '
             f'({type(e).__name__}: {e}); retrying every {self.every:g} s, '
             'further failures not reported')
      return
    self.failed.discard(run.name)  # A later failure is news again.
    if path:
      _say(self.out, f'snap  {run.name}: {path}')


def _lower_priority(nice):
  """A Popen preexec_fn: the run's CPU priority `nice` steps lower.

  Each run starts in its own session, and on Linux with autogroups (the
  default scheduler setting) every session is a scheduling group of its
  own, among which a process's nice value counts for nothing: the group
  shares the CPU equally with every other session, e.g. a training run
  started from another shell. So the group's own nice
  (/proc/self/autogroup) is set too, where the kernel has it.
  """
  def apply():
    os.nice(nice)
    try:
      with open('/proc/self/autogroup', 'w') as f:
        f.write(str(nice))
    except OSError:
      pass  # No autogroups (not Linux, or switched off): nice is enough.
  return apply


def _start(run, nice=0):
  """Starts `run` in its own session (`nice` steps lower in CPU
  priority): (Popen, log), or None on failure."""
  os.makedirs(run.logdir, exist_ok=True)
  log = open(os.path.join(run.logdir, sweep_status.LOG_FILE), 'a',
             buffering=1)
  log.write(f'\n=== launch.sweep {sweep_status.now()} on '
            f'{socket.gethostname()}: {run.shell}\n')
  env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=os.pathsep.join(
      [ROOT] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
  try:
    proc = subprocess.Popen(
        list(run.argv), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        preexec_fn=_lower_priority(nice) if nice else None)
  except OSError as e:
    log.write(f'launch.sweep: could not start: {e}\n')
    log.close()
    sweep_status.write_record(run, state='exited', exit_code=None,
                              error=str(e), ended=sweep_status.now())
    return None
  sweep_status.write_record(
      run, state='running', pid=proc.pid,
      pid_start=sweep_status.create_time(proc.pid),
      started=sweep_status.now())
  return proc, log


def _finish(run, proc, code, interrupted=False):
  """Records how `run` ended; returns done, failed or partial."""
  proc[1].close()
  record = sweep_status.read_record(run.logdir)
  record.update(state='exited', exit_code=code, ended=sweep_status.now(),
                interrupted=interrupted)
  sweep_status.write_record(run, **record)
  return sweep_status.logdir_status(run.logdir)['status']


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
      log = os.path.join(by_name[name].logdir, sweep_status.LOG_FILE)
      _say(out, f'FAILED {name}; last lines of {log}:')
      for line in _tail(log, 5):
        _say(out, f'    {line}')
    elif result == 'partial' and not interrupted:
      _say(out, f'UNFINISHED {name}: exited 0 without '
           f'{DONE_FILE} (stopped by a signal?); rerun to resume.')


# --- Helpers -----------------------------------------------------------------


def _tail(path, n):
  try:
    with open(path, errors='replace') as f:
      return [line.rstrip('\n') for line in collections.deque(f, n)]
  except OSError:
    return []


def _say(out, line):
  print(line, file=out, flush=True)
