"""Block-GRU RSSM: shapes, resets, scans, KL with free bits (spec §2.2)."""
import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import rssm as rssm_lib

CONFIG = rssm_lib.RSSMConfig(deter=32, hidden=8, stoch=4, classes=3,
                             blocks=4)


def make(action_size=2, config=CONFIG):
  rssm = rssm_lib.RSSM(action_size, config)
  state = rssm.initial(2)
  rssm.obs_step(state, tf.zeros([2, action_size]), tf.zeros([2, 5]),
                tf.zeros([2], bool), tf.constant([0, 0]))
  rssm.prior_logits(state['deter'])
  return rssm


def test_parameter_shapes_follow_block_layout():
  rssm = make()
  shapes = {w.path.split('/')[-2] + '/' + w.name: tuple(w.shape)
            for w in rssm.weights}
  kernels = sorted(s for k, s in shapes.items() if len(s) == 3)
  # dynhid: 4 blocks of (32/4 + 3*8) -> 32/4; gates: 4 blocks of 8 -> 24.
  assert kernels == [(4, 8, 24), (4, 32, 8)]


def test_is_first_resets_state_and_action():
  rssm = make()
  seed = tf.constant([1, 2])
  token = tf.random.normal([2, 5])
  busy = dict(deter=tf.random.normal([2, 32]),
              stoch=tf.one_hot(tf.zeros([2, 4], tf.int32), 3))
  first = tf.ones([2], bool)
  a, _ = rssm.obs_step(busy, tf.ones([2, 2]), token, first, seed)
  b, _ = rssm.obs_step(rssm.initial(2), tf.zeros([2, 2]), token, first, seed)
  np.testing.assert_allclose(a['deter'], b['deter'], atol=1e-6)
  np.testing.assert_allclose(a['stoch'], b['stoch'], atol=1e-6)
  c, _ = rssm.obs_step(busy, tf.ones([2, 2]), token, ~first, seed)
  assert not np.allclose(a['deter'], c['deter'])


def test_action_is_magnitude_clipped():
  rssm = make()
  state = rssm.initial(2)
  big = rssm.core(state['deter'], state['stoch'], tf.constant([[5.0, -3.0]] * 2))
  one = rssm.core(state['deter'], state['stoch'], tf.constant([[1.0, -1.0]] * 2))
  np.testing.assert_allclose(big, one, atol=1e-6)


def test_observe_matches_step_by_step_loop():
  rssm = make()
  b, t = 2, 5
  tokens = tf.random.normal([b, t, 5])
  actions = tf.random.normal([b, t, 2])
  is_first = tf.constant([[True, False, False, True, False]] * b)
  seed = tf.constant([3, 4])
  final, out = rssm.observe(rssm.initial(b), tokens, actions, is_first, seed)
  assert out['deter'].shape == (b, t, 32)
  assert out['stoch'].shape == (b, t, 4, 3)
  seeds = tf.random.experimental.stateless_split(seed, t)
  state = rssm.initial(b)
  for i in range(t):
    state, logits = rssm.obs_step(state, actions[:, i], tokens[:, i],
                                  is_first[:, i], seeds[i])
    np.testing.assert_allclose(out['deter'][:, i], state['deter'], atol=1e-5)
    np.testing.assert_allclose(out['logits'][:, i], logits, atol=1e-5)
  np.testing.assert_allclose(final['deter'], state['deter'], atol=1e-5)


def test_imagine_shapes_and_actions_at_states():
  rssm = make()
  start = dict(deter=tf.random.normal([3, 32]),
               stoch=tf.one_hot(tf.zeros([3, 4], tf.int32), 3))
  seen = []

  def policy(feat, seed):
    seen.append(feat.shape)
    return tf.tanh(feat[:, :2])
  states, actions = rssm.imagine(start, policy, 6, tf.constant([0, 1]))
  assert states['deter'].shape == (3, 7, 32)
  assert states['stoch'].shape == (3, 7, 4, 3)
  assert actions.shape == (3, 7, 2)
  np.testing.assert_allclose(states['deter'][:, 0], start['deter'])
  feats = rssm.feat(states)
  np.testing.assert_allclose(actions, tf.tanh(feats[..., :2]), atol=1e-6)


def test_kl_losses_free_bits_on_latent_sum():
  rssm = rssm_lib.RSSM(1, rssm_lib.RSSMConfig(stoch=2, classes=4,
                                              free_nats=1.0))
  post = tf.constant([[[3.0, 0, 0, 0], [0, 0, 0, 3.0]]])
  prior = tf.zeros([1, 2, 4])
  dyn, rep, metrics = rssm.kl_losses(post, prior)
  assert float(dyn[0]) == pytest.approx(1.6776, abs=1e-4)
  assert float(rep[0]) == pytest.approx(1.6776, abs=1e-4)
  dyn, rep, _ = rssm.kl_losses(prior, prior)
  assert float(dyn[0]) == 1.0 and float(rep[0]) == 1.0
  assert 'dyn_ent' in metrics and 'rep_ent' in metrics


def test_kl_stop_gradients():
  rssm = rssm_lib.RSSM(1, rssm_lib.RSSMConfig(stoch=2, classes=4,
                                              free_nats=0.0))
  post = tf.Variable(tf.random.normal([1, 2, 4]))
  prior = tf.Variable(tf.random.normal([1, 2, 4]))
  with tf.GradientTape(persistent=True) as tape:
    dyn, rep, _ = rssm.kl_losses(post, prior)
  assert tape.gradient(dyn, post) is None
  assert tape.gradient(dyn, prior) is not None
  assert tape.gradient(rep, prior) is None
  assert tape.gradient(rep, post) is not None


def test_deter_must_divide_blocks():
  with pytest.raises(ValueError, match='divisible'):
    rssm_lib.RSSM(2, rssm_lib.RSSMConfig(deter=30, blocks=8))
