"""Compares one multi-replica update with the default-strategy update.

Run as a script (it must configure 2 logical CPU devices before TF starts):
  python -m tests.model.mirrored_update OBS ACT [+weights] [BINDING ...]
(from the repository root); `+weights` adds importance weights `weight`
[B] to the batches. Prints one JSON line with the max relative/absolute
differences per group.

With `TF_CONFIG` set (one process per worker), the multi-replica update is
a MultiWorkerMirroredStrategy over the workers, one CPU replica each: every
worker draws the same global batch, trains the default-strategy agent on
all of it and the multi-worker agent on its own rows (worker-major), and
compares the replay values of its rows.
"""
import json
import os
import sys

import tensorflow as tf

MULTI_WORKER = bool(os.environ.get('TF_CONFIG'))
if not MULTI_WORKER:
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from dreamer_tf.model import agent as agent_lib  # noqa: E402
from dreamer_tf import config  # noqa: E402
from dreamer_tf import spaces  # noqa: E402
from dreamer_tf.model import batches  # noqa: E402
from tests import conftest  # noqa: E402

# The tiny model of the test suite,
# with warm-up off so the compared updates move the parameters.
WEIGHTS = '+weights' in sys.argv[3:]
TINY = conftest.TINY + [
    'Agent.batch_size = 4', 'Agent.batch_length = 6', 'LaProp.warmup = 0',
    'LaProp.lr = 1e-4', "Agent.precision = 'float32'",
] + [arg for arg in sys.argv[3:] if arg != '+weights']


def groups(agent):
  """The agent's state variables by group."""
  optimizers = [agent.optimizer] + (
      [agent.explore_optimizer] if agent.explore_optimizer else [])
  optimizer = [v for o in optimizers for v in o.variables]
  return dict(
      params=agent.trainable_variables + agent.explore_variables,
      slow_critic=agent.slow_variables,
      retnorm=[v for r in agent.retnorms.values() for v in r.weights],
      optimizer_nu=[v for v in optimizer if 'nu' in v.name],
      optimizer_mu=[v for v in optimizer if 'mu' in v.name])


def local_copies(variable):
  """The local copies of a (Keras or TensorFlow) variable: one per replica
  of this process for a mirrored one, else the variable itself."""
  # A Keras variable keeps the TensorFlow variable (a MirroredVariable
  # under a multi-replica strategy) as its `value`.
  inner = getattr(variable, 'value', variable)
  return list(getattr(inner, 'values', [inner]))


def state(agent):
  """Each state variable's value (a mirrored one's first local copy)."""
  return {k: [np.array(local_copies(v)[0].numpy()) for v in vs]
          for k, vs in groups(agent).items()}


def copies_max_abs_diff(agent):
  """Per group, the largest |copy i - copy 0| over the local copies of
  every variable (0.0: all replicas hold the same state; None: no
  variable of the group has several local copies)."""
  out = {}
  for group, variables in groups(agent).items():
    diffs = [float(np.abs(c.numpy() - copies[0].numpy()).max())
             for copies in map(local_copies, variables)
             for c in copies[1:]]
    out[group] = max(diffs) if diffs else None
  return out


