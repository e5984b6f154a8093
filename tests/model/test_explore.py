"""Ensemble disagreement and the intrinsic reward stream (model/explore.py,
update.py, behavior.imagination_losses with several streams)."""
import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import explore
from dreamer_tf.model import nets
from dreamer_tf.model import update
from tests.conftest import TINY, make_batch
from tests.model.test_agent import build

SMALL = TINY + ['Agent.batch_size = 2', 'Agent.batch_length = 4',
                "Agent.precision = 'float32'", 'Exploration.units = 16']


def explorer(signal='latent', *bindings):
  return build('5', 'discrete:3', *SMALL, f"Exploration.signal = '{signal}'",
               *bindings)


def test_config_errors_name_the_fix():
  with pytest.raises(ValueError, match="'none', 'latent', 'reward'"):
    explore.ExplorationConfig(signal='disagree')
  with pytest.raises(ValueError, match='at least 2'):
    explore.ExplorationConfig(signal='latent', members=1)
  with pytest.raises(ValueError, match="'variance', 'std'"):
    explore.ExplorationConfig(spread='var')
  with pytest.raises(ValueError, match='>= 0'):
    explore.ExplorationConfig(extrinsic_weight=-1.0)
  with pytest.raises(ValueError, match=r'retnorm_limit=0.0 must be > 0'):
    explore.ExplorationConfig(retnorm_limit=0.0)
  with pytest.raises(ValueError, match="'stoch', 'embed'"):
    explore.ExplorationConfig(target='tokens')
  with pytest.raises(ValueError, match="needs Exploration.target='stoch'"):
    explore.ExplorationConfig(signal='reward', target='embed')
  with pytest.raises(ValueError, match='embed_size'):
    explore.Ensemble(explore.ExplorationConfig(target='embed'), 2, 3,
                     nets.InitSeeds(0))


def test_the_intrinsic_return_scale_has_its_own_floor():
  agent = explorer('latent', 'Exploration.retnorm_limit = 0.01')
  intrinsic, extrinsic = agent.retnorms['intr'], agent.retnorms['extr']
  assert (intrinsic.limit, extrinsic.limit) == (0.01, 1.0)
  # Returns spread over 0.05: S = 0.05 for the intrinsic stream, the floor
  # of 1 for the extrinsic one.
  assert float(intrinsic.scale_of(0.0, 0.05)) == pytest.approx(0.05)
  assert float(extrinsic.scale_of(0.0, 0.05)) == 1.0
  assert explorer().retnorms['intr'].limit == 1.0  # Unset: both alike.


def test_members_are_initialised_independently_and_none_at_zero():
  config = explore.ExplorationConfig(signal='latent', members=3, units=8)
  ensemble = explore.Ensemble(config, 4, 5, nets.InitSeeds(0))
  feat, action = tf.random.normal([6, 10]), tf.random.normal([6, 2])
  logits = ensemble(feat, action).numpy()  # [K, 6, S, C]
  assert logits.shape == (3, 6, 4, 5)
  for k in range(3):
    assert np.abs(logits[k]).max() > 0
    for j in range(k):
      assert not np.allclose(logits[k], logits[j])


def test_ensemble_loss_targets_the_next_real_posterior():
  """CE of member k's prediction from (f_t, a_t) against z_{t+1}, masked
  where t+1 starts an episode; inputs carry no gradient."""
  config = explore.ExplorationConfig(signal='latent', members=2, units=8)
  ensemble = explore.Ensemble(config, 2, 3, nets.InitSeeds(1))
  rng = np.random.default_rng(0)
  feat = tf.constant(rng.normal(size=(2, 4, 7)), tf.float32)
  actions = tf.constant(rng.normal(size=(2, 4, 2)), tf.float32)
  stoch = tf.constant(np.eye(3)[rng.integers(0, 3, (2, 4, 2))], tf.float32)
  is_first = np.zeros((2, 4), bool)
  is_first[1, 2] = True
  with tf.GradientTape() as tape:
    tape.watch(feat)
    loss = ensemble.loss(feat, actions, stoch, is_first)
  assert loss.shape == (2, 3)
  logits = ensemble(feat[:, :-1], actions[:, :-1]).numpy()  # [K, B, T-1..]
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  ce = -(stoch.numpy()[None, :, 1:] * logp).sum((-2, -1)).mean(0)
  ce[1, 1] = 0.0  # The transition into the first step of row 1.
  np.testing.assert_allclose(loss.numpy(), ce, rtol=1e-5)
  assert tape.gradient(loss, feat) is None


