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
it is never dropped silently. A worker that fails `max_restarts` times in a
row raises RuntimeError.
"""
import dataclasses
import logging
import multiprocessing
from multiprocessing import connection
import signal
import traceback

import numpy as np

LOG = logging.getLogger(__name__)


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


def _serve(ctor, conn):
  """Worker process: builds the env, then answers commands until 'close'."""
  for sig in (signal.SIGINT, signal.SIGTERM):  # The parent stops us.
    signal.signal(sig, signal.SIG_IGN)
  env = None
  try:
    env = ctor()
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
  max_restarts: consecutive failed restarts of a worker before giving up.

  obs_space / act_space are those of one env; `step` takes and returns
  dicts of stacked arrays [N, ...].
  """

  def __init__(self, ctors, timeout=120.0, start_timeout=300.0,
               max_restarts=3):
    if not ctors:
      raise ValueError('ParallelEnvs needs at least one env constructor.')
    self._context = multiprocessing.get_context('spawn')
    self._ctors, self._timeout = list(ctors), timeout
    self._max_restarts, self._start_timeout = max_restarts, start_timeout
    self._workers = [self._start(i) for i in range(len(self._ctors))]
    spaces = []
    for worker in self._workers:
      try:
        spaces.append(worker.recv(self._start_timeout))
      except WorkerError as e:
        self.close()
        raise RuntimeError(
            f'Env worker {worker.index} failed to start: {e}\nFix the env '
            'constructor (it must be a picklable zero-argument callable '
            'returning a dreamer_tf.envs.Env).') from e
    self._obs_space, self._act_space = spaces[0]
    for i, other in enumerate(spaces[1:], 1):
      if other != spaces[0]:
        self.close()
        raise ValueError(
            f'Env {i} has spaces {other}, env 0 has {spaces[0]}: all '
            'constructors must build envs with the same spaces.')
    self._steps = [0] * len(self._ctors)  # Steps of unfinished episodes.
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
    """actions {key: [N, ...]} -> obs {key: [N, ...]}; see base.Env.step."""
    failed = {}
    for i, worker in enumerate(self._workers):
      try:
        worker.send('step', {k: np.asarray(v[i]) for k, v in actions.items()})
      except WorkerError as e:
        failed[i] = e
    results = []
    for i, worker in enumerate(self._workers):
      try:
        if i in failed:
          raise failed[i]
        obs = worker.recv()
      except WorkerError as e:
        obs = self._recover(i, str(e))
      done = obs['is_first'] or obs['is_last']
      self._steps[i] = 0 if done else self._steps[i] + 1
      results.append(obs)
    return {k: np.stack([obs[k] for obs in results])
            for k in self._obs_space}

  def get_states(self):
    """Each env's `get_state()` (bytes, or None if not serialisable)."""
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

  def _recover(self, index, reason):
    """Records the lost episode; restarts the worker; returns its first obs."""
    lost = LostEpisode(index, reason, self._steps[index])
    self.lost_episodes.append(lost)
    LOG.warning('Env worker %d lost an episode after %d steps (%s); '
                'restarting it.', index, lost.steps, reason)
    zeros = {k: np.zeros(s.shape, s.dtype) for k, s in self._act_space.items()}
    for _ in range(self._max_restarts):
      self._workers[index].kill()
      self._workers[index] = worker = self._start(index)
      try:
        worker.recv(self._start_timeout)  # Spaces.
        worker.send('step', zeros)  # Ignored: the first step resets.
        return worker.recv()
      except WorkerError as e:
        reason = str(e)
    raise RuntimeError(
        f'Env worker {index} failed {self._max_restarts} restarts in a row; '
        f'last error: {reason}\nFix the env (or its constructor) or raise '
        'max_restarts.')

  def close(self):
    for worker in self._workers:
      worker.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
