"""Agent plumbing: parameter counts, compiled steps, distribution, errors."""
import json
import os
import subprocess
import sys

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


@pytest.mark.parametrize('obs, act, context', [
    ('64x64x3', 'discrete:5', 1),
    ('image:64x64x3,state:7', 'continuous:2', 0),
])
def test_train_step_updates_everything(obs, act, context):
  agent = build(obs, act, *TINY, 'Agent.batch_size = 2',
                'Agent.batch_length = 5', f'Agent.replay_context = {context}',
                'LaProp.warmup = 0',
                # Free bits zero the prior's gradient while KL < 1 nat.
                'RSSM.free_nats = 0.0')
  before = [v.numpy().copy() for v in agent.trainable_variables]
  slow_before = [v.numpy().copy() for v in agent.slow_critic.weights]
  metrics, updates = agent.train(make_batch(agent))
  assert float(metrics['opt/updates']) == 1.0
  # Zero-initialised reward/value outputs pass no gradient to their hidden
  # layers on the first update; after the second everything has moved.
  metrics, updates = agent.train(make_batch(agent))
  assert updates['deter'].shape == (2, 5, agent.wm.rssm.deter_size)
  assert updates['stoch'].shape == (2, 5, agent.wm.rssm.stoch_size,
                                    agent.wm.rssm.classes)
  expected = {f'loss/{k}' for k in agent.loss_scales}
  assert expected <= set(metrics)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  changed = [not np.array_equal(b, v.numpy())
             for b, v in zip(before, agent.trainable_variables)]
  assert all(changed), 'every trainable tensor receives a gradient'
  assert any(not np.array_equal(b, v.numpy())
             for b, v in zip(slow_before, agent.slow_critic.weights))
  assert float(agent.retnorm.hi) != 0.0


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


def run_mirrored(obs, act, *bindings):
  proc = subprocess.run(
      [sys.executable, '-m', 'tests.model.mirrored_update',
       obs, act, *bindings], capture_output=True, text=True, cwd=ROOT,
      timeout=900, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize('obs, act', [('24', 'continuous:2'),
                                      ('64x64x3', 'discrete:3')])
def test_mirrored_update_equals_single_device_update(obs, act):
  """Two updates on 2 logical CPUs equal the default-strategy updates.

  Both run without XLA: the single-device step is one fused XLA program
  while the multi-replica step is split at the collectives, and different
  fusions round differently; a categorical sample whose Gumbel scores tie
  to an ulp then flips. Per-op TF kernels give the same samples, so the
  comparison is exact up to float32 summation order.
  """
  result = run_mirrored(obs, act, 'Agent.jit_compile = False')
  assert result['replicas'] == 2
  for i in range(2):
    single, mirrored = result[f'loss_{i}']
    assert mirrored == pytest.approx(single, rel=1e-5)
    per_loss = result[f'loss_metrics_{i}']
    assert {'loss/dyn', 'loss/policy', 'loss/value'} <= set(per_loss)
    for key, (single, mirrored) in per_loss.items():
      assert mirrored == pytest.approx(single, rel=1e-5, abs=1e-7), key
  assert result['iterations'] == [2, 2]
  for group in ('params', 'slow_critic', 'retnorm'):
    assert result[group]['changed'], group
    assert result[group]['max_rel'] < 1e-5, (group, result)
  # The optimizer moments see the all-reduced sum of partial sums, whose
  # float32 rounding differs from the one-device sum; LaProp's g/sqrt(nu)
  # magnifies that for near-zero gradient entries in the momentum.
  assert result['optimizer_nu']['max_rel'] < 1e-4, result
  assert result['optimizer_mu']['max_rel'] < 1e-3, result


@pytest.mark.slow
def test_mirrored_update_runs_with_xla_loss_and_gradients():
  """The multi-replica XLA path (collectives outside XLA) trains too."""
  result = run_mirrored('24', 'continuous:2', 'Agent.jit_compile = True')
  single, mirrored = result['loss_0']
  assert mirrored == pytest.approx(single, rel=1e-4)  # before any update
  assert result['params']['changed'] and result['params']['max_rel'] < 1e-2


def bandit_batch(rng, b, t, good=2, actions=4):
  """Two-step episodes: act at the first step, rewarded 1 iff action==good."""
  act = rng.integers(0, actions, (b, t)).astype(np.int32)
  first = np.zeros((b, t), bool)
  first[:, 0::2] = True
  reward = np.zeros((b, t), np.float32)
  reward[:, 1::2] = (act[:, 0::2] == good).astype(np.float32)
  vector = first[..., None].astype(np.float32)
  return dict(vector=vector, reward=reward, is_first=first,
              is_last=~first, is_terminal=~first, action=act)


@pytest.mark.slow
def test_actor_learns_a_one_step_bandit_in_imagination():
  agent = build('1', 'discrete:4', *TINY, 'Agent.batch_size = 8',
                'Agent.batch_length = 16', 'Agent.replay_context = 0',
                'LaProp.lr = 1e-3', 'LaProp.warmup = 0')
  rng = np.random.default_rng(0)
  obs = dict(vector=np.ones((500, 1), np.float32),
             reward=np.zeros(500, np.float32), is_first=np.ones(500, bool),
             is_last=np.zeros(500, bool), is_terminal=np.zeros(500, bool))

  def good_rate(seed):
    actions, _, _ = agent.policy(obs, agent.initial_carry(500), [seed, 0])
    return float(np.mean(actions['action'].numpy() == 2))
  before = good_rate(1)
  for _ in range(300):
    metrics, _ = agent.train(bandit_batch(rng, 8, 16))
  after = good_rate(2)
  assert before < 0.4
  assert after > 0.8, (before, after, {k: float(v) for k, v in metrics.items()})


def test_non_finite_loss_skips_the_update():
  agent = build('24', 'discrete:3', *TINY, 'Agent.batch_size = 2',
                'Agent.batch_length = 4', 'LaProp.warmup = 0')
  data = make_batch(agent)
  agent.train(data)
  before = agent.get_state()
  bad = dict(data, reward=np.full_like(data['reward'], np.nan))
  metrics, _ = agent.train(bad)
  assert float(metrics['opt/skipped']) == 1.0
  for old, new in zip(before, agent.get_state()):
    np.testing.assert_array_equal(old, new)  # params, optimizer, retnorm
  metrics, _ = agent.train(data)
  assert float(metrics['opt/skipped']) == 0.0
  assert int(agent.optimizer.iterations) == 2


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
