"""Compares one MirroredStrategy update with the default-strategy update.

Run as a script (it must configure 2 logical CPU devices before TF starts):
  python -m tests.model.mirrored_update OBS ACT   (from the repository root)
Prints one JSON line with the max relative/absolute differences per group.
"""
import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from dreamer_tf.model import agent as agent_lib  # noqa: E402
from dreamer_tf import config  # noqa: E402
from dreamer_tf import spaces  # noqa: E402
from launch import benchmark  # noqa: E402
from tests import conftest  # noqa: E402

# The tiny model of the test suite,
# with warm-up off so the compared updates move the parameters.
TINY = conftest.TINY + [
    'Agent.batch_size = 4', 'Agent.batch_length = 6', 'LaProp.warmup = 0',
    'LaProp.lr = 1e-4', "Agent.precision = 'float32'",
] + sys.argv[3:]


def state(agent):
  groups = dict(
      params=agent.trainable_variables,
      slow_critic=agent.slow_critic.weights,
      retnorm=agent.retnorm.weights,
      optimizer_nu=[v for v in agent.optimizer.variables if 'nu' in v.name],
      optimizer_mu=[v for v in agent.optimizer.variables if 'mu' in v.name])
  return {k: [np.array(v.numpy() if not hasattr(v, 'values') else
                       v.values[0].numpy()) for v in vs]
          for k, vs in groups.items()}


def main(obs, act, updates=2):
  config.parse([], TINY)
  obs_space, act_space = spaces.parse_obs_space(obs), spaces.parse_act_space(act)
  single = agent_lib.Agent(obs_space, act_space)
  mirrored = agent_lib.Agent(
      obs_space, act_space,
      strategy=tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']))
  rng = np.random.default_rng(1)
  out = {'replicas': mirrored.strategy.num_replicas_in_sync}
  before = state(mirrored)
  for i in range(updates):
    data = benchmark.random_batch(single, rng)
    m1, u1 = single.train(data)
    m2, u2 = mirrored.train(data)
    out[f'loss_{i}'] = [float(m1['opt/loss']), float(m2['opt/loss'])]
    # Every loss metric of the mirrored step is the mean over replicas of
    # equal batch shares, so it equals the single-device value.
    out[f'loss_metrics_{i}'] = {
        k: [float(m1[k]), float(m2[k])] for k in m1 if k.startswith('loss/')}
  out['iterations'] = [int(single.optimizer.iterations.numpy()),
                       int(mirrored.optimizer.iterations.numpy())]
  out['latents_max_abs_diff'] = float(np.abs(
      u1['deter'].numpy() - u2['deter'].numpy()).max())
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
  print(json.dumps(out))


if __name__ == '__main__':
  main(*sys.argv[1:3])