def main(obs, act, updates=2):
  config.parse([], TINY)
  obs_space = spaces.parse_obs_space(obs)
  act_space = spaces.parse_act_space(act)
  if MULTI_WORKER:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ['TF_CONFIG'])['task']['index']
  else:
    strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    task = 0
  single = agent_lib.Agent(obs_space, act_space)
  mirrored = agent_lib.Agent(obs_space, act_space, strategy=strategy)
  workers = strategy.num_replicas_in_sync if MULTI_WORKER else 1
  for agent in (single, mirrored):
    agent.set_intrinsic_weight(0.5)
  rng = np.random.default_rng(1)
  out = {'replicas': mirrored.strategy.num_replicas_in_sync,
         'task': task}
  before = state(mirrored)
  initial = single.get_state()
  for i in range(updates):
    if i:
      # Every compared update starts from the initial parameters (with the
      # update count, hence the noise seed, of update i). From trained
      # parameters, the per-replica (B/2 rows) and full-batch (B rows)
      # kernels give logits that differ in the last bit, an imagined
      # categorical latent whose scores tie to an ulp flips, and a whole
      # imagined trajectory changes: on an AMD EPYC CPU the second update
      # from identical trained states gave ret_min -0.88 vs -6e-5 (fresh
      # agents restored from that state reproduce it exactly, so no state
      # is missing from get_state); from the initial parameters every
      # update matched. Return statistics away from zero make the return
      # scale S = 3 (not 1) and let the compared update move them.
      for agent in (single, mirrored):
        agent.set_state(initial)
        agent.optimizer.iterations.assign(i)
        for retnorm in agent.retnorms.values():
          retnorm.assign(tf.constant(-1.0), tf.constant(2.0))
    data = batches.random_batch(single, rng)
    if WEIGHTS:
      data['weight'] = rng.uniform(0.2, 1.0, len(data['is_first'])).astype(
          np.float32)
    # Step ids (chunk id, index) that name every row and step differently.
    rows, length = data['is_first'].shape
    data['stepid'] = np.stack(np.broadcast_arrays(
        np.arange(rows)[:, None] + 10 * i, np.arange(length)[None]),
        -1).astype(np.int64)
    m1, u1 = single.train(data)
    # This worker's rows of the global batch (all of them on one machine).
    share = rows // workers
    mine = slice(task * share, (task + 1) * share)
    m2, u2 = mirrored.train({k: v[mine] for k, v in data.items()})
    u1 = {k: v[mine] for k, v in u1.items()}
    expected = data['stepid'][mine]
    expected = expected[:, single.replay_context:]
    out[f'stepid_{i}'] = [bool(np.array_equal(u['stepid'], expected))
                          for u in (u1, u2)]
    # The latents come back in batch row order from both placements.
    out[f'latents_max_abs_diff_{i}'] = float(np.abs(
        u1['deter'] - u2['deter']).max())
    # Priorities, relative to their scale.
    out[f'priority_max_rel_diff_{i}'] = float(np.abs(
        u1['priority'] - u2['priority']).max() / np.abs(
            u1['priority']).max())
    out[f'loss_{i}'] = [float(m1['opt/loss']), float(m2['opt/loss'])]
    # Every loss metric of the mirrored step is the mean over replicas of
    # equal batch shares, so it equals the single-device value.
    out[f'loss_metrics_{i}'] = {
        k: [float(m1[k]), float(m2[k])] for k in m1 if k.startswith('loss/')}
  out['iterations'] = [int(single.optimizer.iterations.numpy()),
                       int(mirrored.optimizer.iterations.numpy())]
  out['latents_max_abs_diff'] = float(np.abs(
      u1['deter'] - u2['deter']).max())
  # The replicas' own copies must agree, not only copy 0 with one device.
  out['copies_max_abs_diff'] = copies_max_abs_diff(mirrored)
  a, b = state(single), state(mirrored)
  for group in a:
    # Per tensor: max |single - mirrored| / max |single| (relative error at
    # the tensor's scale; elementwise ratios of ~0 entries are meaningless).
    errors = [np.abs(x - y).max() / max(np.abs(x).max(), 1e-30)
              for x, y in zip(a[group], b[group])]
    out[group] = dict(
        max_rel=float(max(errors)),
        max_abs=float(max(np.abs(x - y).max()
                          for x, y in zip(a[group], b[group]))),
        changed=bool(any(np.abs(x - y).max() > 0 for x, y in zip(
            before[group], a[group]))))
  # A reward that is not finite in the first row only (replica 0's share,
  # worker 0's rows) skips the update on every replica and worker alike.
  bad = dict(data, reward=data['reward'].copy())
  bad['reward'][0, :] = np.nan
  metrics, _ = mirrored.train({k: v[mine] for k, v in bad.items()})
  out['nonfinite_skipped'] = float(metrics['opt/skipped'])
  out['nonfinite_changed'] = sorted(
      group for group, values in state(mirrored).items()
      if any(np.abs(x - y).max() > 0 for x, y in zip(b[group], values)))
  out['nonfinite_copies_max_abs_diff'] = copies_max_abs_diff(mirrored)
  print(json.dumps(out))


if __name__ == '__main__':
  main(*sys.argv[1:3])
