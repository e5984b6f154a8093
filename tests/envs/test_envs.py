"""`dreamer_tf.envs.make`: id parsing, presets and errors (spec §5)."""
import pytest

from dreamer_tf import envs
from tests.conftest import run_isolated
from dreamer_tf.envs import gym as gym_env


def test_make_gym_returns_env():
  env = envs.make('gym:CartPole-v1', seed=0)
  assert isinstance(env, envs.Env) and isinstance(env, gym_env.GymEnv)
  assert env.step(None)['is_first']
  env.close()


def test_mountain_car_runs_through_the_gym_adapter():
  """Issue 12's second exploration task needs no code of its own: 200
  steps of -1, a time limit (not a terminal) and 3 discrete actions."""
  env = envs.make('gym:MountainCar-v0', seed=0)
  assert env.act_space['action'].classes == 3
  step = env.step(None)
  assert step['is_first'] and step['vector'].shape == (2,)
  rewards = []
  action = {'action': 2}  # Push right, and never enough to reach the flag.
  while not step['is_last']:
    step = env.step(action)
    rewards.append(float(step['reward']))
  assert rewards == [-1.0] * 200 and not step['is_terminal']
  env.close()


def test_parse():
  assert envs.parse('dmc_vision:walker_walk') == ('dmc_vision', 'walker_walk')
  assert envs.parse('gym:mod.sub:Id-v0') == ('gym', 'mod.sub:Id-v0')


def test_unknown_suite_suggests_close_name():
  with pytest.raises(ValueError, match=r"Unknown env suite 'atar100k'.*"
                     r"did you mean 'atari100k'"):
    envs.make('atar100k:Pong')


@pytest.mark.parametrize('name', ['CartPole-v1', 'gym:', 'gym'])
def test_malformed_id_explains_the_form(name):
  with pytest.raises(ValueError, match='suite:task'):
    envs.make(name)


def test_unknown_gym_id_suggests_close_name():
  with pytest.raises(ValueError, match=r"'CartPol-v1'.*did you mean "
                     r"'CartPole-v1'"):
    envs.make('gym:CartPol-v1')


def test_presets_are_overridable():
  assert envs.SUITES['atari'][2] == {'preset': 'atari57'}
  assert envs.SUITES['atari100k'][2] == {'preset': 'atari100k'}
  assert envs.SUITES['dmc_vision'][2] == {'proprio': False, 'image': True}
  run_isolated(_check_dmc_vision_override)


def _check_dmc_vision_override():
  env = envs.make('dmc_vision:cartpole_balance', proprio=True, size=(48, 48))
  assert {'position', 'velocity', 'image'} <= set(env.obs_space)
  assert env.obs_space['image'].shape == (48, 48, 3)
  env.close()
