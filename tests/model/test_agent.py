"""Agent plumbing: parameter counts, policy, train interface, errors, state."""
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import agent as agent_lib
from dreamer_tf import config
from dreamer_tf import spaces
from tests.conftest import ROOT, TINY, make_batch


def build(obs='24', act='continuous:6', *bindings, gin_files=()):
  gin.clear_config()
  config.parse(gin_files, list(bindings))
  return agent_lib.Agent(spaces.parse_obs_space(obs),
                         spaces.parse_act_space(act))


def size(name):
  return os.path.join(ROOT, 'gin_configs', 'sizes', f'{name}.gin')


@pytest.mark.parametrize('preset, obs, act, expected', [
    ('size1m', '64x64x3', 'discrete:18', 688_004),
    ('size12m', '64x64x3', 'discrete:18', 10_498_772),
    ('size1m', '24', 'continuous:6', 640_867),
])
def test_parameter_counts_match_official(preset, obs, act, expected):
  agent = build(obs, act, gin_files=[size(preset)])
  counts = agent.parameter_counts()
  assert counts['total'] == expected
  assert sum(v for k, v in counts.items() if k != 'total') == expected
  slow = sum(int(np.prod(w.shape)) for w in agent.slow_critic.weights)
  assert slow == counts['critic']  # same architecture, not counted


def test_initial_reward_and_value_predictions_are_exactly_zero():
  agent = build('64x64x3', 'discrete:4', *TINY)
  feat = tf.random.normal([7, agent.wm.rssm.feat_size])
  assert np.all(agent.wm.reward(feat).mean().numpy() == 0.0)
  assert np.all(agent.critic(feat).mean().numpy() == 0.0)
  assert np.all(agent.slow_critic(feat).mean().numpy() == 0.0)
  for slow, fast in zip(agent.slow_critic.weights, agent.critic.weights):
    np.testing.assert_array_equal(slow.numpy(), fast.numpy())


def test_same_seed_same_weights_other_seed_different():
  a = build('24', 'discrete:3', *TINY, 'Agent.seed = 3')
  b = build('24', 'discrete:3', *TINY, 'Agent.seed = 3')
  c = build('24', 'discrete:3', *TINY, 'Agent.seed = 4')
  for x, y in zip(a.trainable_variables, b.trainable_variables):
    np.testing.assert_array_equal(x.numpy(), y.numpy())
  assert any(not np.array_equal(x.numpy(), y.numpy()) for x, y in zip(
      a.trainable_variables, c.trainable_variables))


def test_policy_step_shapes_determinism_and_reset():
  agent = build('64x64x3', 'discrete:5', *TINY)
  obs = {k: v for k, v in agent.dummy_obs(3).items()}
  obs['is_first'] = tf.ones([3], bool)
  carry = agent.initial_carry(3)
  act1, carry1, latent = agent.policy(obs, carry, [0, 1])
  act2, _, _ = agent.policy(obs, carry, [0, 1])
  assert act1['action'].shape == (3,) and act1['action'].dtype == tf.int32
  np.testing.assert_array_equal(act1['action'], act2['action'])
  assert latent['deter'].shape == (3, agent.wm.rssm.deter_size)
  assert carry1['action'].shape == (3, 5)
  # With is_first, a busy carry behaves exactly like a fresh one.
  busy = {k: v + 1.0 for k, v in carry1.items()}
  _, fresh, _ = agent.policy(obs, carry, [4, 4])
  _, reset, _ = agent.policy(obs, busy, [4, 4])
  np.testing.assert_allclose(fresh['deter'], reset['deter'], atol=1e-6)


def test_continuous_policy_mode_is_the_tanh_mean_of_the_latent():
  agent = build('24', 'continuous:3', *TINY)
  obs = agent.dummy_obs(2)
  obs['is_first'] = tf.ones([2], bool)
  act, _, latent = agent.policy(obs, agent.initial_carry(2), [1, 1],
                                mode=True)
  expected = agent.actor(agent.wm.rssm.feat(latent))['action'].mode()
  np.testing.assert_allclose(act['action'], expected, atol=1e-6)
  assert np.all(np.abs(act['action'].numpy()) <= 1.0)
  sampled, _, _ = agent.policy(obs, agent.initial_carry(2), [1, 1])
  assert not np.allclose(sampled['action'], act['action'])


def test_train_returns_self_describing_replay_updates():
  agent = build('24', 'discrete:3', *TINY, 'Agent.batch_size = 2',
                'Agent.batch_length = 4', 'Agent.replay_context = 1')
  assert agent.sequence_length == 5
  data = make_batch(agent)
  stepid = np.stack(np.broadcast_arrays(
      np.arange(2)[:, None] + 7, np.arange(5)[None]), -1).astype(np.int64)
  _, updates = agent.train(dict(data, stepid=stepid))
  assert list(updates) == ['stepid', 'deter', 'stoch', 'priority']
  assert all(isinstance(v, np.ndarray) for v in updates.values())
  assert updates['stepid'].dtype == np.int64
  np.testing.assert_array_equal(updates['stepid'], stepid[:, 1:])
  assert updates['deter'].shape == (2, 4, agent.wm.rssm.deter_size)
  assert updates['stoch'].shape == (2, 4, agent.wm.rssm.stoch_size,
                                    agent.wm.rssm.classes)
  assert updates['priority'].shape == (2, 4)  # Priority.weights, >= 0.
  assert np.all(updates['priority'] >= 0)
  # Without step ids (tests, benchmark) the values come back unnamed.
  _, updates = agent.train(data)
  assert set(updates) == {'deter', 'stoch', 'priority'}
  assert 'stepid' not in data  # the caller's batch is left alone
  with pytest.raises(ValueError, match='stepid of shape'):
    agent.train(dict(data, stepid=stepid[:, 1:]))


