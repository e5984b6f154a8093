"""Gin parsing: every binding name resolves; typos fail with suggestions."""
import os
import subprocess
import sys

import gin
import pytest

from dreamer_tf import config
from dreamer_tf.model import rssm
from tests.conftest import ROOT


def test_valid_bindings_reach_the_config_dataclasses():
  config.parse([], ['RSSM.deter = 512', 'RSSM.classes = 4'])
  assert rssm.RSSMConfig().deter == 512
  assert rssm.RSSMConfig().classes == 4


@pytest.mark.parametrize('binding, hint', [
    ('RSSM.detr = 512', 'RSSM.deter'),
    ('Agnet.seed = 1', 'Agent'),
    ('WorldModel.unit = 3', 'WorldModel.units'),
])
def test_typos_fail_loudly_with_suggestions(binding, hint):
  with pytest.raises(ValueError, match='did you mean.*' + hint):
    config.parse([], [binding])


def test_suite_includes_resolve_from_any_working_directory(tmp_path):
  # Gin resolves `include 'gin_configs/...'` as a package resource when the
  # working directory is elsewhere (a sweep's or a cluster job's).
  script = ('from dreamer_tf import config; import gin; '
            f'config.parse([{os.path.join(ROOT, "gin_configs", "suites", "gym.gin")!r}]); '
            "print(gin.query_parameter('RSSM.deter'))")
  out = subprocess.run([sys.executable, '-c', script], cwd=tmp_path,
                       capture_output=True, text=True, check=False,
                       env=dict(os.environ, PYTHONPATH=ROOT))
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split()[-1] == '512'


def test_malformed_values_fail_with_a_hint():
  with pytest.raises(ValueError, match='quote strings'):
    config.parse([], ['train.env = dmc:walker_walk'])


def test_missing_gin_file():
  with pytest.raises(FileNotFoundError, match='nope.gin'):
    config.parse(['nope.gin'])


def test_every_size_preset_and_default_parse():
  import os
  for name in sorted(os.listdir(os.path.join(config.ROOT, 'gin_configs',
                                             'sizes'))):
    if not name.endswith('.gin'):
      continue
    gin.clear_config()
    config.parse([os.path.join(config.ROOT, 'gin_configs', 'sizes', name)])
  gin.clear_config()
  config.parse([os.path.join(config.ROOT, 'gin_configs', 'default.gin')])
  assert gin.query_parameter('train.env') == 'gym:CartPole-v1'


@pytest.mark.parametrize('binding,fix', [
    ('Replay.capacity = 1000', 'train.replay_capacity'),
    ('Replay.length = 9', 'Agent.batch_length'),
    ('Replay.directory = "/tmp/r"', 'logdir')])
def test_bindings_the_training_loop_would_ignore_are_refused(binding, fix):
  with pytest.raises(ValueError, match=f'set by the training loop.*{fix}'):
    config.parse([], [binding])
  gin.clear_config()
  config.parse([], ['train.replay_capacity = 1000', 'Replay.online = False'])


def test_valid_bindings_cover_all_configurables():
  names = config.valid_bindings()
  for expected in ('RSSM.deter', 'WorldModel.depth', 'Actor.unimix',
                   'Critic.units', 'LaProp.lr', 'Agent.precision',
                   'Replay.capacity', 'train.train_ratio',
                   'imagination_losses.actent', 'ReturnNormalizer.rate'):
    assert expected in names


def test_seed_comes_from_the_flag_or_a_train_seed_binding():
  cases = [([], 0, False, 0), ([], 4, True, 4),
           (['train.seed = 2'], 0, False, 2), (['train.seed = 2'], 2, True, 2)]
  for bindings, flag, given, expected in cases:
    gin.clear_config()
    config.parse([], bindings)
    assert config.resolve_seed(flag, given) == expected
    # The written config names the seed.
    assert f'train.seed = {expected}' in gin.config_str()
  for bindings, flag, message in [
      (['train.seed = 2'], 5, 'contradicts'),
      (['Agent.seed = 1'], 0, 'Agent.seed is set from the run seed'),
      (['Replay.seed = 1'], 0, 'Replay.seed is set from the run seed'),
      (['train.seed = -3'], 0, r'train.seed = -3 is out of range.*\[0, '),
      ([], -1, r'--seed=-1 is out of range.*\[0, 999999\]'),
      ([], 10**6, 'out of range')]:
    gin.clear_config()
    config.parse([], bindings)
    with pytest.raises(config.ConfigError, match=message):
      config.resolve_seed(flag, flag != 0)


@pytest.mark.parametrize('binding, message', [
    ("RSSM.deter = 'big'",
     "RSSM.deter = 'big': RSSM.deter takes an integer, not a str; e.g. "
     'RSSM.deter = 8192'),
    ("train.steps = 'abc'", 'train.steps takes an integer, not a str'),
    ('train.steps = 1e5', 'without a decimal point or exponent: '
     'train.steps = 100000'),
    ('train.seed = 1.0', 'train.seed takes an integer, not a float'),
    ('RSSM.absolute = 1', 'takes a bool'),
    ('RSSM.deter = True', 'takes an integer, not a bool'),
    ('RSSM.deter = None', 'takes an integer, not None'),
    ('LaProp.lr = "fast"', 'takes a number'),
    ("Agent.precision = 16", 'takes a string'),
    ('Agent.jit_compile = 3', 'a string .* or a bool'),
    ('WorldModel.mults = 4', 'a tuple or list'),
    ('Replay.fracs = 0.5', 'takes a dict.*e.g. Replay.fracs = {'),
])
def test_values_of_the_wrong_type_fail_naming_binding_and_type(
    binding, message):
  with pytest.raises(config.ConfigError, match=message.replace('(', r'\(')):
    config.parse([], [binding])


@pytest.mark.parametrize('binding', [
    'LaProp.lr = 1',  # An int where the default is a float.
    'Agent.jit_compile = False', "Agent.jit_compile = 'auto'",
    'WorldModel.mults = [2, 3]', "Replay.fracs = {'uniform': 1.0}",
    "train.env_kwargs = {'repeat': 4}",  # Default None: any type.
    'train.intrinsic_schedule = @Fixed()',  # References are not checked.
])
def test_values_of_an_accepted_type_parse(binding):
  config.parse([], [binding])
