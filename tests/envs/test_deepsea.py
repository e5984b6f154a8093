"""DeepSea (bsuite's deep_sea, Osband et al. 2020): exact semantics, the
`deepsea:<N>` suite through our adapter, errors, and a step-by-step
comparison with bsuite itself when it is installed (`.[bsuite]`)."""
import functools
import warnings

from gymnasium.utils import env_checker
import numpy as np
import pytest

from dreamer_tf import envs
from dreamer_tf.envs import deepsea
from dreamer_tf.envs import parallel


def right_action(env, row, column):
  return int(env.action_mapping[row, column])


def run(env, choose, seed=0):
  """One episode; choose(row, column) -> action. Returns the first obs and
  the steps as (obs, reward, terminated, truncated, info)."""
  first, info = env.reset(seed=seed)
  steps = []
  while not steps or not steps[-1][2]:
    steps.append(env.step(choose(info['row'], info['column'])))
    info = steps[-1][4]
    assert len(steps) <= env.unwrapped.size
  return first, steps


def one_hot(size, row, column):
  obs = np.zeros(size * size, np.float32)
  obs[row * size + column] = 1
  return obs


@pytest.mark.parametrize('size', [1, 2, 5, 10, 23])
def test_optimal_path_collects_the_treasure(size):
  env = deepsea.DeepSeaEnv(size)
  first, steps = run(env, lambda r, c: right_action(env, r, c))
  np.testing.assert_array_equal(first, one_hot(size, 0, 0))
  assert len(steps) == size
  cost = 0.01 / size
  # bsuite's order: +1 first, then the move cost; every move is right.
  assert [s[1] for s in steps] == [-cost] * (size - 1) + [1.0 - cost]
  assert sum(s[1] for s in steps) == pytest.approx(0.99, abs=1e-12)
  assert env.optimal_return == pytest.approx(0.99, abs=1e-12)
  assert [s[2] for s in steps] == [False] * (size - 1) + [True]
  assert not any(s[3] for s in steps)
  assert [s[4]['treasure'] for s in steps] == [False] * (size - 1) + [True]
  for t, (obs, *_) in enumerate(steps[:-1], 1):
    assert obs.dtype == np.float32 and obs.shape == (size * size,)
    np.testing.assert_array_equal(obs, one_hot(size, t, t))
  # After the last step the agent is below the grid: the zero observation.
  np.testing.assert_array_equal(steps[-1][0], np.zeros(size * size))
  assert not steps[-1][4]['bad_episode']


@pytest.mark.parametrize('size', [1, 4, 10])
def test_always_left_gets_nothing(size):
  env = deepsea.DeepSeaEnv(size)
  _, steps = run(env, lambda r, c: 1 - right_action(env, r, c))
  assert len(steps) == size and steps[-1][2]
  assert [s[1] for s in steps] == [0.0] * size
  assert all(s[4]['column'] == 0 for s in steps)
  for t, (obs, *_) in enumerate(steps[:-1], 1):
    np.testing.assert_array_equal(obs, one_hot(size, t, 0))
  assert steps[-1][4]['bad_episode']


@pytest.mark.parametrize('actions, columns, rights', [
    ([1, 1, 1], [1, 2, 2], [1, 1, 1]),   # Treasure on the last step.
    ([1, 0, 1], [1, 0, 1], [1, 0, 1]),   # Left from the diagonal: no +1.
    ([0, 1, 1], [0, 1, 2], [0, 1, 1]),   # Clipped at the left edge.
    ([0, 0, 0], [0, 0, 0], [0, 0, 0]),
])
def test_hand_computed_episodes_without_randomised_actions(
    actions, columns, rights):
  env = deepsea.DeepSeaEnv(3, randomize_actions=False, unscaled_move_cost=0.3)
  np.testing.assert_array_equal(env.action_mapping, np.ones((3, 3)))
  env.reset()
  steps = [env.step(a) for a in actions]
  assert [s[4]['column'] for s in steps] == columns
  treasure = actions == [1, 1, 1]
  expected = [-0.1 * r for r in rights]
  if treasure:
    expected[-1] = 1.0 - 0.1
  np.testing.assert_allclose([s[1] for s in steps], expected, atol=1e-15)
  assert [s[2] for s in steps] == [False, False, True]
  for (obs, *_), row, column in zip(steps[:2], (1, 2), columns):
    np.testing.assert_array_equal(obs, one_hot(3, row, column))


