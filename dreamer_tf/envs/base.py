"""The environment protocol every suite adapter follows (spec §4.1).

An `Env` exposes `obs_space` and `act_space` (dicts of `spaces.Space`) and a
single `step(action) -> obs` with auto-reset semantics, as the DreamerV3
driver expects (spec §4.1):

* The first call, and any call after an observation with `is_last=True`,
  ignores the action, resets the env and returns the first observation of a
  new episode: `is_first=True, reward=0, is_last=False, is_terminal=False`.
* Otherwise the action is applied. A time-limit cut gives `is_last=True,
  is_terminal=False`; a true termination gives `is_last=is_terminal=True`.

Observation values are numpy arrays / scalars with exactly the dtypes and
shapes of `obs_space`, and float values (the reward included) are finite:
`check_obs` says which value breaks this. The env workers check every
observation at the process boundary (`parallel.ParallelEnvs.step`), where a
bad one stops the run: NaN or inf would poison replay and every update.
Subclasses implement `_reset()` and `_step(action)` and build their
observations with `observation(...)`; the auto-reset logic and action
checks live here once.
"""
import abc
import difflib
import pickle
import zlib

import numpy as np

from dreamer_tf import spaces

FLAG_SPACES = {
    'reward': spaces.Space((), 'float32'),
    'is_first': spaces.Space((), 'bool'),
    'is_last': spaces.Space((), 'bool'),
    'is_terminal': spaces.Space((), 'bool'),
}


def suggest(name, options):
  """' (did you mean X?)' naming the closest options, or '' (for errors)."""
  close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
  if not close:
    return ''
  return f" (did you mean {' or '.join(repr(c) for c in close)}?)"


def with_flags(obs_space):
  """Adds the reserved reward/is_first/is_last/is_terminal spaces."""
  clash = sorted(set(obs_space) & set(FLAG_SPACES))
  if clash:
    raise ValueError(
        f'Observation keys {clash} clash with the reserved keys '
        f'{spaces.RESERVED_KEYS}: rename them in the adapter.')
  return {**obs_space, **FLAG_SPACES}


def observation(values, reward=0.0, is_first=False, is_last=False,
                is_terminal=False):
  """An obs dict: `values` ({key: array}) plus the typed reserved entries."""
  return {
      **values,
      'reward': np.float32(reward),
      'is_first': np.bool_(is_first),
      'is_last': np.bool_(is_last),
      'is_terminal': np.bool_(is_terminal),
  }


def check_obs(obs, obs_space):
  """Raises ValueError if `obs` does not match `obs_space` exactly (keys,
  dtypes, shapes) or holds a non-finite float (NaN, inf), naming the key
  and the bad value."""
  if set(obs) != set(obs_space):
    raise ValueError(
        f'Observation keys {sorted(obs)} differ from the obs_space keys '
        f'{sorted(obs_space)}.')
  for key, space in obs_space.items():
    value = obs[key]
    dtype = getattr(value, 'dtype', None)
    if dtype != np.dtype(space.dtype) or np.shape(value) != space.shape:
      raise ValueError(
          f'Observation {key!r} has dtype {dtype} and shape '
          f'{np.shape(value)}; obs_space wants {space.dtype} {space.shape}.')
    if dtype.kind == 'f' and not np.isfinite(value).all():
      raise ValueError(f'Observation {key!r} {_non_finite(value)}.')


def _non_finite(value):
  """'= nan is not finite', or for arrays how many values are not and the
  first of them, e.g. 'has 2 non-finite values of 4, first inf at (1,)'."""
  if np.ndim(value) == 0:
    return f'= {value} is not finite'
  bad = np.argwhere(~np.isfinite(value))
  first = tuple(int(i) for i in bad[0])
  return (f'has {len(bad)} non-finite values of {np.size(value)}, first '
          f'{value[first]} at {first}')


