"""Frames and videos of evaluation episodes (dreamer_tf/run/recording.py)."""
import functools

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
