"""Every suite config builds its env and agent (debug.gin shrinks the model)."""
import functools
import os

import gin
import numpy as np
import pytest

from dreamer_tf.model import agent as agent_lib
from dreamer_tf import config
from dreamer_tf import envs as envs_lib
from dreamer_tf.envs import parallel
from tests.conftest import ROOT

SUITES = sorted(n[:-4] for n in os.listdir(
    os.path.join(ROOT, 'gin_configs', 'suites')) if n.endswith('.gin'))


def test_all_expected_suites_exist():
  assert {'atari100k', 'atari', 'dmc_proprio', 'dmc_vision', 'gym',
          'crafter', 'debug'} <= set(SUITES)


@pytest.mark.parametrize('suite', [s for s in SUITES if s != 'debug'])
def test_suite_builds_env_and_agent(suite):
  gin.clear_config()
  config.parse([os.path.join(ROOT, 'gin_configs', 'suites', f'{suite}.gin'),
                os.path.join(ROOT, 'gin_configs', 'suites', 'debug.gin')])
  name = gin.query_parameter('train.env')
  kwargs = _query('train.env_kwargs') or {}
  # As in training, the env lives in a spawned worker: MuJoCo's EGL renderer
  # and TensorFlow must not share a process.
  env = parallel.ParallelEnvs(
      [functools.partial(envs_lib.make, name, seed=0, **kwargs)])
  try:
    agent = agent_lib.Agent(env.obs_space, env.act_space)
    assert agent.parameter_counts()['total'] < 200_000  # debug.gin applied
    obs = env.step({k: np.zeros((1, *s.shape), s.dtype)
                    for k, s in env.act_space.items()})
    actions, _, _ = agent.policy({k: obs[k] for k in agent.obs_space},
                                 agent.initial_carry(1), [0, 0])
    obs = env.step({k: np.asarray(v) for k, v in actions.items()})
    assert not obs['is_first'][0]
  finally:
    env.close()


def test_size_composes_on_top_of_a_suite():
  gin.clear_config()
  config.parse([os.path.join(ROOT, 'gin_configs', 'suites', 'atari100k.gin'),
                os.path.join(ROOT, 'gin_configs', 'sizes', 'size12m.gin')])
  assert gin.query_parameter('RSSM.deter') == 2048
  assert gin.query_parameter('train.train_ratio') == 256


def _query(name):
  try:
    return gin.query_parameter(name)
  except ValueError:
    return None


XP_PRESETS = sorted(n[:-4] for n in os.listdir(
    os.path.join(ROOT, 'gin_configs', 'xp')) if n.endswith('.gin'))


def test_all_xp_presets_exist():
  assert set(XP_PRESETS) == {
      'baseline', 'prioritized', 'prioritized_latent', 'prioritized_embed',
      'embed_fixed'} | {
          f'{s}_{k}' for s in ('latent', 'reward')
          for k in ('fixed', 'decay', 'returns')}


@pytest.mark.parametrize('preset', XP_PRESETS)
def test_xp_preset_composes_on_deepsea_and_says_what_it_is(preset):
  """Each DreamerV3-XP preset parses on top of a suite, builds its agent
  and schedule, and opens with a description (its experiment's)."""
  # pylint: disable-next=import-outside-toplevel
  from dreamer_tf.sweep import experiments
  from dreamer_tf import spaces
  path = os.path.join(ROOT, 'gin_configs', 'xp', f'{preset}.gin')
  assert len(experiments.describe(path)) > 40
  gin.clear_config()
  config.parse([os.path.join(ROOT, 'gin_configs', 'suites', 'deepsea.gin'),
                os.path.join(ROOT, 'gin_configs', 'suites', 'debug.gin'),
                path])
  agent = agent_lib.Agent(spaces.parse_obs_space('100'),
                          spaces.parse_act_space('discrete:2'))
  exploring = preset.startswith(
      ('latent', 'embed', 'reward', 'prioritized_latent', 'prioritized_embed'))
  assert (agent.ensemble is not None) == exploring
  if exploring:
    assert agent.exploration.target == (
        'embed' if 'embed' in preset else 'stoch')
  schedule = _query('train.intrinsic_schedule')
  assert (schedule is not None) == exploring
  if schedule is not None:  # A reference `@Schedule()`: build it.
    assert schedule.scoped_configurable_fn().value(0) >= 0
  fracs = _query('Replay.fracs') or {}
  assert (fracs.get('priority', 0) > 0) == preset.startswith('prioritized')
