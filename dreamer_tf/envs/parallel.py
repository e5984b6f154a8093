"""N envs in worker processes behind one batched step (spec §4.1, §1.9).

Workers use the 'spawn' start method: forking a process that has imported
TensorFlow hangs the child (stack.md). Each worker builds its env from a
picklable constructor, e.g. `functools.partial(envs.make, 'gym:CartPole-v1',
seed=i)`; with spawn the child re-imports the parent's `__main__` module, so
a launcher script should keep its work under `if __name__ == '__main__':`.

Stopping: workers ignore SIGINT and SIGTERM. A terminal sends Ctrl-C to the
whole foreground process group, and batch schedulers (e.g. Slurm's scancel)
send SIGTERM to every process of a job, workers included; the parent owns
the stop (the training loop finishes its step and saves the env states
with its final checkpoint), then closes the workers. A worker whose parent
is gone exits on the closed pipe; SIGKILL still ends a worker (and counts as
a crash).

Crash recovery: when a worker dies (e.g. SIGKILL, segfault), raises, or does
not answer within `timeout` seconds, it is replaced by a fresh process with
the same constructor; the new env starts a new episode, so this step's obs
for that worker is an `is_first` observation. The unfinished episode is
appended to `lost_episodes` (worker, reason, steps) for the caller to log;
it is never dropped silently. A real env may crash once in a long run, so
occasional crashes only restart the worker; a crash loop stops the run with
`CrashLoopError` (its last crash's traceback in the message) by the limits
of `CrashLimits` (gin): too many crashes of one worker in a row without a
finished episode, or too many within a window of its steps. A failed
restart counts as a crash.

Bad output: every observation is checked at this boundary
(`base.check_obs`: keys, dtypes, shapes, finite floats and reward). A bad
one raises `EnvOutputError`, naming the env, the worker, the step, the key
and the value, instead of being restarted away: a NaN or inf reward or
observation is a bug of the env (it repeats, and would poison replay and
every update), so it stops the run for the env to be fixed or wrapped.

After a step that raised (`EnvOutputError`, `CrashLoopError`) the envs are
past the observations their caller holds: `get_states` then gives None for
every env, so a checkpoint written on the way out saves no env states and a
resume starts new episodes instead of pairing them wrongly.
"""
import collections
import dataclasses
import functools
import logging
import multiprocessing
from multiprocessing import connection
import pickle
import signal
import traceback

import gin
import numpy as np

from dreamer_tf.envs import base

LOG = logging.getLogger(__name__)

FIX_OUTPUT = (
    'Fix the env, or wrap it so that it returns finite values of the '
    "obs_space's dtypes and shapes (e.g. clip the reward, or replace NaN), "
    'before it reaches the agent.')


@gin.configurable('CrashLimits')
@dataclasses.dataclass(frozen=True)
class CrashLimits:
  """When crashes of one env worker stop the run (gin `CrashLimits.<name>`).

  A crash is a worker that died, raised or hung, in a step or while it was
  being restarted. The run stops (`CrashLoopError`) at the `in_a_row`-th
  crash of one worker with no finished episode (is_last) in between (an
  env that cannot finish an episode), or at its `per_window`-th crash
  within `window` of its steps (an env that crashes too often, even if it
  finishes short episodes in between). Below both, the worker restarts.
  """
  in_a_row: int = 5
  per_window: int = 20
  window: int = 10_000

  def __post_init__(self):
    for name in ('in_a_row', 'per_window', 'window'):
      if getattr(self, name) < 1:
        raise ValueError(f'CrashLimits.{name} = {getattr(self, name)} must '
                         'be at least 1.')


@dataclasses.dataclass(frozen=True)
class LostEpisode:
  """An episode cut short by a worker crash."""
  worker: int
  reason: str
  # Agent steps of the unfinished episode; 0 if the worker crashed between
  # episodes (after an is_last obs, or while resetting).
  steps: int


class WorkerError(Exception):
  """A worker died, raised or timed out; the message says which."""


