"""Gymnasium adapter for any registered id (spec §4.1).

Observations (nested `Dict`/`Tuple` keys are joined with '/'; a top-level
leaf is named 'image' if it is an image, else 'vector'; a key that clashes
with a reserved key gets the prefix 'obs/'):
  Box uint8 HxWxC or HxW -> uint8 image HxWxC (HxW gets C=1), optionally
                            resized with Pillow bilinear to `size`
  other Box, MultiBinary -> float32 vector (flattened)
  Discrete(n)            -> int32 () with n classes (index minus `start`)
  MultiDiscrete(nvec)    -> int32 (k,) with max(nvec) classes (flattened)

Actions (nested `Dict` keys are joined with '/'; a top-level leaf is named
'action'):
  Discrete(n)                 -> 'action': int32 () with n classes
  MultiDiscrete(nvec)         -> one discrete key per entry: 'action_0',
                                 'action_1', ... ('<key>_0', ... inside a
                                 Dict); the agent's actor models each key
                                 as its own categorical
  MultiBinary(n)              -> like MultiDiscrete([2] * n)
  Box                         -> 'action': float32 (n,) in [-1, 1], clipped
                                 and rescaled to the Box bounds (spec §4.1,
                                 NormalizeAction + ClipAction); unbounded
                                 dimensions pass through unchanged

`terminated` maps to `is_terminal` (and `is_last`), `truncated` to `is_last`
only. `seed` seeds the first reset; later resets continue that RNG stream.
"""
import importlib

import pickle

import numpy as np

from dreamer_tf import spaces
from dreamer_tf.envs import base
from dreamer_tf.envs import images

SUPPORTED = (
    'observations: Box, Discrete, MultiDiscrete, MultiBinary, Dict and Tuple '
    'of these; actions: Discrete, MultiDiscrete, MultiBinary, Box and Dict '
    'of these')


def _gym():
  try:
    return importlib.import_module('gymnasium')
  except ImportError as e:
    raise ImportError(
        "gymnasium is not installed: pip install -e '.' (it is a core "
        'dependency of dreamer_tf).') from e


def make_gym(env_id, **kwargs):
  """`gymnasium.make` with a helpful error for unknown ids.

  'module:Id-v0' imports `module` first (it should register the id), as
  `gymnasium.make` does; 'ALE/...' ids import ale_py.
  """
  gym = _gym()
  module, sep, name = env_id.rpartition(':')
  if sep:
    importlib.import_module(module)
  if name.startswith('ALE/'):
    ale = importlib.import_module('dreamer_tf.envs.atari').import_ale()
    gym.register_envs(ale)
  if name not in gym.registry:
    raise ValueError(
        f'Unknown gymnasium id {name!r}{base.suggest(name, gym.registry)}. '
        'Use a registered id (gymnasium.pprint_registry() lists them) or '
        "'module:Id-v0' to import the module that registers it.")
  return gym.make(env_id, **kwargs)


def _unsupported(space, where):
  return ValueError(
      f'Unsupported gymnasium {where} space {space}. Supported {SUPPORTED}. '
      'Wrap the env (e.g. gymnasium.wrappers.FlattenObservation) to convert '
      'it.')


def _join(prefix, key):
  return str(key) if prefix is None else f'{prefix}/{key}'


def obs_adapter(space, prefix=None, size=None):
  """gym obs space -> ({key: Space}, fn(gym obs) -> {key: array})."""
  gym = _gym()
  s = gym.spaces
  if isinstance(space, s.Dict):
    parts = [(k, obs_adapter(v, _join(prefix, k), size))
             for k, v in space.spaces.items()]
    return _combine(parts)
  if isinstance(space, s.Tuple):
    parts = [(i, obs_adapter(v, _join(prefix or 'obs', i), size))
             for i, v in enumerate(space.spaces)]
    return _combine(parts)
  if isinstance(space, s.Box) and space.dtype == np.uint8 and \
      len(space.shape) in (2, 3):
    key = prefix or 'image'
    hw = tuple(size) if size else space.shape[:2]
    channels = space.shape[2] if len(space.shape) == 3 else 1

    def image(x):
      x = np.asarray(x, np.uint8).reshape(*space.shape[:2], channels)
      return {key: images.resize(x, hw) if size else x}
    return {key: spaces.Space((*hw, channels), 'uint8', low=0, high=255)}, \
        image
  if isinstance(space, (s.Box, s.MultiBinary)):
    key, n = prefix or 'vector', int(np.prod(space.shape))
    return {key: spaces.Space((n,), 'float32')}, \
        lambda x: {key: np.asarray(x, np.float32).reshape(n)}
  if isinstance(space, s.Discrete):
    key, start = prefix or 'vector', int(space.start)
    return {key: spaces.Space((), 'int32', classes=int(space.n))}, \
        lambda x: {key: np.int32(int(x) - start)}
  if isinstance(space, s.MultiDiscrete):
    key, n = prefix or 'vector', int(np.prod(space.shape))
    start = np.asarray(space.start).reshape(n)
    classes = int(np.max(space.nvec))
    return {key: spaces.Space((n,), 'int32', classes=classes)}, \
        lambda x: {key: (np.asarray(x).reshape(n) - start).astype(np.int32)}
  raise _unsupported(space, 'observation')


