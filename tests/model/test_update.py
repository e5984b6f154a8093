"""The loss of one update: its phases, reward_grad, and that it learns."""
import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import update
from tests.conftest import TINY, make_batch
from tests.model.test_agent import build


def test_phases_shapes_and_total_loss():
  agent = build('24', 'discrete:3', *TINY, 'Agent.batch_size = 2',
                'Agent.batch_length = 3', 'Agent.imag_length = 4')
  data = make_batch(agent)
  imagination = update.imagine(agent, data, tf.constant([0, 0]))
  model = imagination.world_model
  n, h, f = 2 * 3, 4, agent.wm.rssm.feat_size
  assert model.feat.shape == (2, 3, f)
  assert model.latents['stoch'].shape == (
      2, 3, agent.wm.rssm.stoch_size, agent.wm.rssm.classes)
  assert imagination.feat.shape == (n, h + 1, f)
  assert imagination.actions.shape == (n, h + 1, 3)
  assert imagination.ret.shape == (n, h)
  assert imagination.weight.shape == (n, h + 1)
  scale = update.return_scale(agent.retnorm, imagination.ret).scale
  loss = update.loss(agent, imagination, scale)
  assert set(loss.losses) == set(agent.loss_scales)
  expected = sum(float(tf.reduce_mean(v)) * agent.loss_scales[k]
                 for k, v in loss.losses.items())
  assert float(loss.total) == pytest.approx(expected, rel=1e-6)
  assert {f'loss/{k}' for k in agent.loss_scales} <= set(loss.metrics)
  # The scale enters only the actor's advantages (§3.6); at init returns
  # and values are exactly zero, so give the returns an offset.
  imagination = imagination._replace(ret=imagination.ret + 1.0)
  one, two = (update.loss(agent, imagination, s) for s in (1.0, 2.0))
  for key in set(agent.loss_scales) - {'policy'}:
    np.testing.assert_array_equal(one.losses[key], two.losses[key])
  assert not np.allclose(one.losses['policy'], two.losses['policy'])
  assert float(one.metrics['adv']) == pytest.approx(
      2 * float(two.metrics['adv']), rel=1e-5)


@pytest.mark.parametrize('reward_grad', [True, False])
def test_reward_grad_stops_the_reward_loss_at_the_features(reward_grad):
  agent = build('24', 'discrete:3', *TINY, 'Agent.batch_size = 2',
                'Agent.batch_length = 3', f'Agent.reward_grad = {reward_grad}')
  # The zero-initialised reward output passes no gradient; perturb it.
  out = agent.wm.reward_head.out.kernel
  out.assign(tf.random.stateless_normal(out.shape, [0, 1]))
  representation = (agent.wm.encoder.trainable_weights +
                    agent.wm.rssm.trainable_weights)
  data = make_batch(agent)
  with tf.GradientTape() as tape:
    model = update.world_model_loss(agent, data, tf.constant([0, 0]))
    reward_loss = tf.reduce_mean(model.losses['reward'])
  grads = tape.gradient(reward_loss, representation +
                        agent.wm.reward_head.trainable_weights)
  norm = lambda gs: float(tf.linalg.global_norm(
      [g for g in gs if g is not None] or [tf.zeros(())]))
  assert norm(grads[len(representation):]) > 0  # the head always learns
  if reward_grad:
    assert norm(grads[:len(representation)]) > 0
  else:
    assert norm(grads[:len(representation)]) == 0


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
