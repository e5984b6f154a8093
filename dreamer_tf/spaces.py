"""Observation and action space descriptions shared by agent, envs and tools.

A `Space` is a plain description (shape, dtype, bounds or class count); it
carries no environment state. Observation spaces and action spaces are dicts
of `Space`s. Reserved observation keys (`reward`, `is_first`, `is_last`,
`is_terminal`) and keys starting with `log/` are never model inputs.
"""
import dataclasses
import re

import numpy as np

RESERVED_KEYS = ('reward', 'is_first', 'is_last', 'is_terminal')


@dataclasses.dataclass(frozen=True)
class Space:
  """One array-valued entry of an observation or action dict.

  shape: the per-step shape (without batch/time dimensions).
  dtype: numpy dtype name.
  classes: number of categories for a discrete space (shape is then `()` for
    a single index, or `(n,)` for n independent indices); None if continuous.
  low, high: bounds of a continuous space (scalars).
  """
  shape: tuple
  dtype: str = 'float32'
  classes: int | None = None
  low: float = -np.inf
  high: float = np.inf

  def __post_init__(self):
    object.__setattr__(self, 'shape', tuple(int(d) for d in self.shape))
    object.__setattr__(self, 'dtype', np.dtype(self.dtype).name)
    if self.classes is not None and self.classes < 2:
      raise ValueError(f'A discrete space needs >= 2 classes, got {self}.')

  @property
  def discrete(self):
    return self.classes is not None

  @property
  def is_image(self):
    return self.dtype == 'uint8' and len(self.shape) == 3

  @property
  def size(self):
    """Width of the flat model representation (one-hot for discrete)."""
    n = int(np.prod(self.shape)) if self.shape else 1
    return n * self.classes if self.discrete else n


def model_keys(obs_space):
  """Observation keys the encoder and decoder see, sorted."""
  return sorted(
      k for k in obs_space
      if k not in RESERVED_KEYS and not k.startswith('log/'))


def check_obs_space(obs_space):
  """Raises a clear error for observations the agent cannot model."""
  keys = model_keys(obs_space)
  if not keys:
    raise ValueError(
        f'The observation space {sorted(obs_space)} has no model input: '
        'provide at least one image (uint8 HxWxC) or vector key.')
  for key in keys:
    space = obs_space[key]
    if space.is_image:
      h, w, _ = space.shape
      if h % 16 or w % 16 or not 48 <= h <= 256 or not 48 <= w <= 256:
        raise ValueError(
            f'Image observation {key!r} has shape {space.shape}; the conv '
            'encoder needs height and width divisible by 16 and in '
            '[48, 256] (resize it, e.g. to 64x64).')
    elif len(space.shape) > 1 and not space.discrete:
      raise ValueError(
          f'Observation {key!r} has shape {space.shape} and dtype '
          f'{space.dtype}: only uint8 HxWxC images and flat vectors are '
          'supported. Flatten it or convert it to a uint8 image.')


def check_act_space(act_space):
  if not act_space:
    raise ValueError('The action space is empty.')
  for key, space in act_space.items():
    if not space.discrete and len(space.shape) != 1:
      raise ValueError(
          f'Continuous action {key!r} must be a flat vector, got shape '
          f'{space.shape}.')
    if space.discrete and space.shape not in ((),):
      raise ValueError(
          f'Discrete action {key!r} must be a single index (shape ()); got '
          f'shape {space.shape}. Split MultiDiscrete actions into keys.')


def parse_obs_space(text):
  """Parses '64x64x3' (uint8 image) or '24' (float vector) into a dict.

  Several keys are separated by commas: 'image:64x64x3,state:5'.
  """
  spaces = {}
  for i, part in enumerate(text.split(',')):
    key, _, dims = part.rpartition(':')
    key = key or ('image' if 'x' in dims else 'vector') + (f'{i}' if i else '')
    if not re.fullmatch(r'\d+(x\d+)*', dims):
      raise ValueError(
          f'Cannot parse observation space {part!r}: use HxWxC for an image '
          '(e.g. 64x64x3) or N for a vector (e.g. 24).')
    shape = tuple(int(d) for d in dims.split('x'))
    if len(shape) == 3:
      spaces[key] = Space(shape, 'uint8', low=0, high=255)
    elif len(shape) == 1:
      spaces[key] = Space(shape, 'float32')
    else:
      raise ValueError(f'Observation {part!r} must be HxWxC or N.')
  spaces.update(
      reward=Space((), 'float32'), is_first=Space((), 'bool'),
      is_last=Space((), 'bool'), is_terminal=Space((), 'bool'))
  return spaces


def parse_act_space(text):
  """Parses 'discrete:18' or 'continuous:6' into {'action': Space}."""
  match = re.fullmatch(r'(discrete|continuous):(\d+)', text.strip())
  if not match:
    raise ValueError(
        f'Cannot parse action space {text!r}: use discrete:N or '
        'continuous:N.')
  kind, n = match.group(1), int(match.group(2))
  if kind == 'discrete':
    return {'action': Space((), 'int32', classes=n)}
  return {'action': Space((n,), 'float32', low=-1.0, high=1.0)}
