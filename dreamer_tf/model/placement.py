"""How one update (update.py) runs on the agent's strategy.

`make_update(agent)` returns the update as a function of a global batch,
data {key: [B, C + T, ...]} -> (metrics, latents), that applies it: the
return normaliser, one LaProp + AGC step (§3.8) on the gradient of the
global batch, and the slow-critic EMA (§3.7).

* One replica (the default strategy): the whole update, optimizer and EMA
  included, is one `tf.function` with `jit_compile=Agent.jit_compile`.
* Several replicas: CPU collectives cannot be compiled, and a gradient tape
  cannot span two XLA functions that pass scan TensorLists between them.
  So per replica one XLA function computes the returns (`update.imagine`),
  their percentiles are gathered outside XLA, and a second XLA function
  recomputes the identically seeded forward pass and returns loss and
  gradients for that scale (`update.loss`); Keras' `apply` all-reduces
  (sums) the gradients and our `update_step` clips and steps after the
  reduction.

Sampling uses stateless seeds derived from (Agent.seed, update count); every
replica draws the noise of the global batch and keeps its own rows, so the
data-parallel update samples exactly what the single-device update samples.

A non-finite loss or gradient skips the whole update: the optimizer state,
the slow critic and the return statistics stay as they were (`tf.cond`
inside the single-replica step; a host-side check between the gradient and
the update functions with several replicas). Metric `opt/skipped` is 1.0
then.
"""
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from dreamer_tf.model import behavior
from dreamer_tf.model import update


class Gradients(NamedTuple):
  """Loss, gradients and latents of this replica's share of the batch."""
  metrics: dict  # {name: []} update.Loss metrics and opt/*
  grads: list  # one per trainable variable, summing to the global gradient
  latents: dict  # {deter [B', T, D], stoch [B', T, S, K]}, B' rows here
  retnorm: update.ReturnScale  # when computed here (one replica), else None


def make_update(agent):
  """The update for `agent.strategy`: data -> (metrics, latents).

  data: the global batch {key: [B, C + T, ...]} (numpy or tensors, no
  `stepid`). Returns metrics {name: scalar tensor}, the means over replicas
  of equal batch shares, and the posterior latents {deter [B, T, D], stoch
  [B, T, S, K]} of the global batch as tensors, rows in batch order.
  """
  if agent.strategy.num_replicas_in_sync == 1:
    return _single_replica_update(agent)
  return _multi_replica_update(agent)


def gradients(agent, data, seed, scale=None, sources=None):
  """Loss and gradients of this replica's share of the global batch.

  scale: the return scale S of the global batch (several replicas: from the
  gathered returns); None computes it from this call's returns, which are
  the global batch's with one replica, and returns the new normaliser
  statistics (`Gradients.retnorm`) for the caller to assign only if the
  update is applied. The loss is divided by the replica count so that the
  all-reduced sum is the global-batch gradient. `sources` replaces the
  trainable variables as the differentiation targets (the multi-replica
  StatelessScope path).
  """
  replicas = agent.strategy.num_replicas_in_sync
  variables = agent.trainable_variables if sources is None else sources
  retnorm = None
  with tf.GradientTape() as tape:
    if sources is not None:
      tape.watch(sources)
    imagination = update.imagine(agent, data, seed)
    if scale is None:
      retnorm = update.return_scale(agent.retnorm, imagination.ret)
      scale = retnorm.scale
    loss = update.loss(agent, imagination, scale)
    replica_loss = loss.total / replicas
  grads = tape.gradient(replica_loss, variables)
  metrics = dict(loss.metrics)
  metrics['opt/loss'] = loss.total
  metrics['opt/grad_norm'] = tf.linalg.global_norm(grads) * replicas
  metrics['opt/lr'] = agent.optimizer.learning_rate
  metrics['opt/updates'] = tf.cast(agent.optimizer.iterations + 1,
                                   tf.float32)
  return Gradients(metrics, grads, imagination.world_model.latents, retnorm)


def _single_replica_update(agent):
  """The whole update as one (XLA) function; the skip is a `tf.cond`."""
  def step(data):
    out = gradients(agent, data, _update_seed(agent))

    def apply():
      agent.retnorm.assign(out.retnorm.lo, out.retnorm.hi)
      _apply(agent, out.grads)
      behavior.ema_update(agent.slow_critic.weights, agent.critic.weights,
                          agent.slow_rate)
      return tf.constant(0.0)
    metrics = dict(out.metrics)
    metrics['opt/skipped'] = tf.cond(
        _finite(metrics['opt/loss'], metrics['opt/grad_norm']), apply,
        lambda: tf.constant(1.0))
    return metrics, out.latents
  return tf.function(step, jit_compile=agent.jit_compile)


