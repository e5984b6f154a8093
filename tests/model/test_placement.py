"""Placement of the update: the finiteness skip, the two-phase split and
the multi-replica update against the single-device one."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import placement
from dreamer_tf.model import update
from tests.conftest import ROOT, TINY, free_ports, make_batch, tf_config
from tests.model.test_agent import build


def test_two_phases_give_the_one_phase_gradients():
  """Returns first, then the loss given their scale (the multi-replica
  split) differentiates to exactly the single-phase gradients."""
  agent = build('24', 'discrete:3', *TINY, 'Agent.batch_size = 2',
                'Agent.batch_length = 3', "Agent.precision = 'float32'")
  data = make_batch(agent)
  seed = tf.constant([0, 3])
  one = placement.gradients(agent, data, seed)
  ret = update.imagine(agent, data, seed).ret
  retnorm = update.return_scale(agent.retnorm, ret)
  two = placement.gradients(agent, data, seed, {'extr': retnorm})
  assert two.retnorms is None
  assert float(one.retnorms['extr'].scale) == float(retnorm.scale)
  for a, b in zip(one.grads, two.grads):
    np.testing.assert_array_equal(a, b)
  for key, value in one.metrics.items():
    np.testing.assert_array_equal(value, two.metrics[key], err_msg=key)


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


def run_mirrored(obs, act, *bindings):
  proc = subprocess.run(
      [sys.executable, '-m', 'tests.model.mirrored_update',
       obs, act, *bindings], capture_output=True, text=True, cwd=ROOT,
      timeout=900, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_update_equals_single_device_update():
  """Two updates on 2 logical CPUs equal the default-strategy updates,
  for image observations and a discrete action. (Vectors and a continuous
  action: the tests with exploration and with two workers below.)

  Both run without XLA: the single-device step is one fused XLA program
  while the multi-replica step is split at the collectives, and different
  fusions round differently; a categorical sample whose Gumbel scores tie
  to an ulp then flips. Per-op TF kernels give the same samples, so the
  comparison is exact up to float32 summation order.
  """
  result = run_mirrored('64x64x3', 'discrete:3', 'Agent.jit_compile = False')
  assert result['replicas'] == 2
  for i in range(2):
    single, mirrored = result[f'loss_{i}']
    assert mirrored == pytest.approx(single, rel=1e-5)
  assert result['iterations'] == [2, 2]
  # The replay updates name the trained steps, rows in batch order.
  assert result['stepid_0'] == result['stepid_1'] == [True, True]
  assert result['latents_max_abs_diff_0'] < 1e-5, result
  _assert_same_updates(result, {'loss/dyn', 'loss/policy', 'loss/value'})


def _assert_same_updates(result, loss_keys, local_copies=2):
  """Every loss metric of both updates, and the state after them, match;
  with `local_copies` > 1 (replicas in this process), every copy of the
  state equals copy 0 bit for bit. A batch non-finite in one replica's
  rows only is then skipped by every replica and changes nothing."""
  for i in range(2):
    per_loss = result[f'loss_metrics_{i}']
    assert loss_keys <= set(per_loss)
    for key, (single, mirrored) in per_loss.items():
      assert mirrored == pytest.approx(single, rel=1e-5, abs=1e-7), key
  for group in ('params', 'slow_critic', 'retnorm'):
    assert result[group]['changed'], group
    assert result[group]['max_rel'] < 1e-5, (group, result)
  # Every replica holds the same state, bit for bit: what was compared
  # above through copy 0 holds for every copy.
  copies = result['copies_max_abs_diff']
  assert set(copies) == {'params', 'slow_critic', 'retnorm', 'optimizer_nu',
                         'optimizer_mu'}, copies
  expected = 0.0 if local_copies > 1 else None
  assert all(diff == expected for diff in copies.values()), copies
  # A batch non-finite in one replica's (one worker's) rows only is skipped
  # by all of them, and changes no state.
  assert result['nonfinite_skipped'] == 1.0, result
  assert result['nonfinite_changed'] == [], result
  assert all(diff == expected for diff in
             result['nonfinite_copies_max_abs_diff'].values()), result
  # The optimizer moments see the all-reduced sum of partial sums, whose
  # float32 rounding differs from the one-device sum; LaProp's g/sqrt(nu)
  # magnifies that for near-zero gradient entries in the momentum.
  assert result['optimizer_nu']['max_rel'] < 1e-4, result
  assert result['optimizer_mu']['max_rel'] < 1e-3, result


@pytest.mark.slow
def test_mirrored_update_with_exploration_equals_single_device():
  """Ensemble, intrinsic stream, importance weights and priorities: the
  2-replica update equals the single-device one as without them. (Latent
  disagreement on the embedding target, which routes the encoder's
  embeddings to the ensemble; the posterior-sample target and the reward
  signal differ only inside the ensemble, which tests/model/test_explore.py
  checks by hand.)"""
  result = run_mirrored(
      '24', 'continuous:2', '+weights', 'Agent.jit_compile = False',
      "Exploration.signal = 'latent'", "Exploration.target = 'embed'",
      'Exploration.units = 16',
      "Priority.weights = {'world_model': 1.0, 'value_error': 1.0, "
      "'intrinsic_return': 1.0}")
  for i in range(2):
    assert result[f'priority_max_rel_diff_{i}'] < 1e-5, result
  _assert_same_updates(result, {'loss/value_intr', 'loss/policy',
                                'loss/dyn'})


@pytest.mark.slow
def test_mirrored_backprop_actor_update_equals_single_device():
  """The backprop actor reads the frozen parameters through a scope nested
  in the multi-replica path's StatelessScope: each replica's values, and
  the same update as on one device."""
  result = run_mirrored('24', 'continuous:2', 'Agent.jit_compile = False',
                        "Agent.actor_grad = 'backprop'")
  _assert_same_updates(result, {'loss/policy', 'loss/value', 'loss/dyn'})


@pytest.mark.slow
def test_mirrored_update_runs_with_xla_loss_and_gradients():
  """The multi-replica XLA path (collectives outside XLA) trains too."""
  result = run_mirrored('24', 'continuous:2', 'Agent.jit_compile = True')
  single, mirrored = result['loss_0']
  assert mirrored == pytest.approx(single, rel=1e-4)  # before any update
  assert result['params']['changed'] and result['params']['max_rel'] < 1e-2


@pytest.mark.slow
def test_multi_worker_update_equals_single_device_update():
  """Two worker processes (MultiWorkerMirroredStrategy over 127.0.0.1, one
  CPU replica each), each training on its half of the global batch: the
  update equals the default-strategy update of the whole batch, on both
  workers, and each worker gets the replay values of its own rows."""
  ports = free_ports(2)
  procs = [subprocess.Popen(
      [sys.executable, '-m', 'tests.model.mirrored_update', '24',
       'continuous:2', '+weights', 'Agent.jit_compile = False'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=dict(os.environ, TF_CONFIG=tf_config(ports, i)))
           for i in range(2)]
  results = []
  try:
    for proc in procs:
      out, err = proc.communicate(timeout=900)
      assert proc.returncode == 0, err[-3000:]
      results.append(json.loads(out.strip().splitlines()[-1]))
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
  assert [r['task'] for r in results] == [0, 1]
  for result in results:
    assert result['replicas'] == 2
    assert result['iterations'] == [2, 2]
    assert result['stepid_0'] == result['stepid_1'] == [True, True]
    assert result['latents_max_abs_diff_0'] < 1e-5, result
    for i in range(2):
      assert result[f'priority_max_rel_diff_{i}'] < 1e-5, result
    _assert_same_updates(result, {'loss/dyn', 'loss/policy', 'loss/value'},
                         local_copies=1)
  # Both workers hold the same parameters.
  assert results[0]['params'] == results[1]['params']
