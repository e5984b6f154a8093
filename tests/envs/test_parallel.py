"""Env worker processes: batching, spawn, crash recovery (spec §4.1)."""
import functools
import os
import signal
import sys
import time

import numpy as np
import pytest

from dreamer_tf import spaces
from dreamer_tf.envs import base
from dreamer_tf.envs import make
from dreamer_tf.envs import parallel
from tests.conftest import bind


def cartpoles(n):
  return [functools.partial(make, 'gym:CartPole-v1', seed=i) for i in range(n)]


class Faulty(base.Env):
  """Counts steps; raises (or hangs) at step `fail_at` of each episode."""

  def __init__(self, fail_at=3, hang=False):
    self.fail_at, self.hang, self.t = fail_at, hang, 0

  @property
  def obs_space(self):
    return base.with_flags({'t': spaces.Space((1,), 'float32')})

  @property
  def act_space(self):
    return {'action': spaces.Space((), 'int32', classes=2)}

  def _obs(self, **flags):
    return base.observation({'t': np.array([self.t], np.float32)}, **flags)

  def _reset(self):
    self.t = 0
    return self._obs(is_first=True)

  def _step(self, action):
    self.t += 1
    if self.t == self.fail_at:
      if self.hang:
        time.sleep(60)
      raise RuntimeError(f'simulator exploded at step {self.t}')
    return self._obs(reward=1.0)


class Probe(Faulty):
  """Observes whether `module` is imported in the worker process."""

  def __init__(self, module):
    super().__init__(fail_at=-1)
    self.module = module

  def _obs(self, **flags):
    loaded = float(self.module in sys.modules)
    return base.observation({'t': np.array([loaded], np.float32)}, **flags)


class Flaky(Faulty):
  """Episodes of `length` steps; the process dies at its `crash_at`-th step
  overall, so every crash comes after finished episodes."""

  def __init__(self, length=2, crash_at=5):
    super().__init__(fail_at=-1)
    self.length, self.crash_at, self.total = length, crash_at, 0

  def _step(self, action):
    self.total += 1
    if self.total == self.crash_at:
      os._exit(3)
    obs = super()._step(action)
    return {**obs, 'is_last': np.bool_(self.t == self.length)}


class BuildOnce(Faulty):
  """Builds once (it writes `marker`); every later build fails."""

  def __init__(self, marker):
    if os.path.exists(marker):
      raise OSError('license server gone')
    open(marker, 'w').close()
    super().__init__(fail_at=2)


class BadOutput(Faulty):
  """Returns `value` under `key` at episode step `at` (a bad observation)."""

  def __init__(self, key='reward', value=float('nan'), at=2):
    super().__init__(fail_at=-1)
    self.key, self.value, self.at = key, value, at

  def _step(self, action):
    obs = super()._step(action)
    if self.t == self.at:
      obs[self.key] = self.value
    return obs


def fail_to_build():
  raise OSError('no ROM here')


def test_two_cartpoles_match_serial_envs():
  rng = np.random.default_rng(0)
  serial = [ctor() for ctor in cartpoles(2)]
  with parallel.ParallelEnvs(cartpoles(2)) as envs:
    assert len(envs) == 2
    assert envs.obs_space == serial[0].obs_space
    assert envs.act_space == serial[0].act_space
    for t in range(40):
      actions = {'action': rng.integers(0, 2, 2).astype(np.int32)}
      obs = envs.step(actions)
      assert obs['vector'].shape == (2, 4) and obs['vector'].dtype == np.float32
      for key in ('reward', 'is_first', 'is_last', 'is_terminal'):
        assert obs[key].shape == (2,)
        assert obs[key].dtype == envs.obs_space[key].dtype
      assert obs['is_first'].all() == (t == 0)
      for i, env in enumerate(serial):
        expected = env.step({'action': actions['action'][i]})
        for key, value in expected.items():
          np.testing.assert_array_equal(obs[key][i], value)
    assert envs.lost_episodes == []