class EnvBuildError(RuntimeError):
  """An env constructor raised while its worker started. `error` is the
  constructor's own exception (e.g. ValueError for an unknown env id); the
  chained cause holds the worker's traceback."""

  def __init__(self, index, ctor, error):
    super().__init__(f'Env worker {index} could not build its env, {ctor}: '
                     f'{type(error).__name__}: {error}')
    self.error = error


class _BuildFailed(WorkerError):
  """The worker's env constructor raised: `error`, and its traceback."""

  def __init__(self, error, details):
    super().__init__(f'worker could not build its env:\n{details}')
    self.error = error


class CrashLoopError(RuntimeError):
  """A worker crashed more often than `CrashLimits` allow (module doc)."""


class EnvOutputError(ValueError):
  """An env returned a bad observation or reward (module doc)."""


def describe(ctor):
  """An env constructor as errors name it, e.g.
  "make('gym:CartPole-v1', seed=0)" for a functools.partial of envs.make."""
  if isinstance(ctor, functools.partial):
    args = [describe(a) if isinstance(a, functools.partial) else repr(a)
            for a in ctor.args]
    args += [f'{k}={v!r}' for k, v in ctor.keywords.items()]
    return f'{describe(ctor.func)}({", ".join(args)})'
  return getattr(ctor, '__qualname__', None) or repr(ctor)


class _Crashes:
  """One worker's crashes, counted against `CrashLimits`."""

  def __init__(self, limits):
    self.limits = limits
    self.in_a_row = 0
    self.steps = collections.deque()  # Worker steps of recent crashes.

  def episode_finished(self):
    self.in_a_row = 0

  def crashed(self, step):
    """Counts a crash at the worker's `step`; returns why the run must
    stop, or None."""
    limits = self.limits
    self.in_a_row += 1
    self.steps.append(step)
    while self.steps[0] <= step - limits.window:
      self.steps.popleft()
    if self.in_a_row >= limits.in_a_row:
      return (f'crashed {self.in_a_row} times in a row without finishing an '
              f'episode (CrashLimits.in_a_row = {limits.in_a_row})')
    if len(self.steps) >= limits.per_window:
      return (f'crashed {len(self.steps)} times within {limits.window} of '
              f'its steps (CrashLimits.per_window = {limits.per_window}, '
              f'CrashLimits.window = {limits.window})')
    return None


def _serve(ctor, conn):
  """Worker process: builds the env, then answers commands until 'close'."""
  for sig in (signal.SIGINT, signal.SIGTERM):  # The parent stops us.
    signal.signal(sig, signal.SIG_IGN)
  env = None
  try:
    try:
      env = ctor()
    except Exception as e:  # pylint: disable=broad-except
      # The constructor's own error, for the parent's EnvBuildError.
      conn.send(('build_error', (_portable(e), traceback.format_exc())))
      return
    conn.send(('ok', (env.obs_space, env.act_space)))
    while True:
      cmd, payload = conn.recv()
      if cmd == 'step':
        conn.send(('ok', env.step(payload)))
      elif cmd == 'get_state':
        conn.send(('ok', env.get_state()))
      elif cmd == 'set_state':
        env.set_state(payload)
        conn.send(('ok', None))
      elif cmd == 'close':
        break
      else:
        raise ValueError(f'Unknown worker command {cmd!r}.')
  except EOFError:
    pass  # Parent gone: just exit.
  except Exception:  # pylint: disable=broad-except
    try:
      conn.send(('error', traceback.format_exc()))
    except OSError:
      pass
  finally:
    if env is not None:
      env.close()
    conn.close()


def _portable(error):
  """`error` if it survives pickling (to the parent process), else a
  RuntimeError with its type and message."""
  try:
    return pickle.loads(pickle.dumps(error))
  except Exception:  # pylint: disable=broad-except
    return RuntimeError(f'{type(error).__name__}: {error}')


def _status(process):
  """How a worker process ended, e.g. 'was killed by signal SIGKILL'."""
  process.join(1)
  code = process.exitcode
  if code is None:
    return 'is still running'
  if code < 0:
    try:
      return f'was killed by signal {signal.Signals(-code).name}'
    except ValueError:
      return f'was killed by signal {-code}'
  return f'exited with code {code}'