def test_embed_target_loss_is_the_squared_error_to_the_next_embedding():
  config = explore.ExplorationConfig(signal='latent', members=2, units=8,
                                     target='embed')
  ensemble = explore.Ensemble(config, 2, 3, nets.InitSeeds(1), embed_size=5)
  rng = np.random.default_rng(0)
  feat = tf.constant(rng.normal(size=(2, 4, 7)), tf.float32)
  actions = tf.constant(rng.normal(size=(2, 4, 2)), tf.float32)
  tokens = tf.constant(rng.normal(size=(2, 4, 5)), tf.float32)
  is_first = np.zeros((2, 4), bool)
  is_first[0, 1] = True
  loss = ensemble.loss(feat, actions, tokens, is_first)
  preds = ensemble(feat[:, :-1], actions[:, :-1]).numpy()  # [K, B, T-1, E]
  assert preds.shape == (2, 2, 3, 5)
  want = ((preds - tokens.numpy()[None, :, 1:]) ** 2).sum(-1).mean(0)
  want[0, 0] = 0.0  # The transition into the first step of row 0.
  np.testing.assert_allclose(loss.numpy(), want, rtol=1e-5)
  # The latent disagreement: variance of the predicted embeddings over
  # members, mean over the E entries.
  deter = feat[..., :3]
  latent = ensemble.intrinsic_reward(feat, actions, deter, None).numpy()
  np.testing.assert_allclose(latent[:, 1:], preds.var(0).mean(-1),
                             rtol=1e-5)
  assert np.all(latent[:, 0] == 0)


def test_embed_target_trains_on_the_encoders_embeddings():
  agent = explorer('latent', "Exploration.target = 'embed'")
  data = make_batch(agent)
  seed = tf.constant([0, 5])
  imagination = update.imagine(agent, data, seed)
  wm_seed = tf.random.experimental.stateless_split(seed, 2)[0]
  model = update.world_model_loss(agent, data, wm_seed)
  obs, _, _, _ = agent.split_context(data)
  np.testing.assert_array_equal(model.tokens, agent.wm.encode(obs))
  expected = agent.ensemble.loss(model.feat, model.actions, model.tokens,
                                 model.replay['is_first'])
  np.testing.assert_array_equal(imagination.explore_loss, expected)
  metrics, _ = agent.train(data)
  assert float(metrics['opt/skipped']) == 0.0
  assert np.isfinite(float(metrics['intr/ensemble_loss']))
  # The target shapes the ensemble, so a resume must keep it; runs from
  # before the option (all 'stoch') keep their signature.
  assert agent.signature()['Exploration.target'] == 'embed'
  assert 'Exploration.target' not in explorer().signature()


def test_update_trains_the_ensemble_on_the_world_models_posteriors():
  """The ensemble loss inside the update equals the loss on the posterior
  samples and actions of the replayed batch (not on imagined states)."""
  agent = explorer()
  data = make_batch(agent)
  seed = tf.constant([0, 5])
  imagination = update.imagine(agent, data, seed)
  wm_seed = tf.random.experimental.stateless_split(seed, 2)[0]
  model = update.world_model_loss(agent, data, wm_seed)
  expected = agent.ensemble.loss(
      model.feat, model.actions, model.posterior['stoch'],
      model.replay['is_first'])
  np.testing.assert_array_equal(imagination.explore_loss, expected)
  _, _, actions, _ = agent.split_context(data)
  np.testing.assert_array_equal(model.actions, actions)