def _combine(parts):
  """Merges child adapters of a Dict/Tuple space."""
  obs_space = {}
  for _, (sub, _) in parts:
    obs_space.update(sub)
  def convert(x):
    out = {}
    for k, (_, fn) in parts:
      out.update(fn(x[k]))
    return out
  return obs_space, convert


def _rescale(space):
  """[-1, 1] action (n,) -> Box value: clip, then map finite dims to bounds."""
  low = np.asarray(space.low, np.float64).reshape(-1)
  high = np.asarray(space.high, np.float64).reshape(-1)
  finite = np.isfinite(low) & np.isfinite(high)
  low, high = np.where(finite, low, -1.0), np.where(finite, high, 1.0)
  def fn(a):
    a = np.asarray(a, np.float64)
    scaled = low + (np.clip(a, -1, 1) + 1) / 2 * (high - low)
    value = np.where(finite, np.clip(scaled, low, high), a)
    return value.reshape(space.shape).astype(space.dtype)
  return fn


def act_adapter(space, prefix=None):
  """gym action space -> ({key: Space}, fn({key: value}) -> gym action)."""
  gym = _gym()
  s = gym.spaces
  if isinstance(space, s.Dict):
    parts = {k: act_adapter(v, _join(prefix, k))
             for k, v in space.spaces.items()}
    act_space = {k: v for sub, _ in parts.values() for k, v in sub.items()}
    return act_space, lambda a: {k: fn(a) for k, (_, fn) in parts.items()}
  if isinstance(space, s.Discrete):
    key, start = prefix or 'action', int(space.start)
    return {key: spaces.Space((), 'int32', classes=int(space.n))}, \
        lambda a: np.int64(int(a[key]) + start)
  if isinstance(space, (s.MultiDiscrete, s.MultiBinary)):
    shape = tuple(space.shape)
    if isinstance(space, s.MultiBinary):
      nvec, start = np.full(shape, 2), np.zeros(shape, np.int64)
    else:
      nvec, start = space.nvec, np.asarray(space.start)
    keys = [f"{prefix or 'action'}_{i}" for i in range(int(np.prod(shape)))]
    act_space = {k: spaces.Space((), 'int32', classes=int(n))
                 for k, n in zip(keys, np.reshape(nvec, -1))}
    def multi(a):
      index = np.array([int(a[k]) for k in keys]).reshape(shape)
      return (index + start).astype(space.dtype)
    return act_space, multi
  if isinstance(space, s.Box):
    key, n = prefix or 'action', int(np.prod(space.shape))
    rescale = _rescale(space)
    return {key: spaces.Space((n,), 'float32', low=-1.0, high=1.0)}, \
        lambda a: rescale(a[key])
  raise _unsupported(space, 'action')


def _unreserve(values):
  """Prefixes keys that clash with reserved keys with 'obs/'."""
  return {('obs/' + k if k in spaces.RESERVED_KEYS else k): v
          for k, v in values.items()}


class GymEnv(base.Env):
  """A gymnasium env behind the `base.Env` protocol (module docstring).

  env: a registered id (see `make_gym`) or a `gymnasium.Env` instance.
  seed: seeds the first reset (None: nondeterministic).
  size: (height, width) to resize image observations to, or None.
  **kwargs: passed to `gymnasium.make` (e.g. max_episode_steps=100).
  """

  def __init__(self, env, seed=None, size=None, **kwargs):
    if size:
      images.pillow()  # Fail early if Pillow is missing.
    if not isinstance(env, str) and kwargs:
      raise ValueError(
          f'gymnasium.make arguments {sorted(kwargs)} need an env id, not an '
          'env instance: pass the id, or apply them when building the env.')
    self._env = make_gym(env, **kwargs) if isinstance(env, str) else env
    self._seed = seed
    obs_space, self._convert_obs = obs_adapter(
        self._env.observation_space, size=size)
    self._obs_space = base.with_flags(_unreserve(obs_space))
    self._act_space, self._convert_act = act_adapter(self._env.action_space)

  @property
  def obs_space(self):
    return self._obs_space

  @property
  def act_space(self):
    return self._act_space

  @property
  def env(self):
    """The wrapped gymnasium env (for rendering or inspection)."""
    return self._env

  def _obs(self, x, **flags):
    return base.observation(_unreserve(self._convert_obs(x)), **flags)

  def _reset(self):
    x, _ = self._env.reset(seed=self._seed)
    self._seed = None  # Later resets continue the seeded RNG stream.
    return self._obs(x, is_first=True)

  def _step(self, action):
    x, reward, terminated, truncated, _ = self._env.step(
        self._convert_act(action))
    return self._obs(
        x, reward=reward, is_last=terminated or truncated,
        is_terminal=terminated)

  def get_state(self):
    """The pickled gymnasium env (its RNG, wrappers and mid-episode state)
    and the reset bookkeeping; the space adapters are rebuilt, not saved.
    None if the gymnasium env cannot be pickled."""
    try:
      return pickle.dumps((self._env, self._seed, self._needs_reset))
    except Exception:  # pylint: disable=broad-except
      return None

  def set_state(self, state):
    self._env, self._seed, self._needs_reset = pickle.loads(state)

  def close(self):
    self._env.close()
