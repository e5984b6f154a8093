"""Prints trainable parameter counts per module and a memory estimate (JSON).

  python -m launch.summary --gin_file=gin_configs/sizes/size12m.gin \
      --obs_space=64x64x3 --action_space=discrete:18

Counts exclude the slow critic (as the official "Optimizer has N params").
The memory figure is an analytic estimate of one update at the configured
batch; `python -m launch.benchmark` measures the real peak RSS.
"""
import json

from absl import app
from absl import flags

from dreamer_tf import spaces
from launch import common_flags  # noqa: F401  (--gin_file, --seed, ...)
from launch import errors

flags.DEFINE_string('obs_space', '64x64x3',
                    'HxWxC for an image, N for a vector; key:spec,... for several.')
flags.DEFINE_string('action_space', 'discrete:18', 'discrete:N or continuous:N.')
FLAGS = flags.FLAGS


def memory_estimate(agent):
  """Bytes of one update: parameters, optimizer state, gradients, activations.

  Activations count the float32 tensors kept for the backward pass: the
  observe scan (RSSM step, encoder and decoder feature maps per replayed
  step) and the actor/critic heads on all B*T*(H+1) imagined features.
  Intermediate buffers XLA frees early are not counted, so read it as a
  lower-bound estimate.
  """
  rssm, wm = agent.wm.rssm, agent.wm
  b, t, h = agent.batch_size, agent.batch_length, agent.imag_length
  params = agent.parameter_counts()['total']
  slow = sum(int(w.shape.num_elements() or 1) for w in
             agent.slow_critic.weights)
  hidden = rssm.dynin[0].layer.units[0]
  per_step = 12 * rssm.deter_size + 6 * hidden + 6 * rssm.stoch_size * (
      rssm.classes)
  for key in wm.keys:
    space = wm.obs_space[key]
    if space.is_image:
      height, width, _ = space.shape
      depth, mults = wm.config.depth, wm.config.mults
      for i, m in enumerate(mults):
        # Conv output before pooling, pooled, normed, activated; x2 decoder.
        pixels = (height >> i) * (width >> i)
        per_step += 2 * (pixels + 3 * pixels // 4) * depth * m
      per_step += 3 * height * width * space.shape[-1]
    else:
      per_step += 9 * wm.config.units
  units = agent.actor.config.units
  heads = b * t * (h + 1) * (
      rssm.feat_size + 6 * units * (agent.actor.config.layers +
                                    agent.critic.config.layers) + 4 * 255)
  activations = b * t * per_step + heads
  total = 4 * (4 * params + slow + activations)
  return dict(
      params_bytes=4 * params, optimizer_state_bytes=8 * params,
      gradient_bytes=4 * params, slow_critic_bytes=4 * slow,
      activation_bytes=4 * activations, total_bytes=total,
      total_gib=round(total / 2**30, 3))


def summarize(obs_space, act_space):
  from dreamer_tf.model import agent as agent_lib  # pylint: disable=import-outside-toplevel
  agent = agent_lib.Agent(obs_space, act_space)
  counts = agent.parameter_counts()
  return dict(
      obs_space={k: list(v.shape) for k, v in obs_space.items()
                 if k in spaces.model_keys(obs_space)},
      action_space={k: (f'discrete:{v.classes}' if v.discrete else
                        f'continuous:{v.shape[0]}')
                    for k, v in act_space.items()},
      batch=[agent.batch_size, agent.batch_length],
      precision=agent.precision,
      params=counts, total=counts['total'],
      memory_per_update_estimate=memory_estimate(agent))


@errors.exits_on_user_error('launch.summary')
def main(argv):
  del argv
  with errors.user_input():
    obs_space = spaces.parse_obs_space(FLAGS.obs_space)
    act_space = spaces.parse_act_space(FLAGS.action_space)
  # TensorFlow loads here, after the spaces: a bad one fails at once.
  from dreamer_tf import config  # pylint: disable=import-outside-toplevel
  with errors.user_input():
    config.parse(FLAGS.gin_file or [], FLAGS.gin_param)
  result = summarize(obs_space, act_space)
  print(json.dumps(result, indent=2))


if __name__ == '__main__':
  app.run(main)
