"""DeepSea, bsuite's deep-exploration chain, and the `deepsea:<N>` suite.

DeepSea is the `deep_sea` environment of bsuite (Osband et al. 2020,
"Behaviour Suite for Reinforcement Learning", ICLR; Osband et al. 2019,
"Deep Exploration via Randomized Value Functions", JMLR). `DeepSeaEnv`
reproduces bsuite 0.3.6's `bsuite/environments/deep_sea.py` step for step
(tests/envs/test_deepsea.py checks it against bsuite when installed):

* An N x N grid; the agent starts in the top-left cell (row 0, column 0).
  Every step moves it one row down and one column left or right, clipped
  at the grid's edges, so an episode lasts exactly N steps and ends by
  termination (`terminated=True`, never `truncated`).
* 2 actions. Which one means "right" is drawn per cell once, from
  `np.random.RandomState(mapping_seed).binomial(1, 0.5, [N, N])`: action
  `mapping[row, column]` moves right, the other left. With
  `randomize_actions=False` action 1 is right everywhere (bsuite's debug
  mode).
* Reward of one step, in this order: +1 if the agent is in the last column
  and moves right (possible only from the bottom-right cell, on the last
  step); in the stochastic variant N(0, 1) noise when in the last row in the
  first or last column; then -unscaled_move_cost / N for any right move.
  The optimal episode (right N times) returns 1 - unscaled_move_cost = 0.99
  for every N; any left move forfeits the +1, always-left returns 0.
* Observation: the one-hot position, bsuite's N x N float32 grid flattened
  to a vector of N * N (index row * N + column); after the last step the
  agent is below the grid and the observation is all zeros, as in bsuite.
* `deterministic=False` is bsuite's windy variant: a right move fails (the
  agent moves straight down) with probability 1/N. Its random numbers come
  from `np.random.RandomState(seed)` of `reset(seed=...)` in bsuite's order
  (bsuite's constructor argument `seed`); the deterministic variant uses no
  randomness. Later resets continue the stream.

`info` of every step: `row` and `column` after the move (row N at the end),
`treasure` (this step collected the +1) and `bad_episode` (bsuite's
regret indicator: the agent left the diagonal with a left move).

Gymnasium: importing this module registers `DeepSeaEnv` as
`dreamer_tf/DeepSea-v0` (`GYM_ID`), so `gymnasium.make(GYM_ID, size=14)`
builds it with any constructor argument, and the `gym` suite reaches it
as 'gym:dreamer_tf.envs.deepsea:dreamer_tf/DeepSea-v0' (size 10).

The suite: `envs.make('deepsea:10', seed=s)` wraps `DeepSeaEnv(size=10)` in
the gymnasium adapter (`gym.GymEnv`, observation key 'vector', action key
'action'); further keyword arguments go to `DeepSeaEnv`. The size is the
task (as bsuite names its settings `deep_sea/<k>`) rather than an
`env_kwargs` entry, because `GymEnv` takes `size` itself (image resizing).
"""
import math
import numbers
import operator
import re

import gymnasium
import numpy as np

from dreamer_tf.envs import gym as gym_env

# bsuite's sweep (bsuite/experiments/deep_sea/sweep.py) fixes mapping_seed=42
# for every size.
MAPPING_SEED = 42
GYM_ID = 'dreamer_tf/DeepSea-v0'


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_args(size, mapping_seed, randomize_actions, deterministic,
                unscaled_move_cost):
  """Raises ValueError naming the fix for a bad constructor argument."""
  if not _is_int(size) or size < 1:
    raise ValueError(
        f'DeepSea size must be an integer >= 1 (the grid is size x size), got '
        f'{size!r}; e.g. size=10.')
  if mapping_seed is not None and not (
      _is_int(mapping_seed) and 0 <= mapping_seed < 2**32):
    raise ValueError(
        f'DeepSea mapping_seed must be an integer in [0, 2**32) or None (a '
        f'random mapping), got {mapping_seed!r}; bsuite uses '
        f'{MAPPING_SEED}.')
  for name, value in (('randomize_actions', randomize_actions),
                      ('deterministic', deterministic)):
    if not isinstance(value, (bool, np.bool_)):
      raise ValueError(
          f'DeepSea {name} must be True or False, got {value!r}.')
  if not isinstance(unscaled_move_cost, numbers.Real) or isinstance(
      unscaled_move_cost, bool) or not math.isfinite(unscaled_move_cost) \
      or unscaled_move_cost < 0:
    raise ValueError(
        'DeepSea unscaled_move_cost must be a finite number >= 0 (the cost '
        'of a right move times the size), got '
        f'{unscaled_move_cost!r}; bsuite uses 0.01.')


