"""Crafter (spec §5.3): 64x64 RGB, 17 actions, no action repeat.

`crafter.Env(size, reward=True)` with the env's own episode limit (10,000
steps in crafter 1.8); `is_terminal` when the player dies (the env reports
discount 0), a time-limit end is `is_last` only. Task 'reward' uses the
achievement rewards (the paper's setting), 'noreward' gives reward 0.

Achievements: `log/achievement_<name>` observations count how often each of
the 22 achievements was unlocked in the episode so far (int32, 0 at reset);
they are not model inputs and not stored in replay. The training loop
writes their final values into each episode's record in scores.jsonl;
`dreamer_tf.analysis.achievements` turns episode records into success rates and the
Crafter score (`launch.evaluate` reports both in its summary.json).

Exact resume: Crafter's world iterates over objects in an order that a
pickled copy does not reproduce (a restored copy diverges after ~100 steps),
so `get_state` returns None and a resumed run starts new episodes.
"""
import numpy as np

from dreamer_tf.analysis import achievements
from dreamer_tf import spaces
from dreamer_tf.envs import base

TASKS = ('reward', 'noreward')
ACHIEVEMENT_PREFIX = achievements.PREFIX


def import_crafter():
  """The crafter package, or an ImportError naming the fix."""
  try:
    import crafter  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(
        "crafter is not installed: pip install -e '.[crafter]'") from e
  return crafter


class Crafter(base.Env):
  """One Crafter world; `seed` fixes its worlds (None: random)."""

  def __init__(self, task='reward', size=(64, 64), length=None, seed=None):
    if task not in TASKS:
      raise ValueError(f'Unknown Crafter task {task!r}'
                       f'{base.suggest(task, TASKS)}; use one of {TASKS}.')
    crafter = import_crafter()
    kwargs = {} if length is None else {'length': length}
    self._env = crafter.Env(size=tuple(size), reward=task == 'reward',
                            seed=seed, **kwargs)
    self._size = tuple(size)
    self._classes = self._env.action_space.n
    self._achievements = sorted(crafter.constants.achievements)

  @property
  def obs_space(self):
    counts = {ACHIEVEMENT_PREFIX + name: spaces.Space((), 'int32')
              for name in self._achievements}
    return base.with_flags({'image': spaces.Space(
        (*self._size, 3), 'uint8', low=0, high=255), **counts})

  def _counts(self, achievements=None):
    achievements = achievements or {}
    return {ACHIEVEMENT_PREFIX + name: np.int32(achievements.get(name, 0))
            for name in self._achievements}

  @property
  def act_space(self):
    return {'action': spaces.Space((), 'int32', classes=self._classes)}

  def _reset(self):
    return base.observation(
        {'image': self._env.reset(), **self._counts()}, is_first=True)

  def _step(self, action):
    image, reward, done, info = self._env.step(int(action['action']))
    return base.observation(
        {'image': np.asarray(image, np.uint8),
         **self._counts(info['achievements'])}, reward=float(reward),
        is_last=bool(done), is_terminal=bool(info['discount'] == 0))

  def get_state(self):
    return None
