"""dm_control suite adapter (spec §5.2, Decisions table)."""
import os
import subprocess
import sys

import dm_env
import numpy as np
import pytest

from dreamer_tf import envs
from dreamer_tf.envs import base
from dreamer_tf.envs import dmc
from tests.conftest import assert_same, run_isolated


def test_proprio_cartpole_spaces_and_time_limit():
  env = envs.make('dmc:cartpole_balance', seed=0)
  assert set(env.obs_space) - set(base.FLAG_SPACES) == {'position', 'velocity'}
  assert env.obs_space['position'].shape == (3,)
  assert env.obs_space['velocity'].shape == (2,)
  assert all(env.obs_space[k].dtype == 'float32'
             for k in ('position', 'velocity'))
  space = env.act_space['action']
  assert space.shape == (1,) and space.dtype == 'float32'
  assert (space.low, space.high) == (-1, 1)
  obs = env.step(None)
  base.check_obs(obs, env.obs_space)
  assert obs['is_first'] and obs['reward'] == 0
  rng = np.random.default_rng(0)
  steps, total = 0, 0.0
  while True:
    obs = env.step({'action': rng.uniform(-1, 1, (1,)).astype(np.float32)})
    base.check_obs(obs, env.obs_space)
    steps += 1
    total += obs['reward']
    if obs['is_last']:
      break
    assert steps < 600
  # 1000 physics control steps at action repeat 2 (Decisions table).
  assert steps == 500 and not obs['is_terminal']
  assert 0 < total <= 1000  # Rewards in [0, 1] summed over the repeat.
  assert env.step({'action': np.zeros(1, np.float32)})['is_first']
  env.close()


def test_repeat_sums_rewards():
  def rewards(repeat, n):
    env = dmc.DMC('cartpole_balance', repeat=repeat, seed=3)
    env.step(None)
    return [env.step({'action': np.zeros(1, np.float32)})['reward']
            for _ in range(n)]
  one, two = rewards(1, 20), rewards(2, 10)
  np.testing.assert_allclose(two, np.reshape(one, (10, 2)).sum(1), rtol=1e-5)
  assert max(one) <= 1 and max(two) > 1


def test_actions_are_clipped_and_rescaled_to_the_spec():
  # Quadruped's actuators have asymmetric bounds, e.g. [-1, 1.1], [-.8, .8].
  env = envs.make('dmc:quadruped_walk', seed=0, repeat=1)
  low = np.tile([-1, -1, -0.8], 4)
  high = np.tile([1, 1.1, 0.8], 4)
  assert env.act_space['action'].shape == (12,)
  env.step(None)
  for action, ctrl in [(-1, low), (1, high), (0, (low + high) / 2),
                       (5, high), (-5, low)]:
    env.step({'action': np.full(12, action, np.float32)})
    np.testing.assert_allclose(env.physics.data.ctrl, ctrl, atol=1e-6)
  env.close()


class Terminating:
  """A real dm_control task whose episode ends with discount 0 at step 3."""

  def __init__(self):
    from dm_control import suite  # pylint: disable=import-outside-toplevel
    self._env = suite.load('cartpole', 'balance', task_kwargs={'random': 0})
    self.physics, self.count = self._env.physics, 0

  def __getattr__(self, name):
    return getattr(self._env, name)

  def reset(self):
    self.count = 0
    return self._env.reset()

  def step(self, action):
    self.count += 1
    step = self._env.step(action)
    if self.count == 3:
      step = step._replace(step_type=dm_env.StepType.LAST, discount=0.0)
    return step


def test_discount_zero_is_terminal():
  env = dmc.DMC(Terminating(), repeat=1)
  flags = [(bool(o['is_last']), bool(o['is_terminal'])) for o in [
      env.step(None)] + [env.step({'action': np.zeros(1, np.float32)})
                         for _ in range(4)]]
  assert flags == [(False, False)] * 3 + [(True, True), (False, False)]


def test_seed_is_reproducible():
  def first(seed):
    return envs.make('dmc:cartpole_swingup', seed=seed).step(None)['position']
  np.testing.assert_array_equal(first(1), first(1))
  assert not np.array_equal(first(1), first(2))


def test_cup_maps_to_ball_in_cup():
  assert dmc.parse_task('cup_catch', [('ball_in_cup', 'catch')]) == (
      'ball_in_cup', 'catch')
  env = envs.make('dmc:cup_catch', seed=0)
  assert env.act_space['action'].shape == (2,)
  env.close()


def test_unknown_task_suggests_close_name():
  with pytest.raises(ValueError, match=r"'walker_wlak'.*did you mean "
                     r"'walker_walk'"):
    envs.make('dmc:walker_wlak')


GL_WORDS = ('egl', 'osmesa', 'opengl', 'glfw', 'mujoco_gl', 'gladload')


def _render_once():
  dmc.DMC('cartpole_balance', proprio=False, image=True).step(None)