class DeepSeaEnv(gymnasium.Env):
  """bsuite's DeepSea as a gymnasium env (see the module docstring).

  size: N, the grid is N x N and an episode N steps.
  mapping_seed: seeds the per-cell action mapping (None: a fresh random
    mapping per instance, bsuite's default; 42 is bsuite's sweep).
  randomize_actions: False makes action 1 "right" in every cell.
  deterministic: False is the windy variant (right fails w.p. 1/N, noisy
    rewards at the chain's ends).
  unscaled_move_cost: the cost of a right move times N.
  """

  metadata = {'render_modes': []}

  def __init__(self, size=10, mapping_seed=MAPPING_SEED,
               randomize_actions=True, deterministic=True,
               unscaled_move_cost=0.01):
    _check_args(size, mapping_seed, randomize_actions, deterministic,
                unscaled_move_cost)
    self.size = int(size)
    self.deterministic = bool(deterministic)
    self.unscaled_move_cost = float(unscaled_move_cost)
    if randomize_actions:
      mapping = np.random.RandomState(mapping_seed).binomial(
          1, 0.5, [self.size, self.size])
    else:
      mapping = np.ones([self.size, self.size], np.int64)
    self._mapping = mapping.astype(np.int64)
    self._mapping.flags.writeable = False
    self.observation_space = gymnasium.spaces.Box(
        0.0, 1.0, (self.size * self.size,), np.float32)
    self.action_space = gymnasium.spaces.Discrete(2)
    self._rng = None  # RandomState of the windy variant; set by reset.
    self._row = self._column = None  # None: reset not called yet.
    self._bad_episode = False

  @property
  def action_mapping(self):
    """[N, N] int array (read-only): the action that moves right per cell."""
    return self._mapping

  @property
  def optimal_return(self):
    """Expected return of the optimal policy (bsuite's `_optimal_return`)."""
    reach = 1.0 if self.deterministic else (1 - 1 / self.size) ** (
        self.size - 1)
    return reach - self.unscaled_move_cost

  def _observation(self):
    obs = np.zeros(self.size * self.size, np.float32)
    if self._row < self.size:  # Below the grid after the last step: zeros.
      obs[self._row * self.size + self._column] = 1.0
    return obs

  def _info(self, treasure=False):
    return {'row': self._row, 'column': self._column, 'treasure': treasure,
            'bad_episode': self._bad_episode}

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    if seed is not None or self._rng is None:
      self._rng = np.random.RandomState(seed)
    self._row, self._column, self._bad_episode = 0, 0, False
    return self._observation(), self._info()

  def step(self, action):
    if self._row is None or self._row >= self.size:
      raise RuntimeError(
          'DeepSeaEnv.step called before reset() or after the episode '
          'terminated: call reset() first.')
    try:
      index = operator.index(action)
    except TypeError:
      index = None
    if index not in (0, 1):
      raise ValueError(f'DeepSea actions are 0 or 1, got {action!r}.')
    right = index == self._mapping[self._row, self._column]
    last = self.size - 1
    reward = 0.0
    treasure = bool(right and self._column == last)
    if treasure:
      reward += 1.0
    if not self.deterministic and self._row == last and \
        self._column in (0, last):
      reward += self._rng.randn()
    if right:
      if self.deterministic or self._rng.rand() > 1 / self.size:
        self._column = min(self._column + 1, last)
      reward -= self.unscaled_move_cost / self.size
    else:
      if self._row == self._column:  # Left the only path to the treasure.
        self._bad_episode = True
      self._column = max(self._column - 1, 0)
    self._row += 1
    terminated = self._row == self.size
    return self._observation(), reward, terminated, False, \
        self._info(treasure)


def register():
  """Registers `DeepSeaEnv` with gymnasium as `GYM_ID` (once; importing
  this module calls it). Keyword arguments of `gymnasium.make` go to the
  constructor."""
  if GYM_ID not in gymnasium.registry:
    gymnasium.register(GYM_ID, entry_point=DeepSeaEnv)


register()


def make_env(task, seed=None, **kwargs):
  """The `deepsea:<N>` suite: `DeepSeaEnv(size=N, **kwargs)` behind the
  gymnasium adapter; `seed` seeds its first reset (the windy variant's
  randomness). The action mapping must be the same in every env of a run,
  so mapping_seed=None (a random mapping per env) is refused."""
  if not re.fullmatch('[0-9]+', task) or int(task) < 1:
    raise ValueError(
        f"DeepSea task {task!r} is not a grid size: use 'deepsea:<N>' with "
        "an integer N >= 1, e.g. 'deepsea:10'.")
  if 'size' in kwargs:
    raise ValueError(
        f"The DeepSea size is the task ('deepsea:{task}'); drop size="
        f"{kwargs['size']!r} from the env kwargs.")
  if 'mapping_seed' in kwargs and kwargs['mapping_seed'] is None:
    raise ValueError(
        'mapping_seed=None would give every env of the run (workers and '
        'evaluation) its own random action mapping, i.e. a different task: '
        f'pass an integer (bsuite uses {MAPPING_SEED}).')
  return gym_env.GymEnv(DeepSeaEnv(size=int(task), **kwargs), seed=seed)
