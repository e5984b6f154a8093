"""Gymnasium adapter: spaces, action rescaling, flags, errors (spec §4.1)."""
import gymnasium as gym
import numpy as np
import pytest

from dreamer_tf.envs import base
from dreamer_tf.envs import gym as gym_env


class Recorder(gym.Env):
  """A tiny env with given spaces; records the actions it receives.

  Observations are deterministic functions of the step count; the episode
  terminates after `end` steps.
  """
  metadata = {'render_modes': []}

  def __init__(self, observation_space, action_space, end=100):
    self.observation_space, self.action_space = observation_space, action_space
    self.end, self.received, self.t = end, [], 0

  def observation(self, t):
    """The observation at step t (a seeded sample of the space)."""
    self.observation_space.seed(t)
    return self.observation_space.sample()

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    self.t = 0
    return self.observation(0), {}

  def step(self, action):
    self.received.append(action)
    self.t += 1
    return self.observation(self.t), float(self.t), self.t >= self.end, \
        False, {}


def run(env, actions):
  """First (reset) obs then one obs per action, each checked."""
  out = [env.step(None)]
  for action in actions:
    out.append(env.step(action))
  for obs in out:
    base.check_obs(obs, env.obs_space)
  return out


def test_cartpole_discrete_vector():
  env = gym_env.GymEnv('CartPole-v1', seed=0)
  assert env.act_space['action'].classes == 2
  assert env.act_space['action'].dtype == 'int32'
  assert env.obs_space['vector'].shape == (4,)
  assert env.obs_space['vector'].dtype == 'float32'
  first, *rest = run(env, [{'action': 1}] * 200)
  assert first['is_first'] and first['reward'] == 0
  ends = [i for i, obs in enumerate(rest) if obs['is_last']]
  # Pushing right always topples the pole: termination, then a new episode.
  assert ends and rest[ends[0]]['is_terminal']
  assert rest[ends[0] + 1]['is_first'] and rest[ends[0] + 1]['reward'] == 0
  assert all(obs['reward'] == 1 for obs in rest[:ends[0] + 1])
  env.close()


def test_seeding_is_reproducible_and_continues_the_stream():
  firsts = []
  for seed in (3, 3, 4):
    env = gym_env.GymEnv('CartPole-v1', seed=seed)
    obs = run(env, [{'action': 1}] * 60)
    starts = [o['vector'] for o in obs if o['is_first']]
    assert len(starts) >= 2
    firsts.append(starts)
  np.testing.assert_array_equal(firsts[0][0], firsts[1][0])
  np.testing.assert_array_equal(firsts[0][1], firsts[1][1])
  assert not np.array_equal(firsts[0][0], firsts[0][1])  # No re-seeding.
  assert not np.array_equal(firsts[0][0], firsts[2][0])


def test_truncation_is_last_but_not_terminal():
  env = gym_env.GymEnv('CartPole-v1', seed=0, max_episode_steps=5)
  obs = run(env, [{'action': i % 2} for i in range(6)])
  assert [bool(o['is_last']) for o in obs] == [False] * 5 + [True, False]
  assert not obs[5]['is_terminal'] and obs[6]['is_first']


def test_pendulum_box_action_is_rescaled_and_clipped():
  env = gym_env.GymEnv('Pendulum-v1', seed=0)
  space = env.act_space['action']
  assert space.shape == (1,) and (space.low, space.high) == (-1, 1)
  env.step(None)
  for action, torque in [(1.0, 2.0), (-1.0, -2.0), (0.25, 0.5), (3.0, 2.0)]:
    env.step({'action': np.array([action], np.float32)})
    assert env.env.unwrapped.last_u == pytest.approx(torque)


def test_box_rescaling_per_dimension_with_unbounded_passthrough():
  act = gym.spaces.Box(np.array([0, -10, -np.inf], np.float32),
                       np.array([10, 10, np.inf], np.float32))
  inner = Recorder(gym.spaces.Box(-1, 1, (2,)), act)
  env = gym_env.GymEnv(inner)
  run(env, [{'action': np.array(a, np.float32)}
            for a in ([-1, -1, 5], [0, 0.5, -7], [2, -3, 0])])
  np.testing.assert_allclose(
      np.array(inner.received),
      [[0, -10, 5], [5, 5, -7], [10, -10, 0]])
  assert inner.received[0].dtype == np.float32


def test_dict_observations_and_multidiscrete_dict_actions():
  obs_space = gym.spaces.Dict({
      'pos': gym.spaces.Box(-1, 1, (2, 3), np.float64),
      'cam': gym.spaces.Dict({
          'rgb': gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)}),
      'mode': gym.spaces.Discrete(3, start=1),
      'grid': gym.spaces.MultiDiscrete([2, 4]),
      'reward': gym.spaces.Box(-1, 1, (1,)),  # Clashes with a reserved key.
  })
  act_space = gym.spaces.Dict({
      'move': gym.spaces.MultiDiscrete([3, 4], start=[0, -1]),
      'aim': gym.spaces.Box(-2, 2, (2,)),
      'fire': gym.spaces.Discrete(2),
  })
  inner = Recorder(obs_space, act_space)
  env = gym_env.GymEnv(inner)
  o, a = env.obs_space, env.act_space
  assert set(o) == {'pos', 'cam/rgb', 'mode', 'grid', 'obs/reward', 'reward',
                    'is_first', 'is_last', 'is_terminal'}
  assert o['pos'].shape == (6,) and o['pos'].dtype == 'float32'
  assert o['cam/rgb'].shape == (16, 16, 3) and o['cam/rgb'].is_image
  assert o['mode'].classes == 3 and o['mode'].shape == ()
  assert o['grid'].classes == 4 and o['grid'].shape == (2,)
  assert set(a) == {'move_0', 'move_1', 'aim', 'fire'}
  assert [a['move_0'].classes, a['move_1'].classes] == [3, 4]
  assert a['aim'].shape == (2,) and a['fire'].classes == 2
  obs = run(env, [{'move_0': 2, 'move_1': 0, 'aim': np.array([1, 0]),
                   'fire': 1}])
  sent = inner.received[0]
  np.testing.assert_array_equal(sent['move'], [2, -1])
  np.testing.assert_allclose(sent['aim'], [2, 0])
  assert sent['fire'] == 1
  raw = inner.observation(1)
  np.testing.assert_allclose(obs[1]['pos'], raw['pos'].reshape(6), 1e-6)
  np.testing.assert_array_equal(obs[1]['cam/rgb'], raw['cam']['rgb'])
  assert obs[1]['mode'] == raw['mode'] - 1
  np.testing.assert_array_equal(obs[1]['grid'], raw['grid'])