class _Worker:
  """One env process and its pipe."""

  def __init__(self, context, ctor, index, timeout):
    self.index, self.timeout = index, timeout
    self.conn, child = context.Pipe()
    self.process = context.Process(
        target=_serve, args=(ctor, child), daemon=True,
        name=f'env-worker-{index}')
    self.process.start()
    child.close()  # Only the child holds its end: its death gives EOF here.

  def send(self, cmd, payload=None):
    try:
      self.conn.send((cmd, payload))
    except (OSError, ValueError) as e:
      status = _status(self.process)
      detail = f' but the send failed: {e}' if self.process.is_alive() else ''
      raise WorkerError(f'worker {status}{detail}') from e

  def recv(self, timeout=None):
    """The worker's next reply; WorkerError if it died, raised or hung."""
    timeout = self.timeout if timeout is None else timeout
    ready = connection.wait([self.conn, self.process.sentinel], timeout)
    if self.conn in ready:
      try:
        status, payload = self.conn.recv()
      except (EOFError, OSError):
        raise WorkerError(f'worker {_status(self.process)}') from None
      if status == 'error':
        raise WorkerError(f'worker raised:\n{payload}')
      if status == 'build_error':
        raise _BuildFailed(*payload)
      return payload
    if ready:
      raise WorkerError(f'worker {_status(self.process)}')
    raise WorkerError(f'worker did not answer within {timeout} s')

  def kill(self):
    """Ends a failed worker at once (it may be hung)."""
    if self.process.is_alive():
      self.process.kill()
    self.process.join(5.0)
    self.conn.close()

  def close(self, wait=5.0):
    if self.process.is_alive():
      try:
        self.conn.send(('close', None))
      except (OSError, ValueError):
        pass
      self.process.join(wait)
    if self.process.is_alive():
      self.process.kill()
      self.process.join(wait)
    self.conn.close()


