"""λ-returns, return normaliser, actor and critic losses (spec §3.4-§3.7)."""
import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import behavior
from dreamer_tf import spaces


def test_lambda_return_fixture():
  reward = tf.constant([[0.0, 1, 0, 2, 1]])
  cont = tf.constant([[1.0, 0.997, 0.997, 0.997, 0.997]])
  value = tf.constant([[0.5, 1, 1.5, 2, 2.5]])
  ret, weight = behavior.imagination_returns(reward, cont, value, 0.95)
  np.testing.assert_allclose(
      ret, [[5.971813, 5.196604, 5.407621, 3.492500]], atol=1e-5)
  np.testing.assert_allclose(weight, np.cumprod(cont.numpy(), 1), rtol=1e-6)


def _naive_lambda_return(last, term, rew, boot, disc, lam):
  n = rew.shape[1]
  rets = [boot[:, -1]]
  for t in reversed(range(n - 1)):
    live = (1 - term[:, t + 1]) * disc
    cont = (1 - last[:, t + 1]) * lam
    rets.append(rew[:, t + 1] + (1 - cont) * live * boot[:, t + 1] +
                live * cont * rets[-1])
  return np.stack(rets[::-1][:-1], 1)


def test_lambda_return_with_episode_boundaries_matches_recursion():
  rng = np.random.default_rng(0)
  shape = (3, 9)
  last = rng.random(shape) < 0.2
  term = last & (rng.random(shape) < 0.5)
  rew, boot = rng.normal(size=shape), rng.normal(size=shape)
  got = behavior.lambda_return(last, term, rew, boot, 0.997, 0.95)
  np.testing.assert_allclose(
      got, _naive_lambda_return(last.astype(float), term.astype(float), rew,
                                boot, 0.997, 0.95), rtol=1e-5, atol=1e-6)


def test_return_normalizer_percentile_ema_and_limit():
  norm = behavior.ReturnNormalizer()
  ret = tf.range(0.0, 101.0)  # P5 = 5, P95 = 95
  np.testing.assert_allclose(norm.percentiles(ret), [5.0, 95.0])
  scale = norm.update(norm.percentiles(ret))
  assert float(norm.lo) == pytest.approx(0.05)
  assert float(norm.hi) == pytest.approx(0.95)
  assert float(scale) == 1.0  # max(1, 0.9)
  for _ in range(500):
    scale = norm.update(norm.percentiles(ret))
  assert float(scale) == pytest.approx(90.0 * (1 - 0.99**501), rel=1e-4)


def test_actor_initial_outputs():
  act_space = {'move': spaces.Space((3,), 'float32', low=-1, high=1),
               'pick': spaces.Space((), 'int32', classes=5)}
  actor = behavior.Actor(act_space, behavior.ActorConfig(units=16))
  policy = actor(tf.random.normal([4, 10]))
  np.testing.assert_allclose(policy['move'].scale, 0.892717, atol=0.02)
  probs = policy['pick'].probs.numpy()
  np.testing.assert_allclose(probs, 0.2, atol=0.02)  # outscale 0.01
  sample = actor.sample(tf.zeros([4, 10]), tf.constant([0, 1]))
  assert sample.shape == (4, 8)
  parts = actor.split(sample)
  assert parts['move'].shape == (4, 3) and parts['pick'].shape == (4, 5)


def test_critic_predicts_exactly_zero_at_init():
  critic = behavior.Critic(behavior.CriticConfig(units=16))
  assert np.all(critic(tf.random.normal([6, 10])).mean().numpy() == 0.0)


def test_policy_gradient_reaches_only_actor_and_entropy_term():
  act_space = {'action': spaces.Space((), 'int32', classes=3)}
  actor = behavior.Actor(act_space, behavior.ActorConfig(units=8))
  critic = behavior.Critic(behavior.CriticConfig(units=8))
  feat = tf.random.normal([5, 4, 6])
  actor(feat), critic(feat)
  actions = actor.split(actor.sample(feat, tf.constant([0, 0])))
  ret = tf.random.normal([5, 3])
  weight = tf.ones([5, 4])
  with tf.GradientTape(persistent=True) as tape:
    losses, metrics = behavior.imagination_losses(
        actor(feat), actions, critic(feat), tf.zeros([5, 4]), ret, weight,
        tf.constant(2.0))
  assert losses['policy'].shape == (5, 3) and losses['value'].shape == (5, 3)
  pol_grads = tape.gradient(losses['policy'], critic.trainable_weights)
  assert all(g is None for g in pol_grads)
  val_grads = tape.gradient(losses['value'], actor.trainable_weights)
  assert all(g is None for g in val_grads)
  assert 'ent/action' in metrics


def test_replay_value_loss_masks_last_steps_and_bootstraps():
  critic = behavior.Critic(behavior.CriticConfig(units=8))
  feat = tf.random.normal([2, 5, 6])
  is_last = np.zeros([2, 5], bool)
  is_last[0, 2] = True
  loss = behavior.replay_value_loss(
      critic(feat), tf.zeros([2, 5]), tf.ones([2, 5]), is_last,
      np.zeros([2, 5], bool), tf.zeros([2, 5]))
  assert loss.shape == (2, 4)
  assert float(loss[0, 2]) == 0.0 and float(loss[0, 1]) > 0.0
  # Uniform logits at init: CE = ln 255 for both terms where unmasked.
  np.testing.assert_allclose(loss[1], 2 * 5.541264, atol=1e-4)


def test_ema_update():
  slow, fast = [tf.Variable([0.0, 1.0])], [tf.Variable([1.0, 1.0])]
  behavior.ema_update(slow, fast, 0.02)
  np.testing.assert_allclose(slow[0].numpy(), [0.02, 1.0])
