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

`get_state` / `set_state` (suite tasks and other `control.Environment`s)
snapshot everything a dm_control episode depends on: the MuJoCo integration
state (`mj_getState(mjSTATE_INTEGRATION)`: time, qpos, qvel, act, ctrl,
warmstart, applied forces, mocap, ...), the model arrays (tasks move
targets in the model at each reset: reacher, finger, fish, swimmer,
manipulator, stacker, point_mass, quadruped's terrain), the task's Python
attributes and its RandomState, the step counter and the reset flags. Model
arrays above `BIG_ARRAY` bytes (textures, meshes) are stored only when they
changed since construction, else checked by CRC. The blob records the task
and settings and refuses to restore into an env with others.
"""
import importlib.util
import os
import pickle
import warnings
import zlib

import numpy as np

from dreamer_tf import spaces
from dreamer_tf.envs import base

BIG_ARRAY = 1 << 16  # Bytes; see the module docstring.
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
    with warnings.catch_warnings():
      if not render:
        # Without MUJOCO_GL, dm_control probes GLFW first, which warns once
        # per process about a missing X display: noise when nothing renders.
        warnings.filterwarnings('ignore', category=UserWarning,
                                module='glfw')
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
      name = f'{type(task).__module__}.{type(task).__qualname__}'
      inner = getattr(task, 'task', None)
      if inner is not None:
        name += f'/{type(inner).__module__}.{type(inner).__qualname__}'
    self._name = f'{domain}_{name}' if domain else name
    quality = self._env.physics.model.vis.quality
    quality.shadowsize, quality.offsamples = 512, 0  # Before the 1st render.
    self._repeat, self._proprio, self._image = repeat, proprio, image
    self._size = tuple(size)
    self._camera = CAMERAS.get(domain, 0) if camera is None else camera
    spec = self._env.action_spec()
    self._low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64)
    self._high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64)
    self._obs_space = base.with_flags(self._make_obs_space())
    model = self._env.physics.model.ptr
    self._arrays = sorted(
        key for key in dir(model) if not key.startswith('_')
        and isinstance(getattr(model, key, None), np.ndarray))
    self._crcs = {key: zlib.crc32(getattr(model, key)) for key in self._arrays
                  if getattr(model, key).nbytes > BIG_ARRAY}

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

  def _settings(self):
    """Everything that must match for a state to be restorable."""
    return dict(task=self._name, repeat=self._repeat,
                proprio=bool(self._proprio), image=bool(self._image),
                size=self._size, camera=self._camera)

  def get_state(self):
    """The whole dm_control episode state (module docstring), or None for
    environments that are not a dm_control `control.Environment`."""
    # pylint: disable=import-outside-toplevel,protected-access
    # pylint: disable=unidiomatic-typecheck
    import mujoco
    from dm_control.rl import control
    env = self._env
    if type(env) is not control.Environment:
      return None  # Subclasses and wrappers may hold state we cannot see.
    model, data = env.physics.model.ptr, env.physics.data.ptr
    sig = int(mujoco.mjtState.mjSTATE_INTEGRATION)
    sim = np.empty(mujoco.mj_stateSize(model, sig), np.float64)
    mujoco.mj_getState(model, data, sim, sig)
    arrays, crcs = {}, {}
    for key in self._arrays:
      value = getattr(model, key)
      if key in self._crcs:
        crcs[key] = zlib.crc32(value)
        if crcs[key] == self._crcs[key]:
          continue
      arrays[key] = value.copy()
    random = env.task.random
    attrs = {k: v for k, v in vars(env.task).items() if v is not random}
    try:
      return base.pack_state('dmc', self._settings(), dict(
          physics=sim, model=arrays, model_crcs=crcs, task=attrs,
          random=random.get_state(), step_count=env._step_count,
          reset_next_step=env._reset_next_step,
          needs_reset=bool(self._needs_reset)))
    except (pickle.PicklingError, TypeError, AttributeError):
      return None  # A custom task with unpicklable attributes.

  def set_state(self, state):
    """Restores `get_state` output of an env with the same task/settings."""
    # pylint: disable=import-outside-toplevel,protected-access
    import mujoco
    state = base.unpack_state(state, 'dmc', self._settings())
    env, physics = self._env, self._env.physics
    model, data = physics.model.ptr, physics.data.ptr
    for key, crc in state['model_crcs'].items():
      if key not in state['model'] and zlib.crc32(getattr(model, key)) != crc:
        raise ValueError(
            f'The model array {key!r} of this env differs from the one of '
            'the env that saved the state (and is not stored): cannot '
            'restore it.')
    hfields = False
    for key, value in state['model'].items():
      target = getattr(model, key)
      if target.shape != value.shape:
        raise ValueError(
            f'The model array {key!r} has shape {target.shape} here and '
            f'{value.shape} in the state: not the same model.')
      hfields |= key == 'hfield_data' and not np.array_equal(target, value)
      target[...] = value
    sig = int(mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_setState(model, data, state['physics'], sig)
    # Derived quantities (kinematics, contacts, sensors) for the restored
    # state; mj_step2 of the next step relies on them (legacy_step). The
    # solver's warmstart is part of the state: forward must not change it.
    warmstart = data.qacc_warmstart.copy()
    physics.forward()
    data.qacc_warmstart[:] = warmstart
    env.task.random.set_state(state['random'])
    for key, value in state['task'].items():
      setattr(env.task, key, value)
    env._step_count = state['step_count']
    env._reset_next_step = state['reset_next_step']
    self._needs_reset = state['needs_reset']
    contexts = physics._contexts
    if hfields and contexts:  # Terrain changed: re-upload it for rendering.
      with contexts.gl.make_current() as ctx:
        for i in range(model.nhfield):
          ctx.call(mujoco.mjr_uploadHField, model, contexts.mujoco.ptr, i)

  def close(self):
    self._env.close()
