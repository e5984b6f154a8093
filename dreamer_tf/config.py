"""Gin parsing with loud, helpful failures on unknown bindings.

Every hyperparameter is a gin parameter of the constructor (or config
dataclass) that uses it. `parse` fails with a `ValueError` naming the bad
binding and the closest valid names, e.g. `RSSM.detr` -> `RSSM.deter`.
"""
import dataclasses
import difflib
import inspect
import os

import gin

from dreamer_tf.model import agent
from dreamer_tf.model import behavior
from dreamer_tf.model import explore
from dreamer_tf.model import optim
from dreamer_tf.model import priority
from dreamer_tf import replay
from dreamer_tf.model import rssm
from dreamer_tf.model import world_model
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
}


# Parameters `train` always passes itself: a binding would be ignored.
SET_BY_TRAIN = {
    'Replay.capacity': 'bind train.replay_capacity instead',
    'Replay.length': 'it is Agent.batch_length + Agent.replay_context',
    'Replay.directory': 'it is <logdir>/replay',
}


def parameters(obj):
  """Names a configurable accepts."""
  obj = inspect.unwrap(obj)
  if dataclasses.is_dataclass(obj):
    return [f.name for f in dataclasses.fields(obj)]
  target = obj.__init__ if inspect.isclass(obj) else obj
  return [p for p in inspect.signature(inspect.unwrap(target)).parameters
          if p not in ('self', 'args', 'kw', 'kwargs')]


def valid_bindings():
  return sorted(f'{name}.{param}' for name, obj in CONFIGURABLES.items()
                for param in parameters(obj))


def parse(files=(), bindings=()):
  """Parses gin files then bindings; raises ValueError with suggestions."""
  for path in files:
    if not os.path.exists(path):
      raise FileNotFoundError(f'Gin file {path!r} does not exist.')
  try:
    gin.parse_config_files_and_bindings(
        list(files), list(bindings), finalize_config=False)
  except (ValueError, KeyError) as e:
    raise ValueError(f'Bad gin configuration: {e}{suggest(str(e))}') from e
  except SyntaxError as e:  # Gin's parser: a malformed binding or value.
    raise ValueError(
        f'Bad gin syntax: {e}. Values are Python literals: quote strings, '
        "e.g. train.env = 'dmc:walker_walk'.") from e
  for name, fix in SET_BY_TRAIN.items():
    if is_bound(name):
      raise ValueError(f'{name} is set by the training loop, so the binding '
                       f'would be ignored: drop it ({fix}).')


def resolve_seed(flag_seed, flag_given):
  """A run's seed: `flag_seed` (--seed) if given, else a `train.seed`
  binding, else `flag_seed` (its default); also bound to `train.seed` so
  that the written config.gin names it.

  The seed also seeds the agent and the replay (`train` passes it on), so
  `Agent.seed` / `Replay.seed` bindings would be ignored and are refused,
  as is a `train.seed` binding that contradicts a given --seed.
  """
  for name in ('Agent.seed', 'Replay.seed'):
    if is_bound(name):
      raise ValueError(f'{name} is set from the run seed; drop the binding '
                       'and pass --seed=N (or bind train.seed).')
  seed = flag_seed
  if is_bound('train.seed'):
    bound = gin.query_parameter('train.seed')
    if isinstance(bound, bool) or not isinstance(bound, int):
      raise ValueError(f'train.seed = {bound!r}: the seed must be an integer '
                       'literal.')
    if flag_given and bound != flag_seed:
      raise ValueError(f'--seed={flag_seed} contradicts the binding '
                       f'train.seed = {bound}; pass one of them.')
    seed = bound
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
