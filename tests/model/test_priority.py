"""Replay priorities from the update's signals (model/priority.py and
update.priority_signals)."""
import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import priority
from dreamer_tf.model import update
from tests.conftest import TINY, make_batch
from tests.model.test_agent import build

SMALL = TINY + ['Agent.batch_size = 2', 'Agent.batch_length = 4',
                "Agent.precision = 'float32'"]


def test_priorities_are_finite_and_non_negative_for_any_signal():
  signals = dict(
      world_model=np.array([[1.0, np.nan, 2.0, -3.0]], np.float32),
      value_error=np.array([[0.5, 0.5, np.inf, 0.5]], np.float32),
      **{'return': np.array([[-1.0, 4.0, -np.inf, 1e38]], np.float32)})
  weights = {'world_model': 1.0, 'value_error': 2.0, 'return': 0.5}
  got = priority.combine(signals, weights).numpy()
  np.testing.assert_allclose(
      got, [[2.0, 3.0, 2.0, min(1.0 + 0.5e38, priority.MAX_PRIORITY)]])
  assert np.all(np.isfinite(got)) and np.all(got >= 0)
  assert np.isfinite(got.astype(np.float64) ** 0.8).all()
  # Zero weights skip their signal, even a missing one.
  np.testing.assert_allclose(
      priority.combine(signals, {'world_model': 1.0, 'intrinsic_return': 0}),
      [[1.0, 0.0, 2.0, 0.0]])


def test_config_errors_name_the_problem():
  with pytest.raises(ValueError, match='unknown signals'):
    priority.PriorityConfig(weights={'recon': 1.0})
  for bad in (-1.0, float('inf'), float('nan'), '1'):
    with pytest.raises(ValueError, match='must be a finite number >= 0'):
      priority.PriorityConfig(weights={'world_model': bad})
  with pytest.raises(ValueError, match='at least one'):
    priority.PriorityConfig(weights={'world_model': 0.0})
  with pytest.raises(ValueError, match="Exploration.signal"):
    build('5', 'discrete:3', *SMALL,
          "Priority.weights = {'intrinsic_return': 1.0}")


def test_signals_by_hand():
  agent = build('5', 'discrete:3', *SMALL)
  data = make_batch(agent)
  imagination = update.imagine(agent, data, tf.constant([0, 1]))
  ret = imagination.ret
  scales = update.return_scales(agent, {'extr': ret + 3.0})
  signals = update.priority_signals(agent, imagination, scales)
  b, t = 2, 4
  assert all(v.shape == (b, t) for v in signals.values())
  assert set(signals) == set(priority.SIGNALS) - set(
      priority.EXPLORATION_SIGNALS)
  losses = imagination.world_model.losses
  scale = agent.loss_scales
  np.testing.assert_allclose(signals['world_model'], sum(
      losses[k] * scale[k] for k in ('dyn', 'rep', 'vector', 'reward',
                                     'cont')), rtol=1e-6)
  np.testing.assert_allclose(signals['reconstruction'],
                             losses['vector'] * scale['vector'], rtol=1e-6)
  s = scales['extr']
  value = imagination.value_logits  # Critic at init: value 0 everywhere.
  assert value.shape[:2] == ret.shape[:1] + (ret.shape[1] + 1,)
  np.testing.assert_allclose(
      signals['value_error'],
      np.abs(ret.numpy()).mean(1).reshape(b, t) / float(s.scale), rtol=1e-5)
  np.testing.assert_allclose(
      signals['return'], np.maximum(0, (ret.numpy()[:, 0] - float(s.lo))
                                    / float(s.scale)).reshape(b, t),
      rtol=1e-5)


def _trained_priority(weights, data=None):
  # No warmup, so that the first update moves the critic off 0.
  agent = build('5', 'discrete:3', *SMALL, f'Priority.weights = {weights}',
                'LaProp.warmup = 0')
  data = make_batch(agent) if data is None else data
  data['stepid'] = np.zeros((2, agent.sequence_length, 2), np.int64)
  for _ in range(2):  # At init the critic and reward head predict 0.
    metrics, updates = agent.train(data)
    assert float(metrics['opt/skipped']) == 0.0
  return updates['priority'], data, metrics