@pytest.fixture(scope='module')
def rendering():
  """Skips (with the reason) only if the headless GL backend is missing."""
  try:
    run_isolated(_render_once)
  except Exception as e:  # pylint: disable=broad-except
    text = f'{type(e).__module__} {type(e).__name__} {e}'.lower()
    if any(word in text for word in GL_WORDS):
      pytest.skip(f"MuJoCo rendering backend MUJOCO_GL="
                  f"{os.environ.get('MUJOCO_GL')} is unavailable: {e}")
    raise


def _check_vision_image():
  env = envs.make('dmc_vision:cartpole_swingup', seed=0)
  assert set(env.obs_space) - set(base.FLAG_SPACES) == {'image'}
  assert env.obs_space['image'].shape == (64, 64, 3)
  first = env.step(None)
  base.check_obs(first, env.obs_space)
  image = first['image']
  assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
  assert image.std() > 5 and len(np.unique(image.reshape(-1, 3), axis=0)) > 10
  for _ in range(10):
    obs = env.step({'action': np.ones(1, np.float32)})
  assert np.abs(obs['image'].astype(int) - image).mean() > 0.5  # It moved.
  env.close()


def test_vision_renders_a_changing_64x64_image(rendering):
  del rendering
  run_isolated(_check_vision_image)


def _check_cameras():
  for task, camera, other in [('quadruped_walk', 2, 0), ('walker_walk', 0, 1)]:
    env = dmc.DMC(task, proprio=False, image=True, seed=0)
    image = env.step(None)['image']
    np.testing.assert_array_equal(
        image, env.physics.render(64, 64, camera_id=camera))
    assert not np.array_equal(
        image, env.physics.render(64, 64, camera_id=other))
    env.close()


def test_quadruped_renders_camera_2_others_camera_0(rendering):
  del rendering
  run_isolated(_check_cameras)


def test_missing_dm_control_names_the_install_command(monkeypatch):
  monkeypatch.setitem(sys.modules, 'dm_control', None)
  with pytest.raises(ImportError, match=r"pip install -e '\.\[dmc\]'"):
    envs.make('dmc:walker_walk')


def _continues_exactly(name, warmup, steps):
  """Env A saves its state after `warmup` random steps and runs `steps`
  more; a fresh env B with another seed restores it and must match."""
  rng = np.random.default_rng(0)
  a = envs.make(name, seed=0)
  shape = a.act_space['action'].shape
  def actions(n):
    return [{'action': rng.uniform(-1, 1, shape).astype(np.float32)}
            for _ in range(n)]
  a.step(None)
  for action in actions(warmup):
    a.step(action)
  state = a.get_state()
  assert isinstance(state, bytes)
  replay = actions(steps)
  expected = [a.step(action) for action in replay]
  b = envs.make(name, seed=1)
  b.step(None)
  for action in actions(3):
    b.step(action)
  b.set_state(state)
  assert_same([b.step(action) for action in replay], expected)
  return expected


@pytest.mark.parametrize('task, warmup, steps', [
    # The 500-step limit falls inside the replay: the next reset draws from
    # the restored task RNG.
    ('walker_walk', 480, 40),  # Contacts.
    ('reacher_easy', 480, 40),  # Each reset moves the target in the model.
    ('cartpole_balance', 500, 3),  # Saved at is_last: the replay resets.
])
def test_state_continues_the_episode_exactly(task, warmup, steps):
  expected = _continues_exactly(f'dmc:{task}', warmup, steps)
  assert any(o['is_first'] for o in expected)


def _check_vision_state():
  _continues_exactly('dmc_vision:reacher_easy', 20, 10)


def test_vision_state_continues_the_episode_exactly(rendering):
  del rendering
  run_isolated(_check_vision_state)


def test_state_of_another_task_or_setting_is_refused():
  state = envs.make('dmc:cartpole_balance', seed=0).get_state()
  with pytest.raises(ValueError, match=(
      r"other settings \(task='cartpole_balance' in the state, "
      r"'cartpole_swingup' here\)")):
    envs.make('dmc:cartpole_swingup').set_state(state)
  with pytest.raises(ValueError, match=r'repeat=2 in the state, 4 here'):
    envs.make('dmc:cartpole_balance', repeat=4).set_state(state)
  with pytest.raises(ValueError, match=(
      r"Not an env state of the dmc adapter \(saved by 'atari'\)")):
    envs.make('dmc:cartpole_balance').set_state(
        base.pack_state('atari', {}, None))


def test_wrapped_environment_has_no_state():
  # A wrapper may hold state of its own (here the step count): the run
  # restarts episodes rather than resuming them wrongly.
  assert dmc.DMC(Terminating(), repeat=1).get_state() is None


def test_proprio_tasks_import_without_gl_warnings():
  # Nothing renders: no 'X11: The DISPLAY environment variable is missing'
  # from dm_control's GLFW probe in every env worker.
  env = {k: v for k, v in os.environ.items()
         if k not in ('MUJOCO_GL', 'DISPLAY')}
  proc = subprocess.run(
      [sys.executable, '-W', 'always', '-c', 'from dreamer_tf import envs; '
       "envs.make('dmc:cartpole_balance').close()"],
      env=env, capture_output=True, text=True, timeout=300, check=True)
  assert 'GLFW' not in proc.stderr and 'DISPLAY' not in proc.stderr, (
      proc.stderr[-2000:])
