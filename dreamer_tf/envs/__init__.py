"""Environment suites behind one constructor, `make('suite:task', **kwargs)`.

Ids (spec §5.1, §5.2 and the Decisions table):
  gym:CartPole-v1        any registered gymnasium id (`gym.GymEnv`)
  atari:Pong             Atari-57 protocol: 96x96 gray, sticky 0.25, 18 actions
  atari100k:Pong         Atari100k protocol: 64x64 RGB, no sticky, minimal set
  dmc:walker_walk        dm_control proprio vectors, action repeat 2
  dmc_vision:walker_walk dm_control 64x64 image only, action repeat 2
  crafter:reward         Crafter 64x64 RGB with achievement rewards
  deepsea:10             bsuite's DeepSea exploration chain, 10x10 one-hot

Keyword arguments go to the suite's constructor and override the preset
(e.g. `make('atari100k:Pong', seed=1, noops=0)`). Suite modules import their
optional dependencies lazily, so `import dreamer_tf.envs` needs none of them.
"""
import importlib

from dreamer_tf.envs.base import Env  # noqa: F401  (re-export)
from dreamer_tf.envs.base import suggest

# The env of `python -m launch.train` with no flags (run.train.train's
# default): small, vector observations, no download.
DEFAULT = 'gym:CartPole-v1'

# Env frames per policy step under each suite's default action repeat.
FRAMES_PER_STEP = {'gym': 1, 'atari': 4, 'atari100k': 4, 'dmc': 2,
                   'dmc_vision': 2, 'crafter': 1, 'deepsea': 1}

# suite -> (module, constructor, preset kwargs).
SUITES = {
    'gym': ('gym', 'GymEnv', {}),
    'atari': ('atari', 'Atari', {'preset': 'atari57'}),
    'atari100k': ('atari', 'Atari', {'preset': 'atari100k'}),
    'dmc': ('dmc', 'DMC', {'proprio': True, 'image': False}),
    'dmc_vision': ('dmc', 'DMC', {'proprio': False, 'image': True}),
    'crafter': ('crafter', 'Crafter', {}),
    'deepsea': ('deepsea', 'make_env', {}),
}


def parse(name):
  """'suite:task' -> (suite, task); raises ValueError on a bad id."""
  suite, sep, task = name.partition(':')
  if not sep or not task:
    raise ValueError(
        f'Env id {name!r} is not of the form suite:task, e.g. '
        f"'gym:CartPole-v1' or 'dmc:walker_walk'. Suites: {sorted(SUITES)}.")
  if suite not in SUITES:
    raise ValueError(
        f'Unknown env suite {suite!r} in {name!r}{suggest(suite, SUITES)}. '
        f'Known suites: {sorted(SUITES)}.')
  return suite, task


def make(name, **kwargs):
  """Builds the env with id 'suite:task' (see the module docstring).

  A picklable constructor for worker processes is
  `functools.partial(make, name, **kwargs)`.
  """
  suite, task = parse(name)
  module, ctor, preset = SUITES[suite]
  module = importlib.import_module(f'dreamer_tf.envs.{module}')
  return getattr(module, ctor)(task, **{**preset, **kwargs})


def frames_per_step(name, env_kwargs=None, frames_per_step=None):
  """Env frames per policy step of env `name`: its action repeat.

  An explicit `repeat` in env_kwargs wins over the suite's default; a
  `frames_per_step` that contradicts it is an error (it would shift every
  curve's x-axis).
  """
  suite = parse(name)[0]
  repeat = dict(env_kwargs or {}).get('repeat')
  if frames_per_step and repeat and frames_per_step != repeat:
    raise ValueError(
        f'train.frames_per_step={frames_per_step} contradicts '
        f"train.env_kwargs={{'repeat': {repeat}}}: frames are policy steps "
        'x action repeat. Drop train.frames_per_step (it follows the '
        'repeat) or make them equal.')
  return frames_per_step or repeat or FRAMES_PER_STEP.get(suite, 1)