class ParallelEnvs:
  """Batched auto-resetting envs, one process each (module docstring).

  ctors: picklable zero-argument callables that build a `base.Env`.
  timeout: seconds to wait for one worker's step before restarting it.
  start_timeout: seconds to wait for a worker to build its env.
  crash_limits: `CrashLimits` (default: built from the gin bindings).

  obs_space / act_space are those of one env; `step` takes and returns
  dicts of stacked arrays [N, ...].
  """

  def __init__(self, ctors, timeout=120.0, start_timeout=300.0,
               crash_limits=None):
    if not ctors:
      raise ValueError('ParallelEnvs needs at least one env constructor.')
    self._context = multiprocessing.get_context('spawn')
    self._ctors, self._timeout = list(ctors), timeout
    self._start_timeout = start_timeout
    limits = crash_limits or CrashLimits()
    self._crashes = [_Crashes(limits) for _ in self._ctors]
    self._workers = [self._start(i) for i in range(len(self._ctors))]
    spaces = []
    for worker in self._workers:
      try:
        spaces.append(worker.recv(self._start_timeout))
      except _BuildFailed as e:
        self.close()
        raise EnvBuildError(worker.index, describe(self._ctors[worker.index]),
                            e.error) from e
      except WorkerError as e:
        self.close()
        raise RuntimeError(
            f'Env worker {worker.index} '
            f'({describe(self._ctors[worker.index])}) failed to start: '
            f'{e}') from e
    self._obs_space, self._act_space = spaces[0]
    for i, other in enumerate(spaces[1:], 1):
      if other != spaces[0]:
        self.close()
        raise ValueError(
            f'Env {i} has spaces {other}, env 0 has {spaces[0]}: all '
            'constructors must build envs with the same spaces.')
    self._steps = [0] * len(self._ctors)  # Steps of unfinished episodes.
    self._worker_steps = [0] * len(self._ctors)  # step() calls, per worker.
    self._failed = False  # A step raised: envs ahead of the caller's obs.
    self.lost_episodes = []  # LostEpisode records, oldest first.

  def _start(self, index):
    return _Worker(self._context, self._ctors[index], index, self._timeout)

  def __len__(self):
    return len(self._workers)

  @property
  def obs_space(self):
    return self._obs_space

  @property
  def act_space(self):
    return self._act_space

  @property
  def pids(self):
    """Worker process ids (they change when a worker is restarted)."""
    return [w.process.pid for w in self._workers]

  def step(self, actions):
    """actions {key: [N, ...]} -> obs {key: [N, ...]}; see base.Env.step.

    Raises CrashLoopError or EnvOutputError (module doc) once every
    worker's reply of this step has been read.
    """
    failed = {}
    for i, worker in enumerate(self._workers):
      self._worker_steps[i] += 1
      try:
        worker.send('step', {k: np.asarray(v[i]) for k, v in actions.items()})
      except WorkerError as e:
        failed[i] = str(e)
    results = {}
    for i, worker in enumerate(self._workers):
      if i not in failed:
        try:
          results[i] = worker.recv()
        except WorkerError as e:
          failed[i] = str(e)
    try:
      for i in sorted(failed):
        results[i] = self._recover(i, failed[i])
      for i in range(len(self._workers)):
        self._check(i, results[i])
    except (CrashLoopError, EnvOutputError):
      self._failed = True
      raise
    for i, obs in results.items():
      done = obs['is_first'] or obs['is_last']
      self._steps[i] = 0 if done else self._steps[i] + 1
      if obs['is_last']:
        self._crashes[i].episode_finished()
    return {k: np.stack([results[i][k] for i in range(len(results))])
            for k in self._obs_space}

  def _check(self, index, obs):
    """EnvOutputError unless `obs` of worker `index` is a good observation."""
    try:
      base.check_obs(obs, self._obs_space)
    except ValueError as e:
      first = bool(np.asarray(obs.get('is_first', False)))
      episode_step = 0 if first else self._steps[index] + 1
      raise EnvOutputError(
          f'Env worker {index} ({describe(self._ctors[index])}) returned a '
          f'bad observation at episode step {episode_step} (its step '
          f'{self._worker_steps[index]} in this process): {e}\n'
          f'{FIX_OUTPUT}') from None

  def get_states(self):
    """Each env's `get_state()` (bytes, or None if not serialisable); None
    for every env after a step that raised (module doc)."""
    if self._failed:
      return [None] * len(self._workers)
    for worker in self._workers:
      worker.send('get_state')
    return [worker.recv() for worker in self._workers]

  def set_states(self, states):
    """Restores `get_states()` output into the running workers."""
    if len(states) != len(self._workers):
      raise ValueError(f'{len(states)} env states for '
                       f'{len(self._workers)} workers.')
    for worker, state in zip(self._workers, states):
      worker.send('set_state', state)
    for worker in self._workers:
      worker.recv()
    self._steps = [0] * len(self._workers)
    self._failed = False

  def _recover(self, index, reason):
    """Records the lost episode; restarts the worker; returns its first obs.

    Every crash, a failed restart included, counts against the crash
    limits; CrashLoopError when they are reached.
    """
    lost = LostEpisode(index, reason, self._steps[index])
    self.lost_episodes.append(lost)
    zeros = {k: np.zeros(s.shape, s.dtype) for k, s in self._act_space.items()}
    while True:
      stop = self._crashes[index].crashed(self._worker_steps[index])
      self._workers[index].kill()
      if stop:
        raise CrashLoopError(
            f'Env worker {index} ({describe(self._ctors[index])}) {stop}; '
            f'the run stops. Its last crash, at its step '
            f'{self._worker_steps[index]} in this process: {reason}\nFix the '
            'env or its constructor (see the worker\'s traceback above), or '
            'bind a higher limit than the one named above if the env '
            'recovers after more restarts.')
      LOG.warning('Env worker %d crashed (%s); restarting it (%d crashes in '
                  'a row; lost an episode after %d steps).', index, reason,
                  self._crashes[index].in_a_row, lost.steps)
      self._workers[index] = worker = self._start(index)
      try:
        worker.recv(self._start_timeout)  # Spaces.
        worker.send('step', zeros)  # Ignored: the first step resets.
        return worker.recv()
      except WorkerError as e:
        reason = str(e)

  def close(self):
    for worker in self._workers:
      worker.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
