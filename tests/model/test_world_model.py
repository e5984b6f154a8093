"""World model: encoder/decoder plumbing, loss terms, and a fit test."""
import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf import spaces
from dreamer_tf.model import world_model
from dreamer_tf.model import rssm as rssm_lib
from dreamer_tf.model import optim

CONFIG = world_model.WorldModelConfig(depth=2, units=16, enc_layers=1,
                                      dec_layers=1)
RSSM = rssm_lib.RSSMConfig(deter=32, hidden=16, stoch=4, classes=4, blocks=4)


def make(obs_space, act_size=2):
  wm = world_model.WorldModel(obs_space, act_size, config=CONFIG,
                              rssm_config=RSSM)
  return wm


def run_loss(wm, obs, b, t, act_size=2, seed=(0, 0)):
  return wm.loss(obs, tf.zeros([b, t, act_size]), wm.rssm.initial(b),
                 tf.constant(seed))


def test_loss_terms_and_shapes_for_image_and_vectors():
  obs_space = spaces.parse_obs_space('image:64x64x3,state:5')
  obs_space['mode'] = spaces.Space((2,), 'int32', classes=3)
  wm = make(obs_space)
  b, t = 2, 3
  rng = np.random.default_rng(0)
  obs = dict(
      image=rng.integers(0, 255, (b, t, 64, 64, 3)).astype(np.uint8),
      state=rng.normal(size=(b, t, 5)).astype(np.float32),
      mode=rng.integers(0, 3, (b, t, 2)).astype(np.int32),
      reward=np.zeros((b, t), np.float32),
      is_first=np.eye(t, dtype=bool)[[0] * b],
      is_last=np.zeros((b, t), bool), is_terminal=np.zeros((b, t), bool))
  losses, post, final, metrics, tokens = run_loss(wm, obs, b, t)
  # The embeddings e_t the posterior observed (the ensemble's `embed`).
  np.testing.assert_array_equal(tokens, wm.encode(obs))
  assert set(losses) == {'dyn', 'rep', 'image', 'state', 'mode', 'reward',
                         'cont'}
  assert all(v.shape == (b, t) for v in losses.values())
  assert post['deter'].shape == (b, t, 32)
  assert final['stoch'].shape == (b, 4, 4)
  # Zero-initialised reward head: CE = ln 255 for zero targets.
  np.testing.assert_allclose(losses['reward'], 5.541264, atol=1e-4)
  assert np.all(losses['dyn'].numpy() >= 1.0)  # free nats
  # Image loss is a sum over 64*64*3 pixels of squared errors in [0, 1].
  assert 50 < float(tf.reduce_mean(losses['image'])) < 64 * 64 * 3


def test_vector_inputs_symlog_and_onehot():
  obs_space = {'v': spaces.Space((2,), 'float32'),
               'd': spaces.Space((), 'int32', classes=3)}
  out = world_model.vector_inputs(
      {'v': tf.constant([[np.e - 1, -(np.e - 1)]]), 'd': tf.constant([2])},
      obs_space, ['d', 'v'])
  np.testing.assert_allclose(out, [[0, 0, 1, 1, -1]], atol=1e-6)


def test_continue_target_includes_discount():
  obs_space = spaces.parse_obs_space('3')
  wm = make(obs_space)
  feat = tf.zeros([1, wm.rssm.feat_size])
  logits = wm.cont_head(feat)
  for term, target in ((False, 1 - 1 / 333), (True, 0.0)):
    obs = dict(vector=np.zeros((1, 1, 3), np.float32),
               reward=np.zeros((1, 1), np.float32),
               is_first=np.ones((1, 1), bool), is_last=np.full((1, 1), term),
               is_terminal=np.full((1, 1), term))
    losses, post, _, _, _ = run_loss(wm, obs, 1, 1)
    feat = wm.rssm.feat(post)
    logit = wm.cont_head(feat)[0, 0]
    p = tf.sigmoid(logit)
    expected = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    assert float(losses['cont'][0, 0]) == pytest.approx(float(expected),
                                                        rel=1e-4)
  del logits