def test_sigkill_restarts_the_worker_and_reports_the_lost_episode():
  with parallel.ParallelEnvs(cartpoles(2)) as envs:
    zeros = {'action': np.zeros(2, np.int32)}
    alt = {'action': np.array([0, 1], np.int32)}
    envs.step(zeros)
    for _ in range(3):
      envs.step(alt)
    old = envs.pids
    os.kill(old[0], signal.SIGKILL)
    obs = envs.step(alt)
    assert obs['is_first'].tolist() == [True, False]
    assert obs['reward'].tolist() == [0.0, 1.0]
    assert envs.pids[0] != old[0] and envs.pids[1] == old[1]
    assert envs.lost_episodes == [parallel.LostEpisode(
        worker=0, reason='worker was killed by signal SIGKILL', steps=3)]
    # The run goes on with the new worker.
    obs = envs.step(alt)
    assert not obs['is_first'].any() and obs['reward'].tolist() == [1.0, 1.0]


def test_workers_ignore_ctrl_c_and_sigterm_so_the_parent_decides_when_to_stop():
  # A terminal's Ctrl-C reaches every process of the foreground group, a
  # scheduler's SIGTERM every process of the job.
  with parallel.ParallelEnvs(cartpoles(2)) as envs:
    alt = {'action': np.array([0, 1], np.int32)}
    envs.step(alt)
    pids = envs.pids
    for pid in pids:
      os.kill(pid, signal.SIGINT)
      os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    obs = envs.step(alt)
    assert not obs['is_first'].any()
    assert envs.pids == pids and envs.lost_episodes == []
    assert len(envs.get_states()) == 2  # What a final checkpoint asks for.


def test_raising_env_is_restarted_with_the_traceback_reported():
  ctors = [functools.partial(Faulty, fail_at=3), functools.partial(Faulty, 99)]
  with parallel.ParallelEnvs(ctors) as envs:
    action = {'action': np.zeros(2, np.int32)}
    ts = [envs.step(action)['t'][:, 0].tolist() for _ in range(5)]
    # Worker 0 raises at its 3rd step: a new episode starts in its place.
    assert ts == [[0, 0], [1, 1], [2, 2], [0, 3], [1, 4]]
    (lost,) = envs.lost_episodes
    assert lost.worker == 0 and lost.steps == 2
    assert 'RuntimeError: simulator exploded at step 3' in lost.reason


def test_hung_worker_times_out_and_is_restarted():
  ctors = [functools.partial(Faulty, fail_at=2, hang=True),
           functools.partial(Faulty, 99)]
  with parallel.ParallelEnvs(ctors, timeout=1.0) as envs:
    action = {'action': np.zeros(2, np.int32)}
    envs.step(action)
    envs.step(action)
    obs = envs.step(action)
    assert obs['is_first'].tolist() == [True, False]
    (lost,) = envs.lost_episodes
    assert 'did not answer within 1.0 s' in lost.reason and lost.steps == 1


def test_workers_are_spawned_not_forked():
  # A forked child inherits the parent's modules (and hangs if the parent
  # imported TensorFlow, stack.md); a spawned one starts clean.
  import wave  # pylint: disable=import-outside-toplevel,unused-import
  assert 'wave' in sys.modules
  with parallel.ParallelEnvs([functools.partial(Probe, 'wave')]) as envs:
    assert envs.step({'action': np.zeros(1, np.int32)})['t'][0, 0] == 0


def test_broken_constructor_fails_loudly():
  # The constructor's own error reaches the parent (launch/errors.py shows
  # it in one line); its traceback is the chained cause.
  with pytest.raises(parallel.EnvBuildError,
                     match=r'worker 1 could not build its env, fail_to_build: '
                     'OSError: no ROM here') as info:
    parallel.ParallelEnvs([cartpoles(1)[0], fail_to_build])
  assert isinstance(info.value.error, OSError)
  assert 'Traceback' in str(info.value.__cause__)


def test_mismatched_spaces_are_rejected():
  with pytest.raises(ValueError, match='same spaces'):
    parallel.ParallelEnvs([cartpoles(1)[0], Faulty])


def _step_until_error(envs, steps=40):
  action = {'action': np.zeros(len(envs), np.int32)}
  for _ in range(steps):
    envs.step(action)