def test_top_level_multidiscrete_splits_into_action_keys():
  inner = Recorder(gym.spaces.Box(-1, 1, (2,)),
                   gym.spaces.MultiDiscrete([2, 3, 5]))
  env = gym_env.GymEnv(inner)
  assert {k: s.classes for k, s in env.act_space.items()} == {
      'action_0': 2, 'action_1': 3, 'action_2': 5}
  run(env, [{'action_0': 1, 'action_1': 2, 'action_2': 4}])
  np.testing.assert_array_equal(inner.received[0], [1, 2, 4])
  with pytest.raises(ValueError, match='outside'):
    env.step({'action_0': 1, 'action_1': 3, 'action_2': 4})


def test_image_observation_stays_an_image_and_resizes():
  inner = Recorder(gym.spaces.Box(0, 255, (32, 48, 3), np.uint8),
                   gym.spaces.Discrete(3))
  env = gym_env.GymEnv(inner)
  assert set(env.obs_space) - set(base.FLAG_SPACES) == {'image'}
  obs = run(env, [{'action': 0}])
  np.testing.assert_array_equal(obs[1]['image'], inner.observation(1))
  resized = gym_env.GymEnv(
      Recorder(inner.observation_space, inner.action_space), size=(64, 64))
  assert resized.obs_space['image'].shape == (64, 64, 3)
  image = run(resized, [])[0]['image']
  assert image.shape == (64, 64, 3) and image.std() > 0


def test_grayscale_hw_image_gets_a_channel():
  inner = Recorder(gym.spaces.Box(0, 255, (16, 16), np.uint8),
                   gym.spaces.Discrete(2))
  env = gym_env.GymEnv(inner, size=(48, 48))
  assert env.obs_space['image'].shape == (48, 48, 1)
  assert run(env, [{'action': 1}])[1]['image'].shape == (48, 48, 1)


def test_unsupported_spaces_name_the_space_and_what_is_supported():
  with pytest.raises(ValueError, match=r'observation space Text.*Supported'):
    gym_env.GymEnv(Recorder(gym.spaces.Text(5), gym.spaces.Discrete(2)))
  tuple_act = gym.spaces.Tuple([gym.spaces.Discrete(2)])
  with pytest.raises(ValueError, match=r'action space Tuple.*Supported'):
    gym_env.GymEnv(Recorder(gym.spaces.Box(-1, 1, (2,)), tuple_act))


def test_unknown_id_suggests_close_name():
  with pytest.raises(ValueError, match=r"'CartPol-v1'.*did you mean "
                     r"'CartPole-v1'"):
    gym_env.GymEnv('CartPol-v1')


def test_tuple_observations_and_multibinary_actions():
  obs_space = gym.spaces.Tuple([gym.spaces.Box(-1, 1, (3,)),
                                gym.spaces.MultiBinary(4)])
  inner = Recorder(obs_space, gym.spaces.MultiBinary(2))
  env = gym_env.GymEnv(inner)
  assert env.obs_space['obs/0'].shape == (3,)
  assert env.obs_space['obs/1'].shape == (4,)
  assert env.obs_space['obs/1'].dtype == 'float32'
  assert {k: s.classes for k, s in env.act_space.items()} == {
      'action_0': 2, 'action_1': 2}
  obs = run(env, [{'action_0': 1, 'action_1': 0}])
  np.testing.assert_array_equal(inner.received[0], [1, 0])
  np.testing.assert_array_equal(obs[1]['obs/1'], inner.observation(1)[1])


def test_ale_ids_register_ale_py():
  env = gym_env.GymEnv('ALE/Pong-v5', seed=0, size=(64, 64), frameskip=4)
  assert env.obs_space['image'].shape == (64, 64, 3)
  assert env.act_space['action'].classes == 6
  assert run(env, [{'action': 0}])[1]['image'].std() > 0
  env.close()


def test_env_instance_rejects_make_arguments():
  inner = Recorder(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2))
  with pytest.raises(ValueError, match='need an env id'):
    gym_env.GymEnv(inner, max_episode_steps=5)


def test_state_round_trip_continues_the_same_episode():
  env = gym_env.GymEnv('CartPole-v1', seed=3)
  env.step(None)
  for _ in range(5):
    env.step({'action': np.int32(1)})
  state = env.get_state()
  assert state is not None
  expected = [env.step({'action': np.int32(i % 2)}) for i in range(8)]
  other = gym_env.GymEnv('CartPole-v1', seed=99)
  other.set_state(state)
  got = [other.step({'action': np.int32(i % 2)}) for i in range(8)]
  for a, b in zip(expected, got):
    np.testing.assert_array_equal(a['vector'], b['vector'])
    assert a['is_first'] == b['is_first'] and a['is_last'] == b['is_last']
