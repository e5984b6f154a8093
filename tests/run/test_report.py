"""Open-loop reports: predictions, error metrics, video grid, TensorBoard."""
import glob
import io

import gin
import numpy as np
import tensorflow as tf
from PIL import Image

from dreamer_tf.model import agent as agent_lib
from dreamer_tf import config
from dreamer_tf.run import logger as log_lib
from dreamer_tf.run import report
from dreamer_tf import spaces
from tests.conftest import TINY, make_batch


def build(obs, act='discrete:3'):
  gin.clear_config()
  config.parse([], TINY + ['Agent.batch_size = 2', 'Agent.batch_length = 8'])
  return agent_lib.Agent(spaces.parse_obs_space(obs),
                         spaces.parse_act_space(act))


def test_imagined_steps_see_actions_but_not_observations():
  agent = build('image:64x64x3,vec:5')
  openloop = report.OpenLoop(agent, observe=4)
  data = make_batch(agent)
  data['is_first'][:, 1:] = False  # One episode per sequence.
  base = openloop(data, [1, 2])
  assert set(base) == {'image', 'vec'}
  truth, model = base['image']
  assert truth.shape == model.shape == (2, 8, 64, 64, 3)
  np.testing.assert_allclose(truth, data['image'][:, 1:] / 255.0)
  # New observations after the observed steps change nothing: open loop.
  later = {k: v.copy() for k, v in data.items()}
  later['image'][:, 1 + 4:] = 255 - later['image'][:, 1 + 4:]
  later['vec'][:, 1 + 4:] += 10.0
  unseen = openloop(later, [1, 2])
  for key in base:
    np.testing.assert_array_equal(unseen[key][1], base[key][1])
  # Different actions in the imagined part change the imagined predictions
  # and leave the observed ones alone.
  other = {k: v.copy() for k, v in data.items()}
  other['action'][:, 1 + 4:] = (other['action'][:, 1 + 4:] + 1) % 3
  acted = openloop(other, [1, 2])
  np.testing.assert_array_equal(acted['vec'][1][:, :4], base['vec'][1][:, :4])
  assert not np.allclose(acted['vec'][1][:, 5:], base['vec'][1][:, 5:])
  # Changing an observed step changes the observed predictions.
  seen = {k: v.copy() for k, v in data.items()}
  seen['vec'][:, 1:1 + 4] += 10.0
  assert not np.allclose(openloop(seen, [1, 2])['vec'][1][:, :4],
                         base['vec'][1][:, :4])


def test_discrete_observations_are_reported_as_classes():
  agent = build('vec:5')
  agent = agent_lib.Agent(
      {**agent.obs_space, 'cell': spaces.Space((), 'int32', classes=6)},
      agent.act_space)
  data = make_batch(agent)
  preds = report.OpenLoop(agent, observe=4)(data, [0, 1])
  truth, model = preds['cell']
  assert model.shape == (2, 8) and set(np.unique(model)) <= set(range(6))
  metrics = report.errors(preds, 4, discrete=['cell'])
  assert 0 <= metrics['cell_imagined'] <= 1
  np.testing.assert_allclose(
      metrics['cell_observed'], np.mean(model[:, :4] != truth[:, :4]))


def test_a_report_needs_steps_left_to_imagine():
  agent = build('vec:5')
  data = make_batch(agent)
  try:
    report.OpenLoop(agent, observe=8)(data, [0, 0])
  except ValueError as e:
    assert 'more than 8 steps' in str(e)
  else:
    raise AssertionError('expected a ValueError')


def test_errors_split_observed_and_imagined_steps():
  truth = np.zeros((1, 4, 2))
  model = np.array([[[1, 1], [0, 0], [2, 2], [0, 0]]], float)
  assert report.errors({'x': (truth, model)}, observe=2) == {
      'x_observed': 0.5, 'x_imagined': 2.0}
  assert report.errors({'x': (truth, model)}, observe=2, discrete=['x']) == {
      'x_observed': 0.5, 'x_imagined': 0.5}


def test_video_grid_layout_borders_and_error_tiles():
  rng = np.random.default_rng(0)
  truth = rng.uniform(size=(2, 3, 4, 5, 1))
  model = truth.copy()
  model[1, 2] = 1.0
  frames = report.video_grid(truth, model, observe=2, border=1)
  # [T, 3 (H + 2), N (W + 2), 3]: truth / model / error rows, a column per
  # sequence.
  assert frames.shape == (3, 3 * 6, 2 * 7, 3) and frames.dtype == np.uint8
  np.testing.assert_array_equal(frames[0, 0, 0], report.GREEN)
  np.testing.assert_array_equal(frames[1, 0, 7], report.GREEN)
  np.testing.assert_array_equal(frames[2, 0, 0], report.RED)
  tile = lambda t, row, col: frames[t, row * 6 + 1: row * 6 + 5,
                                    col * 7 + 1: col * 7 + 6, 0]
  np.testing.assert_array_equal(
      tile(0, 0, 0), np.round(truth[0, 0, ..., 0] * 255))
  np.testing.assert_array_equal(tile(0, 2, 0), 128)  # Exact: grey.
  assert (tile(2, 2, 1) >= 128).all() and (tile(2, 2, 1) > 128).any()
  # Grayscale frames become RGB.
  inner = frames[:, 1:5, 1:6]
  np.testing.assert_array_equal(inner[..., 0], inner[..., 2])


def test_logger_writes_an_animated_gif_to_tensorboard(tmp_path):
  logger = log_lib.Logger(str(tmp_path), console=False)
  frames = np.zeros((5, 8, 12, 3), np.uint8)
  frames[:, :, :, 1] = np.arange(5)[:, None, None] * 40
  logger.video('report/openloop/image', frames, step=7)
  logger.close()
  events = glob.glob(str(tmp_path / 'events.out.tfevents.*'))
  images = []
  for event in tf.compat.v1.train.summary_iterator(events[0]):
    for value in event.summary.value:
      if value.tag == 'report/openloop/image':
        images.append((event.step, value.image))
  assert len(images) == 1 and images[0][0] == 7
  gif = Image.open(io.BytesIO(images[0][1].encoded_image_string))
  assert gif.format == 'GIF' and gif.n_frames == 5 and gif.size == (12, 8)
  gif.seek(4)
  assert abs(np.asarray(gif.convert('RGB'))[0, 0, 1] - 160) <= 2
  try:
    log_lib.Logger(str(tmp_path), console=False).video('x', frames[..., 0], 1)
  except ValueError as e:
    assert '[T, H, W, 3] uint8' in str(e)
  else:
    raise AssertionError('expected a ValueError')