def _multi_replica_update(agent):
  """The update with several replicas (see the module docstring).

  CPU collectives cannot be compiled, so the returns
  are computed by one XLA function, their percentiles all-gathered
  outside XLA, and the loss and gradients by a second XLA function that
  recomputes the (identically seeded) forward pass with that scale.
  An XLA function must not capture another device's variables, so the
  compiled functions take this replica's parameter values as inputs and
  the layers read them through a Keras StatelessScope. The finiteness
  check runs between the gradient and the update function.
  """
  strategy = agent.strategy
  trainable = agent.trainable_variables
  variables = trainable + agent.slow_critic.weights

  def stateless(fn):
    def wrapped(values, *args):
      with keras.StatelessScope(state_mapping=list(zip(variables, values))):
        return fn(values, *args)
    # One traced function per replica: a shared trace would bake replica
    # 0's id (its rows of the global noise) and device into every replica.
    compiled = {}

    def call(*args):
      replica = _replica_index()
      if replica not in compiled:
        compiled[replica] = tf.function(
            wrapped, jit_compile=agent.jit_compile)
      return compiled[replica](*args)
    return call

  returns = stateless(
      lambda values, data, seed: update.imagine(agent, data, seed).ret)

  def replica_gradients(values, data, seed, scale):
    out = gradients(agent, data, seed, scale,
                    sources=values[:len(trainable)])
    return out.metrics, out.grads, out.latents
  replica_gradients = stateless(replica_gradients)

  @tf.function
  def global_gradients(data):
    seed = _update_seed(agent)
    run = strategy.run
    read = lambda: [tf.identity(v.value) for v in variables]
    ret = strategy.gather(
        run(lambda d: returns(read(), d, seed), (data,)), axis=0)
    retnorm = update.return_scale(agent.retnorm, ret)
    return run(lambda d: replica_gradients(read(), d, seed, retnorm.scale),
               (data,)), retnorm

  @tf.function
  def apply(grads, retnorm):
    agent.retnorm.assign(retnorm.lo, retnorm.hi)
    strategy.run(lambda g: _apply(agent, g), (grads,))  # All-reduce, update.
    behavior.ema_update(agent.slow_critic.weights, agent.critic.weights,
                        agent.slow_rate)

  def distributed_step(data):
    (metrics, grads, latents), retnorm = global_gradients(data)
    finite = all(bool(_finite(*m)) for m in zip(
        strategy.experimental_local_results(metrics['opt/loss']),
        strategy.experimental_local_results(metrics['opt/grad_norm'])))
    if finite:
      apply(grads, retnorm)
    skipped = tf.constant(0.0 if finite else 1.0)
    metrics['opt/skipped'] = (
        strategy.experimental_distribute_values_from_function(
            lambda ctx: skipped))
    return metrics, latents

  def step(data):
    metrics, latents = distributed_step(_distribute(strategy, data))
    latents = {k: tf.concat(strategy.experimental_local_results(v), 0)
               for k, v in latents.items()}
    # Each replica's metrics cover its equal share of the batch.
    metrics = {k: strategy.reduce('MEAN', v, axis=None)
               for k, v in metrics.items()}
    return metrics, latents
  return step


def _distribute(strategy, data):
  """Splits the global batch into contiguous per-replica row blocks."""
  replicas = strategy.num_replicas_in_sync
  data = {k: np.asarray(v) for k, v in data.items()}
  rows = len(data['is_first']) // replicas

  def value_fn(ctx):
    start = ctx.replica_id_in_sync_group * rows
    return {k: tf.constant(v[start:start + rows]) for k, v in data.items()}
  return strategy.experimental_distribute_values_from_function(value_fn)


def _update_seed(agent):
  """The seed of one update's draws: (Agent.seed, update count)."""
  return tf.stack([tf.constant(agent.seed, tf.int32),
                   tf.cast(agent.optimizer.iterations, tf.int32)])


def _apply(agent, grads):
  agent.optimizer.apply(grads, agent.trainable_variables)


def _finite(loss, grad_norm):
  """True when the loss and the gradient norm are finite."""
  return tf.math.is_finite(loss) & tf.math.is_finite(grad_norm)


def _replica_index():
  """This replica's index as a Python int (0 outside a strategy)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None:
    return 0
  index = tf.get_static_value(ctx.replica_id_in_sync_group)
  if index is None:
    raise RuntimeError('The replica id is not static in this strategy.')
  return int(index)