def test_latent_and_reward_disagreement_by_hand():
  config = explore.ExplorationConfig(signal='latent', members=3, units=8)
  ensemble = explore.Ensemble(config, 2, 3, nets.InitSeeds(2))
  rng = np.random.default_rng(1)
  feat = tf.constant(rng.normal(size=(4, 3, 6 + 8)), tf.float32)  # H+1 = 3
  actions = tf.constant(rng.normal(size=(4, 3, 2)), tf.float32)
  deter = feat[..., :8]
  probs = tf.nn.softmax(ensemble(feat[:, :-1], actions[:, :-1]), -1).numpy()
  np.testing.assert_allclose(
      ensemble.predict(feat[:, :-1], actions[:, :-1]), probs, rtol=1e-6)
  latent = ensemble.intrinsic_reward(feat, actions, deter, None).numpy()
  assert latent.shape == (4, 3) and np.all(latent[:, 0] == 0)
  np.testing.assert_allclose(latent[:, 1:], probs.var(0).mean((-2, -1)),
                             rtol=1e-5)
  weights = rng.normal(size=8 + 6).astype(np.float32)
  reward_fn = lambda f: tf.reduce_sum(f * weights, -1)
  for spread in ('variance', 'std'):
    ensemble.config = explore.ExplorationConfig(
        signal='reward', members=3, units=8, spread=spread)
    got = ensemble.intrinsic_reward(feat, actions, deter, reward_fn).numpy()
    flat = probs.reshape(3, 4, 2, 6)
    rewards = np.concatenate([np.broadcast_to(
        deter.numpy()[None, :, 1:], (3, 4, 2, 8)), flat], -1) @ weights
    want = rewards.var(0) if spread == 'variance' else rewards.std(0)
    np.testing.assert_allclose(got[:, 1:], want, rtol=1e-4, atol=1e-7)


def test_streams_stay_separate():
  """Exploration leaves the extrinsic stream exactly as without it, each
  critic learns only from its own stream, and with intrinsic weight 0 the
  actor's loss is the extrinsic-only loss."""
  plain = build('5', 'discrete:3', *SMALL)
  agent = explorer('latent')  # (The reward head starts at exactly 0.)
  data = make_batch(agent)
  seed = tf.constant([1, 2])
  base = update.imagine(plain, data, seed)
  with tf.GradientTape(persistent=True) as tape:
    imagination = update.imagine(agent, data, seed)
    scales = {'extr': tf.constant(1.0), 'intr': tf.constant(1.0)}
    agent.set_intrinsic_weight(0.0)
    losses = update.loss(agent, imagination, scales).losses
    value, value_intr = (tf.reduce_mean(losses[k])
                         for k in ('value', 'value_intr'))
  np.testing.assert_array_equal(imagination.ret, base.ret)
  np.testing.assert_array_equal(imagination.reward, base.reward)
  assert imagination.intrinsic.ret.shape == base.ret.shape
  assert not np.allclose(imagination.intrinsic.ret, imagination.ret)
  intr_critic = agent.critics['intr'].trainable_weights
  assert all(g is None for g in tape.gradient(value, intr_critic))
  assert all(g is None for g in tape.gradient(
      value_intr, agent.critic.trainable_weights))
  assert any(g is not None for g in tape.gradient(value_intr, intr_critic))
  plain_losses = update.loss(plain, base, tf.constant(1.0)).losses
  np.testing.assert_array_equal(losses['policy'], plain_losses['policy'])
  np.testing.assert_array_equal(losses['value'], plain_losses['value'])
  agent.set_intrinsic_weight(2.0)
  weighted = update.loss(agent, imagination, scales).losses['policy']
  assert not np.allclose(weighted, plain_losses['policy'])


def test_exploration_adds_modules_state_and_signature_only_when_on():
  plain = build('5', 'discrete:3', *SMALL)
  agent = explorer('latent', 'Exploration.extrinsic_weight = 0.5')
  assert plain.ensemble is None and 'Exploration.signal' not in (
      plain.signature())
  assert agent.signature()['Exploration.signal'] == 'latent'
  counts = agent.parameter_counts()
  assert counts['critic_intr'] == counts['critic'] > 0
  assert counts['ensemble'] > 0
  plain_state = plain.get_state()
  state = agent.get_state()
  assert len(state) > len(plain_state)
  # The same seed gives the modules both agents share the same weights.
  for a, b in zip(plain.trainable_variables, agent.trainable_variables):
    np.testing.assert_array_equal(a, b)
  agent.set_intrinsic_weight(0.25)
  metrics, updates = agent.train(make_batch(agent))
  assert float(metrics['opt/skipped']) == 0.0
  assert {'intr/weight', 'intr/ensemble_loss', 'loss/value_intr',
          'opt/explore_grad_norm'} <= set(metrics)
  # The advantage's weights of both streams, as the update used them.
  assert float(metrics['intr/weight']) == 0.25
  assert float(metrics['extr/weight']) == 0.5
  assert int(agent.explore_optimizer.iterations) == 1
  restored = explorer('latent', 'Exploration.extrinsic_weight = 0.5')
  restored.set_state(agent.get_state())
  for a, b in zip(restored.get_state(), agent.get_state()):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match='>= 0'):
    agent.set_intrinsic_weight(-0.5)
