"""Frames and videos of evaluation episodes (dreamer_tf/run/recording.py)."""
import functools
import importlib.util

import numpy as np
import pytest

from dreamer_tf import envs
from dreamer_tf import spaces
from dreamer_tf.envs import base
from dreamer_tf.run import recording


def count_frames(path):
  if path.endswith('.gif'):
    from PIL import Image  # pylint: disable=import-outside-toplevel
    with Image.open(path) as image:
      return image.n_frames, image.size[::-1]
  import cv2  # pylint: disable=import-outside-toplevel
  capture = cv2.VideoCapture(path)
  frames, shape = 0, None
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    frames, shape = frames + 1, frame.shape[:2]
  capture.release()
  return frames, shape


def test_envs_that_cannot_render_get_no_video_and_say_why():
  ctor = functools.partial(envs.make, 'gym:CartPole-v1')  # No render_mode.
  pool, why = recording.recording_pool(ctor)
  assert pool is None
  assert 'render_mode' in why


def test_cartpole_episode_renders_headless(tmp_path, monkeypatch):
  """The embedded default's env renders without a display: the evaluation
  video of `launch.evaluate` on CartPole-v1 needs pygame (`.[all]`)."""
  if importlib.util.find_spec('pygame') is None:
    pytest.skip('pygame is not installed: gymnasium classic control renders '
                'with it; pip install -e ".[all]" (pygame-ce).')
  for name in ('SDL_VIDEODRIVER', 'DISPLAY', 'WAYLAND_DISPLAY'):
    monkeypatch.delenv(name, raising=False)  # Spawned workers inherit it.
  env = 'gym:CartPole-v1'
  ctor = functools.partial(envs.make, env, seed=0,
                           **recording.render_kwargs(env))
  pool, why = recording.recording_pool(ctor)
  assert pool is not None, why
  try:
    frames, firsts = [], []
    for t in range(12):  # The first step resets; push right, left, ...
      obs = pool.step({'action': np.array([t % 2], np.int32)})
      frames.append(obs[recording.FRAME_KEY][0])
      firsts.append(bool(obs['is_first'][0]))
  finally:
    pool.close()
  assert firsts[0] and not any(firsts[1:])
  frames = np.stack(frames)
  assert frames.dtype == np.uint8 and frames.shape == (12, 400, 600, 3)
  assert 0 < frames.mean() < 255  # A drawing, not a blank surface.
  assert np.abs(np.diff(frames.astype(int), axis=0)).sum() > 0  # Moving.
  path = recording.write_video(str(tmp_path / 'cartpole'), frames)
  assert count_frames(path) == (12, (400, 600))


@pytest.mark.parametrize('opencv', [True, False])
def test_write_video_decodes_to_all_frames(tmp_path, monkeypatch, opencv):
  if not opencv:
    monkeypatch.setitem(__import__('sys').modules, 'cv2', None)
  frames = np.zeros((7, 48, 64, 3), np.uint8)
  frames[:, :, :, 0] = np.arange(7)[:, None, None] * 30
  path = recording.write_video(str(tmp_path / 'video'), frames, fps=10)
  assert path.endswith('.mp4' if opencv else '.gif')
  assert count_frames(path) == (7, (48, 64))
  with pytest.raises(ValueError, match='uint8'):
    recording.write_video(str(tmp_path / 'bad'), frames.astype(np.float32))
  assert recording.rgb(np.ones((2, 3, 1), np.uint8)).shape == (2, 3, 3)


class _Vector(base.Env):
  """A vector-only env with no renderer."""

  @property
  def obs_space(self):
    return base.with_flags({'x': spaces.Space((2,), 'float32')})

  @property
  def act_space(self):
    return {'action': spaces.Space((), 'int32', classes=2)}

  def _reset(self):
    return base.observation({'x': np.zeros(2, np.float32)}, is_first=True)

  def _step(self, action):
    return base.observation({'x': np.ones(2, np.float32)}, reward=1.0)


def test_recorder_refuses_an_env_without_images_or_renderer():
  with pytest.raises(recording.CannotRender, match='_Vector has no image'):
    recording.Recorder(_Vector)