def test_a_worker_that_crashes_every_episode_stops_with_its_traceback():
  # It never finishes an episode: restarting it again cannot help.
  ctors = [functools.partial(Faulty, fail_at=99), functools.partial(Faulty, 3)]
  limits = parallel.CrashLimits(in_a_row=3)
  with parallel.ParallelEnvs(ctors, crash_limits=limits) as envs:
    with pytest.raises(parallel.CrashLoopError) as error:
      _step_until_error(envs)
    message = str(error.value)
    assert message.startswith('Env worker 1 (Faulty(3)) crashed 3 times in '
                              'a row without finishing an episode')
    assert 'CrashLimits.in_a_row = 3' in message
    # A reset, 2 steps, then the crash: at steps 4, 7 and 10.
    assert 'at its step 10 in this process' in message
    assert 'RuntimeError: simulator exploded at step 3' in message
    assert 'Fix the env' in message
    assert [lost.worker for lost in envs.lost_episodes] == [1] * 3
    # Its envs are past the caller's observations: no state to checkpoint.
    assert envs.get_states() == [None, None]


def test_occasional_crashes_restart_until_the_rate_limit():
  # Each process finishes two episodes, then dies (every 7 steps): never
  # twice in a row.
  ctors = [functools.partial(Flaky, length=2, crash_at=5)]
  limits = parallel.CrashLimits(in_a_row=2, per_window=4, window=100)
  with parallel.ParallelEnvs(ctors, crash_limits=limits) as envs:
    with pytest.raises(parallel.CrashLoopError,
                       match=r'crashed 4 times within 100 of its steps'):
      _step_until_error(envs)
    assert len(envs.lost_episodes) == 4
  # Spread out, the same crashes are survived.
  limits = parallel.CrashLimits(in_a_row=2, per_window=4, window=10)
  with parallel.ParallelEnvs(ctors, crash_limits=limits) as envs:
    _step_until_error(envs, 40)  # Crashes at steps 8, 15, 22, 29, 36.
    assert len(envs.lost_episodes) == 5


def test_a_failed_restart_counts_as_a_crash(tmp_path):
  ctor = functools.partial(BuildOnce, str(tmp_path / 'built'))
  limits = parallel.CrashLimits(in_a_row=3)
  with parallel.ParallelEnvs([ctor], crash_limits=limits) as envs:
    with pytest.raises(parallel.CrashLoopError, match=(
        r'(?s)crashed 3 times in a row.*OSError: license server gone')):
      _step_until_error(envs)
    assert len(envs.lost_episodes) == 1  # One episode, three crashes.


def test_crash_limits_are_gin_configurable():
  bind('CrashLimits.in_a_row = 2')
  assert parallel.CrashLimits() == parallel.CrashLimits(in_a_row=2)
  with pytest.raises(ValueError, match='CrashLimits.window = 0'):
    parallel.CrashLimits(window=0)


@pytest.mark.parametrize('key, value, says', [
    ('reward', float('nan'), "'reward' = nan is not finite"),
    ('reward', np.float32(np.inf), "'reward' = inf is not finite"),
    ('t', np.array([-np.inf], np.float32),
     "'t' has 1 non-finite values of 1, first -inf at (0,)"),
    ('t', np.zeros(2, np.float32), "'t' has dtype float32 and shape (2,)"),
])
def test_bad_observations_stop_naming_worker_step_key_and_value(key, value,
                                                                 says):
  if key == 'reward' and isinstance(value, float):
    value = np.float32(value)
  ctors = [functools.partial(Faulty, fail_at=99),
           functools.partial(BadOutput, key, value, at=2)]
  with parallel.ParallelEnvs(ctors) as envs:
    with pytest.raises(parallel.EnvOutputError) as error:
      _step_until_error(envs)
    message = str(error.value)
    assert message.startswith('Env worker 1 (BadOutput(') and says in message
    assert 'at episode step 2 (its step 3 in this process)' in message
    assert 'Fix the env, or wrap it' in message
    assert envs.lost_episodes == []  # Not restarted away.
    assert envs.get_states() == [None, None]


def test_errors_name_the_env_id_of_a_make_constructor():
  assert parallel.describe(functools.partial(make, 'gym:CartPole-v1',
                                             seed=3)) == (
      "make('gym:CartPole-v1', seed=3)")