def test_random_actions_always_last_exactly_n_steps():
  rng = np.random.default_rng(0)
  env = deepsea.DeepSeaEnv(7)
  for _ in range(50):
    _, steps = run(env, lambda r, c: int(rng.integers(2)))
    assert len(steps) == 7 and [s[2] for s in steps].count(True) == 1
    for obs, *_ in steps:
      assert obs.sum() in (0.0, 1.0)


def test_the_mapping_is_fixed_by_the_mapping_seed():
  a, b = deepsea.DeepSeaEnv(10, 42), deepsea.DeepSeaEnv(10, 42)
  np.testing.assert_array_equal(a.action_mapping, b.action_mapping)
  # bsuite's draw: RandomState(mapping_seed).binomial(1, 0.5, [N, N]).
  np.testing.assert_array_equal(
      a.action_mapping,
      np.random.RandomState(42).binomial(1, 0.5, [10, 10]))
  assert deepsea.DeepSeaEnv(10).action_mapping.tolist() == \
      a.action_mapping.tolist()  # The default is bsuite's sweep seed 42.
  assert 0 < a.action_mapping.mean() < 1
  other = deepsea.DeepSeaEnv(10, mapping_seed=7)
  assert not np.array_equal(a.action_mapping, other.action_mapping)
  unseeded = [deepsea.DeepSeaEnv(10, mapping_seed=None) for _ in range(2)]
  assert not np.array_equal(*[e.action_mapping for e in unseeded])
  with pytest.raises(ValueError):
    a.action_mapping[0, 0] = 1 - a.action_mapping[0, 0]  # Read-only.
  # The same action moves right in one cell and left in another.
  env = deepsea.DeepSeaEnv(10, 42)
  env.reset()
  _, reward, *_, info = env.step(0)
  assert (info['column'] == 1) == (env.action_mapping[0, 0] == 0)
  assert (reward < 0) == (info['column'] == 1)


def test_windy_variant_is_seeded_and_sometimes_fails_to_move_right():
  def columns(seed):
    env = deepsea.DeepSeaEnv(4, deterministic=False)
    env.reset(seed=seed)
    out = []
    for _ in range(40):  # Later resets continue the seeded stream.
      _, steps = run(env, lambda r, c: right_action(env, r, c), seed=None)
      out.append([s[4]['column'] for s in steps])
    return out

  a, b, c = columns(1), columns(1), columns(2)
  assert a == b and a != c
  # Always right: the column stays put only when a right move failed.
  assert any(cols != [1, 2, 3, 3] for cols in a)
  assert [1, 2, 3, 3] in a
  windy = deepsea.DeepSeaEnv(4, deterministic=False)
  assert windy.optimal_return == pytest.approx((3 / 4) ** 3 - 0.01)


@pytest.mark.filterwarnings('error::UserWarning')
@pytest.mark.parametrize('deterministic', [True, False])
def test_passes_the_gymnasium_env_checker(deterministic):
  env_checker.check_env(deepsea.DeepSeaEnv(5, deterministic=deterministic),
                        skip_render_check=True)


def test_step_needs_reset_and_a_valid_action():
  env = deepsea.DeepSeaEnv(2)
  with pytest.raises(RuntimeError, match='reset'):
    env.step(0)
  env.reset()
  for bad in (2, -1, 0.5, 'left', None):
    with pytest.raises(ValueError, match='actions are 0 or 1'):
      env.step(bad)
  env.step(np.int64(1))
  env.step(np.array(0))
  with pytest.raises(RuntimeError, match='after the episode terminated'):
    env.step(0)


