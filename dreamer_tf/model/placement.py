"""How one update (update.py) runs on the agent's strategy.

`make_update(agent)` returns the update as a function of a global batch,
data {key: [B, C + T, ...]} -> (metrics, replay values), that applies it:
the return normaliser(s), one LaProp + AGC step (§3.8) on the gradient of
the global batch, the slow-critic EMA (§3.7) and, with exploration, one
step of the ensemble's own optimizer. The replay values are what the
update writes back per trained step: the posterior latents (§4.3) and the
priority (`priority.combine` of `update.priority_signals`).

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

With MultiWorkerMirroredStrategy each worker process passes its share of
the global batch (the global batch is the workers' shares in rank order;
replica ids are worker-major), gets the replay values of its own rows back,
and takes part in the same collectives; whether the update is applied is
decided by an all-reduced count of replicas with a non-finite loss, so
every worker takes the same branch (tests/model/test_placement.py runs two
workers on 127.0.0.1).

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
from dreamer_tf.model import priority as priority_lib
from dreamer_tf.model import update


class Gradients(NamedTuple):
  """Loss, gradients and replay values of this replica's share."""
  metrics: dict  # {name: []} update.Loss metrics and opt/*
  grads: list  # one per trainable variable, summing to the global gradient
  replay: dict  # {deter [B', T, D], stoch [B', T, S, K], priority [B', T]}
  retnorms: dict  # {stream: ReturnScale} when computed here, else None
  explore_grads: list  # one per ensemble variable (empty without)


def make_update(agent):
  """The update for `agent.strategy`: data -> (metrics, replay values).

  data: the global batch {key: [B, C + T, ...]} (numpy or tensors, no
  `stepid`; optionally importance weights `weight` [B]). Returns metrics
  {name: scalar tensor}, the means over replicas of equal batch shares,
  and the replay values {deter [B, T, D], stoch [B, T, S, K], priority
  [B, T]} of the global batch as tensors, rows in batch order.
  """
  if agent.strategy.num_replicas_in_sync == 1:
    return _single_replica_update(agent)
  return _multi_replica_update(agent)


def gradients(agent, data, seed, retnorms=None, sources=None):
  """Loss and gradients of this replica's share of the global batch.

  retnorms: {stream: ReturnScale} of the global batch (several replicas:
  from the gathered returns); None computes them from this call's
  returns, which are the global batch's with one replica, and returns them
  (`Gradients.retnorms`) for the caller to assign only if the update is
  applied. The loss is divided by the replica count so that the
  all-reduced sum is the global-batch gradient. The ensemble's loss
  (exploration) is added to the differentiated loss: it depends on the
  ensemble's parameters only and nothing else depends on them, so its
  gradients are exactly its own. `sources` replaces the trainable and
  ensemble variables as the differentiation targets (the multi-replica
  StatelessScope path).
  """
  replicas = agent.strategy.num_replicas_in_sync
  trainable = agent.trainable_variables
  variables = (trainable + agent.explore_variables if sources is None
               else sources)
  computed = retnorms is None
  with tf.GradientTape() as tape:
    if sources is not None:
      tape.watch(sources)
    imagination = update.imagine(agent, data, seed)
    if computed:
      retnorms = update.return_scales(agent, {
          k: s.ret for k, s in imagination.streams.items()})
    loss = update.loss(agent, imagination,
                       {k: r.scale for k, r in retnorms.items()})
    replica_loss = loss.total / replicas
    if loss.explore is not None:
      replica_loss += loss.explore / replicas
  grads = tape.gradient(replica_loss, variables)
  grads, explore_grads = grads[:len(trainable)], grads[len(trainable):]
  metrics = dict(loss.metrics)
  metrics['opt/loss'] = loss.total
  metrics['opt/grad_norm'] = tf.linalg.global_norm(grads) * replicas
  metrics['opt/lr'] = agent.optimizer.learning_rate
  metrics['opt/updates'] = tf.cast(agent.optimizer.iterations + 1,
                                   tf.float32)
  if explore_grads:
    metrics['opt/explore_grad_norm'] = tf.linalg.global_norm(
        explore_grads) * replicas
  signals = update.priority_signals(agent, imagination, retnorms)
  priority = priority_lib.combine(signals, agent.priority.weights)
  metrics.update(priority_lib.summary(signals, priority))
  replay = dict(imagination.world_model.latents, priority=priority)
  return Gradients(metrics, grads, replay, retnorms if computed else None,
                   explore_grads)