def test_train_returns_the_configured_combination_of_every_trained_step():
  # The same initial agent, batches and update seeds give the same
  # signals, so the priority with weights {wm: 1, ve: k} is the
  # world-model-only priority plus k x the value-error-only one, step by
  # step (of the second update: at the first the value error is 0, after
  # it ~1e-6, hence k = 1e6 to weigh like the world model's ~10).
  k = 1e6
  both, data, metrics = _trained_priority(
      f"{{'world_model': 1.0, 'value_error': {k}}}")
  world_model, _, _ = _trained_priority("{'world_model': 1.0}", data)
  value_error, _, _ = _trained_priority("{'value_error': 1.0}", data)
  assert both.shape == (2, 4)
  assert np.all(np.isfinite(both)) and np.all(both >= 0)
  assert np.all(k * value_error > 0.1 * world_model)  # Both terms count.
  np.testing.assert_allclose(both, world_model + k * value_error, rtol=1e-4)
  # Logged: the mean priority and the mean of every signal, weighted or
  # not (reconstruction and return have weight 0 here).
  np.testing.assert_allclose(metrics['priority/combined'], both.mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(metrics['priority/world_model'],
                             world_model.mean(), rtol=1e-4)
  np.testing.assert_allclose(metrics['priority/value_error'],
                             value_error.mean(), rtol=1e-4)
  assert {f'priority/{s}' for s in ('reconstruction', 'return')} <= set(
      metrics)


def test_summary_means_the_clean_signals():
  signals = dict(world_model=np.array([[1.0, np.nan, 2.0, -3.0]], np.float32),
                 **{'return': np.array([[-1.0, 4.0, 0.0, 2.0]], np.float32)})
  got = priority.summary(signals, priority.combine(
      signals, {'world_model': 1.0}))
  assert set(got) == {'priority/world_model', 'priority/return',
                      'priority/combined'}
  np.testing.assert_allclose(got['priority/world_model'], 0.75)
  np.testing.assert_allclose(got['priority/return'], 1.5)
  np.testing.assert_allclose(got['priority/combined'], 0.75)


@pytest.mark.parametrize('obs, keys', [
    ('48x48x3', ['image']), ('image:48x48x3,state:5', ['image', 'state'])])
def test_priorities_and_exploration_with_image_and_dict_observations(
    obs, keys):
  """Priorities and the intrinsic stream need no observation named 'image'
  (XP's do): `reconstruction` sums the decoder losses of every observation
  key, and an update with latent disagreement and every signal weighted
  trains and returns finite priorities for each trained step."""
  weights = {s: 1.0 for s in priority.SIGNALS}
  agent = build(obs, 'discrete:3', *SMALL, "Exploration.signal = 'latent'",
                'Exploration.units = 16', f'Priority.weights = {weights}',
                'LaProp.warmup = 0')
  assert sorted(agent.wm.keys) == keys
  data = make_batch(agent)
  imagination = update.imagine(agent, data, tf.constant([0, 1]))
  scales = update.return_scales(agent, {
      k: s.ret for k, s in imagination.streams.items()})
  signals = update.priority_signals(agent, imagination, scales)
  assert set(signals) == set(priority.SIGNALS)
  losses = imagination.world_model.losses
  np.testing.assert_allclose(signals['reconstruction'], sum(
      losses[k] * agent.loss_scales[k] for k in keys), rtol=1e-6)
  data['stepid'] = np.zeros((2, agent.sequence_length, 2), np.int64)
  for _ in range(2):
    metrics, updates = agent.train(data)
    assert float(metrics['opt/skipped']) == 0.0
  assert updates['priority'].shape == (2, 4)
  assert np.all(np.isfinite(updates['priority']))
  assert np.all(updates['priority'] > 0)
  assert float(metrics['priority/reconstruction']) > 0
  assert float(metrics['opt/explore_grad_norm']) > 0