@pytest.mark.parametrize('reward_grad', [True, False])
def test_reward_grad_false_keeps_the_reward_loss_out_of_the_rssm(
    reward_grad):
  obs_space = spaces.parse_obs_space('3')
  wm = make(obs_space)
  b, t = 2, 3
  rng = np.random.default_rng(0)
  obs = dict(vector=rng.normal(size=(b, t, 3)).astype(np.float32),
             reward=rng.normal(size=(b, t)).astype(np.float32),
             is_first=np.eye(t, dtype=bool)[[0] * b],
             is_last=np.zeros((b, t), bool),
             is_terminal=np.zeros((b, t), bool))
  run_loss(wm, obs, b, t)  # Creates the variables.
  # The zero-initialised reward output passes no gradient; perturb it.
  out = wm.reward_head.out.kernel
  out.assign(tf.random.stateless_normal(out.shape, [0, 1]))
  representation = wm.encoder.trainable_weights + wm.rssm.trainable_weights
  with tf.GradientTape() as tape:
    losses, _, _, _, _ = wm.loss(obs, tf.zeros([b, t, 2]), wm.rssm.initial(b),
                              tf.constant([0, 0]), reward_grad=reward_grad)
    reward_loss = tf.reduce_mean(losses['reward'])
  grads = tape.gradient(reward_loss, representation)
  assert representation and len(grads) == len(representation)
  norm = float(tf.linalg.global_norm(
      [g for g in grads if g is not None] or [tf.zeros(())]))
  assert (norm > 0) == reward_grad, norm


@pytest.mark.slow
def test_world_model_fits_a_synthetic_sequence_task():
  """Vector observations of a noisy rotation driven by the actions."""
  obs_space = spaces.parse_obs_space('4')
  wm = make(obs_space)
  rng = np.random.default_rng(0)
  b, t = 8, 16

  def batch():
    angle = rng.uniform(0, 2 * np.pi, (b, 1))
    actions = rng.uniform(-1, 1, (b, t, 2)).astype(np.float32)
    angles = angle + np.cumsum(0.3 + 0.2 * actions[..., 0], 1)
    vector = np.stack([np.cos(angles), np.sin(angles), actions[..., 1],
                       np.cos(2 * angles)], -1).astype(np.float32)
    reward = np.cos(angles).astype(np.float32)
    first = np.zeros((b, t), bool)
    first[:, 0] = True
    prev = np.concatenate([np.zeros((b, 1, 2), np.float32),
                           actions[:, :-1]], 1)
    return dict(vector=vector, reward=reward, is_first=first,
                is_last=np.zeros((b, t), bool),
                is_terminal=np.zeros((b, t), bool)), prev

  opt = optim.LaProp(lr=1e-3, warmup=0)

  @tf.function(jit_compile=True)
  def step(obs, prev, seed):
    with tf.GradientTape() as tape:
      losses, _, _, _, _ = wm.loss(obs, prev, wm.rssm.initial(b), seed)
      loss = sum(tf.reduce_mean(v) * (0.1 if k == 'rep' else 1.0)
                 for k, v in losses.items())
    variables = wm.trainable_weights
    opt.apply(tape.gradient(loss, variables), variables)
    return {k: tf.reduce_mean(v) for k, v in losses.items()}

  obs, prev = batch()
  run_loss(wm, obs, b, t)
  history = []
  for i in range(300):
    obs, prev = batch()
    history.append({k: float(v) for k, v in step(
        obs, prev, tf.constant([0, i])).items()})
  first = {k: np.mean([h[k] for h in history[:10]]) for k in history[0]}
  last = {k: np.mean([h[k] for h in history[-20:]]) for k in history[0]}
  assert last['vector'] < 0.2 * first['vector'], (first, last)
  assert last['reward'] < 0.5 * first['reward'], (first, last)