@pytest.mark.parametrize('kwargs, match', [
    ({'size': 0}, 'size must be an integer >= 1'),
    ({'size': -3}, 'size must be an integer >= 1'),
    ({'size': 2.5}, 'size must be an integer >= 1'),
    ({'size': '10'}, 'size must be an integer >= 1'),
    ({'size': True}, 'size must be an integer >= 1'),
    ({'mapping_seed': -1}, r'mapping_seed must be an integer in \[0, 2\*\*32'),
    ({'mapping_seed': 'a'}, 'mapping_seed must be an integer'),
    ({'unscaled_move_cost': -0.1}, 'unscaled_move_cost must be a finite'),
    ({'unscaled_move_cost': float('nan')}, 'unscaled_move_cost'),
    ({'deterministic': 'yes'}, 'deterministic must be True or False'),
    ({'randomize_actions': 1}, 'randomize_actions must be True or False'),
])
def test_bad_arguments_name_the_fix(kwargs, match):
  with pytest.raises(ValueError, match=match):
    deepsea.DeepSeaEnv(**kwargs)


def test_suite_through_make_and_the_gym_adapter():
  env = envs.make('deepsea:10', seed=0)
  assert set(env.obs_space) == {'vector', 'reward', 'is_first', 'is_last',
                                'is_terminal'}
  assert env.obs_space['vector'].shape == (100,)
  assert env.obs_space['vector'].dtype == 'float32'
  assert set(env.act_space) == {'action'}
  assert env.act_space['action'].classes == 2
  assert envs.frames_per_step('deepsea:10') == 1
  mapping = env.env.action_mapping
  obs = env.step(None)
  assert obs['is_first'] and obs['reward'] == 0
  np.testing.assert_array_equal(obs['vector'], one_hot(10, 0, 0))
  rewards = []
  for t in range(10):
    obs = env.step({'action': np.int32(mapping[t, t])})
    rewards.append(obs['reward'])
    assert obs['is_last'] == obs['is_terminal'] == (t == 9)
    assert not obs['is_first']
  assert rewards[-1] == pytest.approx(1 - 0.001, abs=1e-7)
  assert sum(rewards) == pytest.approx(0.99, abs=1e-6)
  np.testing.assert_array_equal(obs['vector'], np.zeros(100))
  assert env.step({'action': np.int32(0)})['is_first']  # Auto-reset.


def test_registered_with_gymnasium():
  import gymnasium  # pylint: disable=import-outside-toplevel
  assert deepsea.GYM_ID in gymnasium.registry
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # gymnasium warns on re-registration.
    deepsea.register()  # Again: a no-op.
  made = gymnasium.make(deepsea.GYM_ID, size=6, mapping_seed=3)
  direct = deepsea.DeepSeaEnv(size=6, mapping_seed=3)
  assert made.unwrapped.size == 6
  np.testing.assert_array_equal(made.unwrapped.action_mapping,
                                direct.action_mapping)
  choose = lambda r, c: (r + c) % 2  # Some left and some right moves.
  for (obs, *rest), (want, *want_rest) in zip(run(made, choose)[1],
                                              run(direct, choose)[1]):
    np.testing.assert_array_equal(obs, want)
    assert rest == want_rest
  # The gym suite reaches it by 'module:id' (the default size, 10).
  env = envs.make('gym:dreamer_tf.envs.deepsea:' + deepsea.GYM_ID, seed=0)
  assert env.obs_space['vector'].shape == (100,)
  assert env.act_space['action'].classes == 2