def check_action(action, act_space):
  """Raises ValueError for missing keys, bad shapes or out-of-range indices."""
  missing = sorted(set(act_space) - set(action))
  if missing:
    raise ValueError(
        f'The action lacks keys {missing}; act_space has keys '
        f'{sorted(act_space)}.')
  for key, space in act_space.items():
    value = np.asarray(action[key])
    if value.shape != space.shape:
      raise ValueError(
          f'Action {key!r} has shape {value.shape}, act_space wants '
          f'{space.shape}.')
    if space.discrete and not (value == value.astype(np.int64)).all():
      raise ValueError(f'Discrete action {key!r} = {value} is not integral.')
    if space.discrete and not ((0 <= value) & (value < space.classes)).all():
      raise ValueError(
          f'Discrete action {key!r} = {value} is outside [0, '
          f'{space.classes}).')


def pack_state(kind, settings, payload):
  """An env state blob: zlib-compressed pickle of the payload, tagged with
  the adapter `kind` and its `settings` for `unpack_state` to check."""
  blob = {'kind': kind, 'settings': settings, 'payload': payload}
  return zlib.compress(pickle.dumps(blob, protocol=pickle.HIGHEST_PROTOCOL), 1)


def unpack_state(state, kind, settings):
  """The payload of `pack_state(kind, settings, payload)`; ValueError naming
  the mismatch if `state` comes from another adapter or other settings."""
  try:
    blob = pickle.loads(zlib.decompress(bytes(state)))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
        f'Not an env state of the {kind} adapter (it does not unpack: '
        f'{type(e).__name__}: {e}); restore states only into the adapter '
        'that saved them.') from e
  if not isinstance(blob, dict) or blob.get('kind') != kind:
    found = blob.get('kind') if isinstance(blob, dict) else type(blob).__name__
    raise ValueError(
        f'Not an env state of the {kind} adapter (saved by {found!r}); '
        'restore states only into the adapter that saved them.')
  if blob['settings'] != settings:
    saved = blob['settings']
    diff = '; '.join(
        f'{k}={saved.get(k)!r} in the state, {settings.get(k)!r} here'
        for k in sorted(set(saved) | set(settings))
        if saved.get(k) != settings.get(k))
    raise ValueError(
        f'The {kind} env state was saved by an env with other settings '
        f'({diff}): build the env with the same id and settings to restore '
        'it.')
  return blob['payload']


class Env(abc.ABC):
  """Auto-resetting environment (spec §4.1); see the module docstring."""

  _needs_reset = True  # Per instance after the first step.

  @property
  @abc.abstractmethod
  def obs_space(self):
    """{key: Space}, including reward/is_first/is_last/is_terminal."""

  @property
  @abc.abstractmethod
  def act_space(self):
    """{key: Space}: discrete Space((), 'int32', classes=n) or continuous
    Space((n,), 'float32', low=-1, high=1)."""

  @abc.abstractmethod
  def _reset(self):
    """Starts a new episode; returns its first obs (`is_first=True`)."""

  @abc.abstractmethod
  def _step(self, action):
    """Applies a checked action; returns the next obs."""

  def step(self, action):
    """One step with auto-reset: the action is ignored when resetting."""
    if self._needs_reset:
      obs = self._reset()
      if not obs['is_first'] or obs['is_last'] or obs['reward'] != 0:
        raise AssertionError(
            f'{type(self).__name__}._reset must return is_first=True, '
            'is_last=False, reward=0.')
    else:
      check_action(action, self.act_space)
      obs = self._step(action)
    self._needs_reset = bool(obs['is_last'])
    return obs

  def get_state(self):
    """Bytes that `set_state` turns back into this exact env, mid-episode
    and with its random state, or None when the simulator cannot be
    serialised (a resumed run then starts new episodes). The default
    pickles the instance; adapters with native state APIs may override."""
    try:
      return pickle.dumps(self.__dict__)
    except Exception:  # pylint: disable=broad-except
      return None

  def set_state(self, state):
    """Restores the output of `get_state` (same env id and settings)."""
    self.__dict__.update(pickle.loads(state))

  def close(self):
    """Releases the simulator; the default has nothing to release."""

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