def _single_replica_update(agent):
  """The whole update as one (XLA) function; the skip is a `tf.cond`."""
  def step(data):
    out = gradients(agent, data, _update_seed(agent))

    def apply():
      _assign_retnorms(agent, out.retnorms)
      _apply(agent, out.grads, out.explore_grads)
      _slow_update(agent)
      return tf.constant(0.0)
    metrics = dict(out.metrics)
    metrics['opt/skipped'] = tf.cond(_finite(metrics), apply,
                                     lambda: tf.constant(1.0))
    return metrics, out.replay
  return tf.function(step, jit_compile=agent.jit_compile, autograph=False)


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
  sources = agent.trainable_variables + agent.explore_variables
  variables = sources + agent.slow_variables

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
            wrapped, jit_compile=agent.jit_compile, autograph=False)
      return compiled[replica](*args)
    return call

  returns = stateless(lambda values, data, seed: {
      k: s.ret for k, s in update.imagine(agent, data, seed).streams.items()})

  def replica_gradients(values, data, seed, retnorms):
    out = gradients(agent, data, seed, retnorms,
                    sources=values[:len(sources)])
    return out.metrics, out.grads, out.explore_grads, out.replay
  replica_gradients = stateless(replica_gradients)

  @tf.function(autograph=False)
  def global_gradients(data):
    seed = _update_seed(agent)
    run = strategy.run
    read = lambda: [tf.identity(v.value) for v in variables]
    rets = run(lambda d: returns(read(), d, seed), (data,))
    retnorms = update.return_scales(agent, {
        k: strategy.gather(v, axis=0) for k, v in rets.items()})
    return run(lambda d: replica_gradients(read(), d, seed, retnorms),
               (data,)), retnorms

  @tf.function(autograph=False)
  def apply(grads, explore_grads, retnorms):
    _assign_retnorms(agent, retnorms)
    # All-reduce, update. tf.identity places each gradient on its
    # replica's device: a worker's only replica receives them as plain
    # function inputs without a device, which the all-reduce refuses.
    strategy.run(lambda g, e: _apply(
        agent, [tf.identity(x) for x in g], [tf.identity(x) for x in e]),
                 (grads, explore_grads))
    _slow_update(agent)

  def distributed_step(data):
    (metrics, grads, explore_grads, replay), retnorms = global_gradients(
        data)
    # Every replica of every worker must take the same branch: the count
    # of replicas with a non-finite loss or gradient is all-reduced.
    nonfinite = strategy.run(
        lambda m: 1.0 - tf.cast(_finite(m), tf.float32), (metrics,))
    finite = float(strategy.reduce('SUM', nonfinite, axis=None)) == 0.0
    if finite:
      apply(grads, explore_grads, retnorms)
    skipped = tf.constant(0.0 if finite else 1.0)
    metrics['opt/skipped'] = (
        strategy.experimental_distribute_values_from_function(
            lambda ctx: skipped))
    return metrics, replay

  def step(data):
    metrics, replay = distributed_step(_distribute(strategy, data))
    replay = {k: tf.concat(strategy.experimental_local_results(v), 0)
              for k, v in replay.items()}
    # Each replica's metrics cover its equal share of the batch.
    metrics = {k: strategy.reduce('MEAN', v, axis=None)
               for k, v in metrics.items()}
    return metrics, replay
  return step


def local_replicas(strategy):
  """Replicas of `strategy` in this process: all of them on one machine,
  this worker's with MultiWorkerMirroredStrategy."""
  if strategy.num_replicas_in_sync == 1:
    return 1  # (The default strategy has no worker_devices.)
  return len(strategy.extended.worker_devices)


def _distribute(strategy, data):
  """Splits this worker's share of the global batch into contiguous
  per-replica row blocks, one per local replica (the global batch is the
  workers' shares in worker order; replica ids are worker-major)."""
  local = local_replicas(strategy)
  data = {k: np.asarray(v) for k, v in data.items()}
  rows = len(data['is_first']) // local

  def value_fn(ctx):
    start = (ctx.replica_id_in_sync_group % local) * rows
    return {k: tf.constant(v[start:start + rows]) for k, v in data.items()}
  return strategy.experimental_distribute_values_from_function(value_fn)


def _update_seed(agent):
  """The seed of one update's draws: (Agent.seed, update count)."""
  return tf.stack([tf.constant(agent.seed, tf.int32),
                   tf.cast(agent.optimizer.iterations, tf.int32)])


def _apply(agent, grads, explore_grads):
  agent.optimizer.apply(grads, agent.trainable_variables)
  if explore_grads:
    agent.explore_optimizer.apply(explore_grads, agent.explore_variables)


def _assign_retnorms(agent, retnorms):
  for stream, retnorm in retnorms.items():
    agent.retnorms[stream].assign(retnorm.lo, retnorm.hi)


def _slow_update(agent):
  """The slow critics' EMA towards their critics (§3.7)."""
  for stream, critic in agent.critics.items():
    behavior.ema_update(agent.slow_critics[stream].weights, critic.weights,
                        agent.slow_rate)


def _finite(metrics):
  """True when the loss and the gradient norm(s) are finite."""
  keys = ('opt/loss', 'opt/grad_norm', 'opt/explore_grad_norm')
  return tf.reduce_all([tf.math.is_finite(metrics[k]) for k in keys
                        if k in metrics])


def _replica_index():
  """This replica's index as a Python int (0 outside a strategy)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None:
    return 0
  index = tf.get_static_value(ctx.replica_id_in_sync_group)
  if index is None:
    raise RuntimeError('The replica id is not static in this strategy.')
  return int(index)