def test_trace_update_traces_once_for_the_updates_that_follow():
  agent = build('24', 'discrete:3', *TINY, 'Agent.batch_size = 2',
                'Agent.batch_length = 4', 'Agent.jit_compile = False')
  data = make_batch(agent)
  ops = agent.trace_update(data)
  assert isinstance(ops, int) and ops > 1000
  assert agent.optimizer.iterations.numpy() == 0  # Traced, not run.
  agent.train(data)
  agent.train(data)
  # pylint: disable-next=protected-access
  assert agent._update.experimental_get_tracing_count() == 1
  with pytest.raises(ValueError, match='lacks keys'):
    agent.trace_update({'is_first': data['is_first']})


def test_bad_batches_and_configs_fail_clearly():
  agent = build('24', 'discrete:3', *TINY, 'Agent.batch_length = 4')
  data = make_batch(agent)
  with pytest.raises(ValueError, match='lacks keys'):
    agent.train({k: v for k, v in data.items() if k != 'action'})
  short = {k: v[:, :3] for k, v in data.items()}
  with pytest.raises(ValueError, match='expected batch_length'):
    agent.train(short)
  with pytest.raises(ValueError, match='precision'):
    build('24', 'discrete:3', *TINY, "Agent.precision = 'float16'")
  with pytest.raises(ValueError, match='loss_scales'):
    build('24', 'discrete:3', *TINY, "Agent.loss_scales = {'rec': 1.0}")


def test_unsupported_observation_spaces_are_named():
  with pytest.raises(ValueError, match="'image'.*divisible by 16"):
    agent_lib.Agent(spaces.parse_obs_space('60x60x3'),
                    spaces.parse_act_space('discrete:2'))
  obs = spaces.parse_obs_space('5')
  obs['grid'] = spaces.Space((3, 4), 'float32')
  with pytest.raises(ValueError, match="'grid'.*flat vectors"):
    agent_lib.Agent(obs, spaces.parse_act_space('discrete:2'))


def test_bfloat16_without_xla_trains():
  agent = build('64x64x3', 'discrete:3', *TINY, "Agent.precision = 'bfloat16'",
                'Agent.jit_compile = False', 'Agent.batch_size = 2',
                'Agent.batch_length = 4')
  metrics, _ = agent.train(make_batch(agent))
  assert np.isfinite(float(metrics['opt/loss']))
  assert all(v.dtype == 'float32' for v in agent.trainable_variables)


def test_state_round_trip_and_mismatch_error():
  a = build('24', 'discrete:3', *TINY, 'LaProp.warmup = 0',
            'Agent.batch_size = 2', 'Agent.batch_length = 4')
  a.train(make_batch(a))
  state = a.get_state()
  b = build('24', 'discrete:3', *TINY, 'Agent.seed = 5',
            'Agent.batch_size = 2', 'Agent.batch_length = 4')
  b.set_state(state)
  for x, y in zip(a.get_state(), b.get_state()):
    np.testing.assert_array_equal(x, y)
  c = build('24', 'discrete:3', *TINY, 'RSSM.deter = 128')
  with pytest.raises(ValueError, match='model configuration differs'):
    c.set_state(state)


def test_auto_picks_bfloat16_only_for_images_on_a_native_bfloat16_cpu():
  """On a CPU: vectors in float32 with XLA; images without XLA, in
  bfloat16 only where the CPU has bfloat16 instructions (emulated
  bfloat16 is several times slower); explicit settings are kept."""
  assert not tf.config.list_physical_devices('GPU')
  vector = spaces.parse_obs_space('24')
  image = spaces.parse_obs_space('64x64x3,state:7')
  resolve = agent_lib.resolve_auto
  for native in (True, False):
    assert resolve(vector, 'auto', 'auto', native) == ('float32', True)
  assert resolve(image, 'auto', 'auto', True) == ('bfloat16', False)
  assert resolve(image, 'auto', 'auto', False) == ('float32', False)
  assert resolve(image, 'bfloat16', True, False) == ('bfloat16', True)
  with pytest.raises(ValueError, match="use True, False or 'auto'"):
    resolve(vector, 'auto', 'yes', False)


@pytest.mark.parametrize('flags, native', [
    ('fpu sse2 avx2 fma', False),
    ('fpu avx2 avx512f avx512_bf16', True),
    ('fpu avx2 amx_bf16 amx_tile', True),
])
def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path, flags, native):
  cpuinfo = tmp_path / 'cpuinfo'
  cpuinfo.write_text(f'processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n'
                     f'processor\t: 1\nflags\t\t: {flags}\n')
  assert agent_lib.cpu_has_native_bf16(str(cpuinfo)) is native
  assert agent_lib.cpu_has_native_bf16(str(tmp_path / 'missing')) is False
