"""dm_control suite tasks (spec §5.2, Decisions table).

* `suite.load(domain, task)`; 'cup' means 'ball_in_cup' (e.g. 'cup_catch').
* Proprio: every observation key stays its own float32 vector key
  (flattened; scalars become shape (1,)).
* Vision: a 64x64 RGB 'image' rendered with camera 0 (quadruped: 2).
* Action repeat `repeat` (default 2, Decisions table), rewards summed.
* Actions in [-1, 1], clipped and rescaled to the action spec's bounds.
* The 1000-step time limit is `is_last` only; `is_terminal` only when the
  discount is 0.
MuJoCo renders headless with `MUJOCO_GL=egl` unless the variable is set
already (e.g. `MUJOCO_GL=osmesa`), with the cheaper shadow settings of
stack.md (shadowsize 512, no offscreen multisampling: same image, ~4x
faster).
"""
import importlib.util
import os

import numpy as np

from dreamer_tf import spaces
from dreamer_tf.envs import base

CAMERAS = {'quadruped': 2, 'rodent': 4}  # Others use camera 0 (spec §5.2).
ALIASES = {'cup': 'ball_in_cup'}


def import_suite(render=True):
  """dm_control.suite after choosing the GL backend; errors name the fix.

  With `render`, MUJOCO_GL defaults to 'egl'. A process that has loaded
  TensorFlow must not import dm_control with MUJOCO_GL=egl (it aborts at
  import or exit), which is why training builds envs in spawned workers and
  proprio-only envs leave the backend unset.
  """
  if render:
    os.environ.setdefault('MUJOCO_GL', 'egl')
  if importlib.util.find_spec('dm_control') is None:
    raise ImportError("dm_control is not installed: pip install -e '.[dmc]'")
  try:
    from dm_control import suite  # pylint: disable=import-outside-toplevel
  except Exception as e:  # pylint: disable=broad-except
    gl = os.environ.get('MUJOCO_GL')
    raise RuntimeError(
        f'dm_control failed to import with MUJOCO_GL={gl!r} '
        f'({type(e).__name__}: {e}). Install the headless GL libraries '
        '(EGL: libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 libopengl0; '
        'OSMesa: libosmesa6) or set MUJOCO_GL to a working backend.') from e
  return suite


def parse_task(name, all_tasks):
  """'walker_walk' -> ('walker', 'walk'); 'cup_catch' -> ('ball_in_cup',
  'catch')."""
  names = {f'{d}_{t}': (d, t) for d, t in all_tasks}
  names.update({f'{alias}_{t}': (d, t) for alias, d in ALIASES.items()
                for dd, t in all_tasks if dd == d})
  if name not in names:
    raise ValueError(
        f'Unknown dm_control task {name!r}{base.suggest(name, names)}. Use '
        "domain_task, e.g. 'walker_walk' or 'cup_catch' "
        '(dm_control.suite.ALL_TASKS lists them).')
  return names[name]


class DMC(base.Env):
  """One dm_control suite task; see the module docstring.

  task: 'domain_task', e.g. 'walker_walk', or a dm_env environment with a
    `physics` attribute (e.g. a custom dm_control task; camera then
    defaults to 0).
  repeat: physics control steps per agent step.
  proprio: include the observation vectors; image: include a rendered
    'image' [*size, 3] uint8.
  size: (height, width); camera: camera id (None: per-domain default).
  seed: the task's random seed (None: nondeterministic).
  """

  def __init__(self, task, repeat=2, proprio=True, image=False,
               size=(64, 64), camera=None, seed=None):
    if not (proprio or image):
      raise ValueError('proprio and image are both False: enable one.')
    if repeat < 1:
      raise ValueError(f'repeat={repeat} must be >= 1.')
    if isinstance(task, str):
      suite = import_suite(render=image)
      domain, name = parse_task(task, suite.ALL_TASKS)
      self._env = suite.load(domain, name, task_kwargs={'random': seed})
    elif seed is not None:
      raise ValueError('seed is only used with a task name: seed the dm_env '
                       'environment when you build it.')
    else:
      domain, self._env = None, task
    quality = self._env.physics.model.vis.quality
    quality.shadowsize, quality.offsamples = 512, 0  # Before the 1st render.
    self._repeat, self._proprio, self._image = repeat, proprio, image
    self._size = tuple(size)
    self._camera = CAMERAS.get(domain, 0) if camera is None else camera
    spec = self._env.action_spec()
    self._low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64)
    self._high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64)
    self._obs_space = base.with_flags(self._make_obs_space())

  def _make_obs_space(self):
    obs_space = {}
    if self._proprio:
      for key, spec in self._env.observation_spec().items():
        size = int(np.prod(spec.shape))
        obs_space[key] = spaces.Space((size,), 'float32')
    if self._image:
      obs_space['image'] = spaces.Space(
          (*self._size, 3), 'uint8', low=0, high=255)
    return obs_space

  @property
  def obs_space(self):
    return self._obs_space

  @property
  def act_space(self):
    shape = self._env.action_spec().shape  # (n,)
    return {'action': spaces.Space(shape, 'float32', low=-1.0, high=1.0)}

  @property
  def physics(self):
    """The dm_control physics (for inspection or extra rendering)."""
    return self._env.physics

  def _obs(self, step, reward=0.0, **flags):
    values = {}
    if self._proprio:
      for key, value in step.observation.items():
        values[key] = np.asarray(value, np.float32).reshape(-1)  # [n]
    if self._image:
      values['image'] = self._env.physics.render(
          *self._size, camera_id=self._camera)  # [h, w, 3] uint8
    return base.observation(values, reward=reward, **flags)

  def _reset(self):
    return self._obs(self._env.reset(), is_first=True)

  def _step(self, action):
    a = np.clip(np.asarray(action['action'], np.float64), -1, 1)
    a = self._low + (a + 1) / 2 * (self._high - self._low)
    reward = 0.0
    for _ in range(self._repeat):
      step = self._env.step(a)
      reward += step.reward or 0.0
      if step.last():
        break
    terminal = step.discount == 0
    return self._obs(step, reward, is_last=step.last() or terminal,
                     is_terminal=terminal)

  def close(self):
    self._env.close()