def test_suite_kwargs_and_state_round_trip():
  env = envs.make('deepsea:5', seed=3, mapping_seed=7,
                  unscaled_move_cost=0.05)
  np.testing.assert_array_equal(
      env.env.action_mapping,
      np.random.RandomState(7).binomial(1, 0.5, [5, 5]))
  env.step(None)
  env.step({'action': np.int32(0)})
  state = env.get_state()
  actions = [{'action': np.int32(i % 2)} for i in range(8)]
  expected = [env.step(a) for a in actions]
  other = envs.make('deepsea:5', seed=9, mapping_seed=7,
                    unscaled_move_cost=0.05)
  other.set_state(state)
  for a, b in zip(expected, [other.step(a) for a in actions]):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_suite_in_a_worker_process():
  pool = parallel.ParallelEnvs(
      [functools.partial(envs.make, 'deepsea:3', seed=0)])
  try:
    assert pool.obs_space['vector'].shape == (9,)
    flags = [bool(pool.step({'action': np.zeros(1, np.int32)})['is_last'][0])
             for _ in range(4)]
    assert flags == [False, False, False, True]  # Reset, then 3 steps.
  finally:
    pool.close()


@pytest.mark.parametrize('name, kwargs, match', [
    ('deepsea:abc', {}, "not a grid size: use 'deepsea:<N>'"),
    ('deepsea:0', {}, "not a grid size: use 'deepsea:<N>'"),
    ('deepsea:-4', {}, "not a grid size"),
    ('deepsea:10', {'size': 5}, r"size is the task \('deepsea:10'\); drop"),
    ('deepsea:10', {'mapping_seed': None}, 'its own random action mapping'),
    ('deepsea:10', {'unscaled_move_cost': -1}, 'unscaled_move_cost'),
    ('deepse:10', {}, "did you mean 'deepsea'"),
])
def test_suite_errors(name, kwargs, match):
  with pytest.raises(ValueError, match=match):
    envs.make(name, **kwargs)


def _bsuite_episode(env, ours, rng, p_right):
  """Steps bsuite's `env` and `ours` with the same random actions (right
  with probability p_right under our mapping); asserts identical steps."""
  timestep = env.reset()
  obs, _ = ours.reset()
  np.testing.assert_array_equal(obs, timestep.observation.reshape(-1))
  info = {'row': 0, 'column': 0}
  for _ in range(ours.size):
    right = int(ours.action_mapping[info['row'], info['column']])
    action = right if rng.random() < p_right else 1 - right
    timestep = env.step(action)
    obs, reward, terminated, truncated, info = ours.step(action)
    assert obs.dtype == timestep.observation.dtype
    np.testing.assert_array_equal(obs, timestep.observation.reshape(-1))
    assert reward == timestep.reward  # Bit for bit, bsuite's float order.
    assert terminated == timestep.last() and not truncated
    assert terminated == (timestep.discount == 0)
  assert terminated


@pytest.mark.filterwarnings('ignore:Environment is in debug mode')
@pytest.mark.parametrize('size', [1, 2, 3, 5, 10, 17])
@pytest.mark.parametrize('settings', [
    {'mapping_seed': 42}, {'mapping_seed': 0}, {'mapping_seed': 1234},
    {'mapping_seed': 5, 'unscaled_move_cost': 0.37},
    {'mapping_seed': 3, 'randomize_actions': False},
    {'mapping_seed': 11, 'deterministic': False},
])
def test_identical_to_bsuite(size, settings):
  bsuite_deep_sea = pytest.importorskip('bsuite.environments.deep_sea')
  theirs = bsuite_deep_sea.DeepSea(size, seed=8, **settings)
  ours = deepsea.DeepSeaEnv(size, **settings)
  ours.reset(seed=8)  # bsuite's `seed`: the windy variant's RandomState.
  # pylint: disable=protected-access
  np.testing.assert_array_equal(ours.action_mapping, theirs._action_mapping)
  assert ours.optimal_return == theirs._optimal_return
  rng = np.random.default_rng(size)
  for episode in range(150):
    _bsuite_episode(theirs, ours, rng, (0.5, 0.9, 1.0)[episode % 3])
