"""Frames and videos of evaluation episodes.

Video frames are the env's image observation (uint8 HxWx3, gray repeated to
RGB) when it has one; vector-only envs are rendered: gymnasium envs with
`render_mode='rgb_array'` (classic control needs pygame), dm_control tasks
through their physics. `Recorder` wraps an env so that every observation
carries its frame under FRAME_KEY; `write_video` writes an mp4 (or a GIF
without OpenCV).

Spawned env workers import this module to unpickle `Recorder`: it must not
import TensorFlow (dm_control's EGL renderer aborts in a process that has
loaded it, envs/dmc.py).
"""
import functools
import os

import numpy as np

from dreamer_tf import envs as envs_lib
from dreamer_tf.run import logger as log_lib
from dreamer_tf import spaces as spaces_lib
from dreamer_tf.envs import base
from dreamer_tf.envs import gym as gym_lib
from dreamer_tf.envs import parallel

# The observation key of a recorded frame ('log/' keys are never model
# inputs); the agent never sees it.
FRAME_KEY = 'log/frame'
# (height, width) of frames rendered from physics (dm_control).
RENDER_SIZE = (240, 320)
VIDEO_FPS = 30


class CannotRender(RuntimeError):
  """The env has no image observation and no RGB renderer."""


def render_kwargs(env):
  """Constructor arguments an env needs to render RGB frames."""
  return {'render_mode': 'rgb_array'} if envs_lib.parse(env)[0] == 'gym' \
      else {}


def recording_pool(ctor):
  """(one-env pool with frames, None) or (None, why it cannot render)."""
  try:
    return parallel.ParallelEnvs([functools.partial(Recorder, ctor)]), None
  except RuntimeError as e:
    if CannotRender.__name__ not in str(e):
      raise
    # The worker's traceback ends with 'module.CannotRender: <why>'.
    why = [line for line in str(e).splitlines()
           if CannotRender.__name__ + ': ' in line]
    return None, why[-1].split(': ', 1)[-1] if why else str(e)


class Recorder(base.Env):
  """Adds an RGB frame [H, W, 3] uint8 under FRAME_KEY to every obs.

  ctor: zero-argument callable building the env (for gymnasium ids with
  `render_mode='rgb_array'`). The frame is the env's image observation
  ('image' if present, else the first image key) or a rendering (see
  `render`); CannotRender is raised at construction if there is neither.
  Build it in a worker process: dm_control renders through EGL, which a
  process that has loaded TensorFlow must not use (see envs/dmc.py).
  """

  def __init__(self, ctor):
    os.environ.setdefault('MUJOCO_GL', 'egl')
    self._env = ctor()
    images = sorted(k for k, s in self._env.obs_space.items() if s.is_image)
    self._key = 'image' if 'image' in images else (
        images[0] if images else None)
    # The first reset tells the frame shape; step() returns it first.
    self._first = self._with_frame(self._env.step({}))
    shape = self._first[FRAME_KEY].shape
    self._obs_space = {**self._env.obs_space, FRAME_KEY: spaces_lib.Space(
        shape, 'uint8', low=0, high=255)}

  @property
  def obs_space(self):
    return self._obs_space

  @property
  def act_space(self):
    return self._env.act_space

  def _with_frame(self, obs):
    if self._key:
      frame = rgb(obs[self._key])
    else:
      frame = render(self._env)
    return {**obs, FRAME_KEY: frame}

  def _reset(self):
    first, self._first = self._first, None
    if first is not None:
      return first
    return self._with_frame(self._env.step({}))  # The inner env resets.

  def _step(self, action):
    return self._with_frame(self._env.step(action))

  def close(self):
    self._env.close()


def rgb(image):
  """[H, W, 1 or 3] uint8 -> [H, W, 3] uint8."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (
      1, 3):
    raise ValueError(f'Expected a uint8 [H, W, 1 or 3] image, got '
                     f'{image.dtype} {image.shape}.')
  return np.repeat(image, 3, -1) if image.shape[-1] == 1 else image


def render(env, size=RENDER_SIZE):
  """An RGB frame [H, W, 3] uint8 of the env's current state.

  Supports `GymEnv` built with render_mode='rgb_array' and dm_control
  `DMC` (rendered at `size`, its camera); raises CannotRender otherwise.
  """
  if isinstance(env, gym_lib.GymEnv):
    try:
      frame = env.env.render()
    except Exception as e:  # pylint: disable=broad-except
      raise CannotRender(
          f'the gymnasium env failed to render ({type(e).__name__}: '
          f'{e})') from e
    if frame is None:
      raise CannotRender(
          'the gymnasium env renders no RGB array (it was built without '
          "render_mode='rgb_array' or does not support it).")
  elif hasattr(env, 'physics'):  # dm_control (envs/dmc.py).
    camera = getattr(env, '_camera', 0)
    frame = env.physics.render(*size, camera_id=camera)
  else:
    raise CannotRender(
        f'{type(env).__name__} has no image observation and no renderer '
        '(gymnasium and dm_control envs can render).')
  frame = np.asarray(frame)
  if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
    raise CannotRender(f'the rendered frame is {frame.dtype} {frame.shape}, '
                       'not uint8 [H, W, 3].')
  return frame


def write_video(stem, frames, fps=VIDEO_FPS):
  """Writes frames [T, H, W, 3] uint8 to `stem`.mp4 (OpenCV, mp4v) or,
  without OpenCV, `stem`.gif (Pillow); returns the path written."""
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise ValueError(f'Video frames must be [T, H, W, 3] uint8, got '
                     f'{frames.dtype} {frames.shape}.')
  try:
    import cv2  # pylint: disable=import-outside-toplevel
  except ImportError:
    cv2 = None
  if cv2 is not None:
    path = stem + '.mp4'
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (width, height))
    if writer.isOpened():
      for frame in frames:
        writer.write(frame[..., ::-1])  # OpenCV wants BGR.
      writer.release()
      return path
  path = stem + '.gif'
  with open(path, 'wb') as f:
    f.write(log_lib.encode_gif(frames, fps))
  return path
