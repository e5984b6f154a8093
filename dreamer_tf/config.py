"""Gin parsing with loud, helpful failures on bad bindings.

Every hyperparameter is a gin parameter of the constructor (or config
dataclass) that uses it. `parse` fails with a `ConfigError` (a ValueError,
`config_check.py`) naming the bad binding: an unknown name with the closest
valid names (`RSSM.detr` -> `RSSM.deter`), a value of the wrong type with
the type the parameter takes (`RSSM.deter = 'big'`: an integer), or a
binding the training loop would ignore.
"""
import dataclasses
import difflib
import inspect
import os

import gin

from dreamer_tf import config_check
from dreamer_tf.config_check import ConfigError  # noqa: F401  (re-export)
from dreamer_tf.envs import parallel
from dreamer_tf.model import agent
from dreamer_tf.model import behavior
from dreamer_tf.model import explore
from dreamer_tf.model import optim
from dreamer_tf.model import priority
from dreamer_tf import replay
from dreamer_tf.model import rssm
from dreamer_tf.model import world_model
from dreamer_tf.run import MAX_SEED
from dreamer_tf.run import schedules
from dreamer_tf.run import train

# Gin files may include others relative to the repository root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
gin.add_config_file_search_path(ROOT)

# Configurable name -> the object gin wraps (classes, dataclasses, functions).
CONFIGURABLES = {
    'Agent': agent.Agent,
    'RSSM': rssm.RSSMConfig,
    'WorldModel': world_model.WorldModelConfig,
    'Actor': behavior.ActorConfig,
    'Critic': behavior.CriticConfig,
    'ReturnNormalizer': behavior.ReturnNormalizerConfig,
    'Exploration': explore.ExplorationConfig,
    'Priority': priority.PriorityConfig,
    'LaProp': optim.LaProp,
    'Replay': replay.Replay,
    'imagination_losses': behavior.imagination_losses,
    'train': train.train,
    'Fixed': schedules.Fixed,
    'ExponentialDecay': schedules.ExponentialDecay,
    'ReturnProgress': schedules.ReturnProgress,
    'CrashLimits': parallel.CrashLimits,
}


# Parameters `train` always passes itself: a binding would be ignored.
SET_BY_TRAIN = {
    'Replay.capacity': 'bind train.replay_capacity instead',
    'Replay.length': 'it is Agent.batch_length + Agent.replay_context',
    'Replay.directory': 'it is <logdir>/replay',
    'Replay.restore': 'train loads the replay save its checkpoint names',
}


def parameters(obj):
  """Names a configurable accepts."""
  obj = inspect.unwrap(obj)
  if dataclasses.is_dataclass(obj):
    return [f.name for f in dataclasses.fields(obj)]
  target = obj.__init__ if inspect.isclass(obj) else obj
  return [p for p in inspect.signature(inspect.unwrap(target)).parameters
          if p not in ('self', 'args', 'kw', 'kwargs')]


def defaults(obj):
  """{parameter: default} of a configurable, for the parameters that have
  one."""
  obj = inspect.unwrap(obj)
  if dataclasses.is_dataclass(obj):
    result = {}
    for field in dataclasses.fields(obj):
      if field.default is not dataclasses.MISSING:
        result[field.name] = field.default
      elif field.default_factory is not dataclasses.MISSING:
        result[field.name] = field.default_factory()
    return result
  target = obj.__init__ if inspect.isclass(obj) else obj
  return {name: p.default for name, p in
          inspect.signature(inspect.unwrap(target)).parameters.items()
          if p.default is not inspect.Parameter.empty}


def check_types():
  """ConfigError for the first bound value of a known configurable whose
  type does not fit its parameter's default (`config_check.py`)."""
  for name, obj in CONFIGURABLES.items():
    for param, default in defaults(obj).items():
      binding = f'{name}.{param}'
      if not is_bound(binding):
        continue
      value = gin.query_parameter(binding)
      if not isinstance(value, gin.config.ConfigurableReference):
        config_check.check_value(binding, value, default)


def valid_bindings():
  return sorted(f'{name}.{param}' for name, obj in CONFIGURABLES.items()
                for param in parameters(obj))


def parse(files=(), bindings=()):
  """Parses gin files then bindings; raises ConfigError (a ValueError) with
  suggestions, FileNotFoundError for a missing file."""
  for path in files:
    if not os.path.exists(path):
      raise FileNotFoundError(f'Gin file {path!r} does not exist.')
  try:
    gin.parse_config_files_and_bindings(
        list(files), list(bindings), finalize_config=False)
  except (ValueError, KeyError) as e:
    raise ConfigError(f'Bad gin configuration: {e}{suggest(str(e))}') from e
  except SyntaxError as e:  # Gin's parser: a malformed binding or value.
    raise ConfigError(
        f'Bad gin syntax: {e}. Values are Python literals: quote strings, '
        "e.g. train.env = 'dmc:walker_walk'.") from e
  for name, fix in SET_BY_TRAIN.items():
    if is_bound(name):
      raise ConfigError(f'{name} is set by the training loop, so the binding '
                        f'would be ignored: drop it ({fix}).')
  check_types()


def resolve_seed(flag_seed, flag_given):
  """A run's seed: `flag_seed` (--seed) if given, else a `train.seed`
  binding, else `flag_seed` (its default); also bound to `train.seed` so
  that the written config.gin names it.

  The seed also seeds the agent and the replay (`train` passes it on), so
  `Agent.seed` / `Replay.seed` bindings would be ignored and are refused,
  as is a `train.seed` binding that contradicts a given --seed, and a seed
  outside [0, MAX_SEED] (`dreamer_tf/run/__init__.py`). Raises ConfigError.
  """
  for name in ('Agent.seed', 'Replay.seed'):
    if is_bound(name):
      raise ConfigError(f'{name} is set from the run seed; drop the binding '
                        'and pass --seed=N (or bind train.seed).')
  seed, source = flag_seed, f'--seed={flag_seed}'
  if is_bound('train.seed'):
    bound = gin.query_parameter('train.seed')
    if isinstance(bound, bool) or not isinstance(bound, int):
      raise ConfigError(f'train.seed = {bound!r}: the seed must be an integer '
                        'literal.')
    if flag_given and bound != flag_seed:
      raise ConfigError(f'--seed={flag_seed} contradicts the binding '
                        f'train.seed = {bound}; pass one of them.')
    seed, source = bound, f'train.seed = {bound}'
  if not 0 <= seed <= MAX_SEED:
    raise ConfigError(f'{source} is out of range: a seed is an integer in '
                      f'[0, {MAX_SEED}] (the seeds of the envs are derived '
                      'from it). Pass e.g. --seed=1.')
  with gin.unlock_config():
    gin.bind_parameter('train.seed', seed)
  return seed


def is_bound(name):
  """Whether the gin config binds `name` ('configurable.parameter')."""
  try:
    gin.query_parameter(name)
    return True
  except ValueError:
    return False


def suggest(message):
  """' (did you mean: ...)' for names in `message` close to valid ones."""
  valid = valid_bindings()
  names = {n.split('.')[0] for n in valid}
  hints = set()
  for word in message.replace("'", ' ').replace('"', ' ').split():
    word = word.strip('.,:;()')
    if '.' in word:
      hints.update(difflib.get_close_matches(word, valid, n=3, cutoff=0.6))
    elif word and word[0].isalpha():
      for name in difflib.get_close_matches(word, names, n=2, cutoff=0.75):
        if name != word:
          hints.add(name)
  return f' (did you mean: {", ".join(sorted(hints))}?)' if hints else ''
