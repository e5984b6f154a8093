"""JSONL + TensorBoard logging."""
import json
import os

import numpy as np

from dreamer_tf.run import logger as log_lib


def test_scalars_scores_and_tensorboard(tmp_path, capsys):
  logger = log_lib.Logger(str(tmp_path))
  logger.scalars({'train/loss': 1.5, 'vec': [1.0, 3.0]}, step=10)
  logger.score(42.0, 41, step=20)
  logger.score(7.0, 7, step=20, kind='eval')
  logger.progress(500, 1000, 25.0, 42.0, 3)
  logger.close()
  metrics = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert metrics[0]['step'] == 10 and metrics[0]['train/loss'] == 1.5
  assert metrics[0]['vec'] == 2.0
  assert any(m.get('eval_episode/score') == 7.0 for m in metrics)
  scores = [json.loads(l) for l in open(tmp_path / 'scores.jsonl')]
  assert [s['kind'] for s in scores] == ['train', 'eval']
  assert scores[0]['episode/score'] == 42.0
  assert any(n.startswith('events.out.tfevents') for n in os.listdir(tmp_path))
  err = capsys.readouterr().err
  assert '500/1000' in err and 'ETA' in err


def _eta(err_line):
  return err_line.rsplit('ETA ', 1)[1]


def test_eta_uses_the_mean_rate_since_the_first_line_that_trained(
    tmp_path, capsys):
  logger = log_lib.Logger(str(tmp_path), tensorboard=False)
  # Prefill: collecting without updates says nothing about training speed.
  logger.progress(500, 101000, 50.0, None, 0, now=0.0)
  # The first window with updates held the compilation: no ETA yet.
  logger.progress(1000, 101000, 10.0, None, 20, now=60.0)
  # A slow last window (1 fps) must not blow up the ETA: the mean rate
  # since the anchor line is 2000 frames / 100 s = 20 fps.
  logger.progress(3000, 101000, 1.0, None, 40, now=160.0)
  lines = capsys.readouterr().err.strip().split('\n')
  assert [_eta(l) for l in lines] == ['--:--:--', '--:--:--', '1:21:40']
  logger.progress(3000, 101000, 0.0, None, 40, now=160.0 + 1e6)
  # 98000 frames at 0.002 fps; hours are not wrapped at a day.
  assert _eta(capsys.readouterr().err.strip()) == '13612:28:20'
  logger.close()


def test_eta_of_a_resumed_run_skips_the_compilation_window(tmp_path, capsys):
  """A resumed CartPole run (100k frames, 4 envs, ~25 fps once training)
  spent its first window compiling the train step: 8 frames in 110 s. The
  old rule divided by that window's fps and printed `ETA 215:39:40`."""
  logger = log_lib.Logger(str(tmp_path), tensorboard=False)
  fps = 8 / 110.0
  assert log_lib._duration((100000 - 43536) / fps) == '215:39:40'
  logger.progress(43536, 100000, fps, 21.0, 10884, now=110.0)
  logger.progress(45036, 100000, 25.0, 180.0, 11259, now=170.0)
  logger.progress(46536, 100000, 25.0, 240.0, 11634, now=230.0)
  lines = capsys.readouterr().err.strip().split('\n')
  assert '43536/100000 frames  0.1 fps' in lines[0]
  assert _eta(lines[0]) == '--:--:--'
  assert _eta(lines[1]) == '0:36:38'  # 54964 frames at 25 fps.
  assert _eta(lines[2]) == '0:35:38'  # 53464 frames at 25 fps.
  logger.close()


def test_appends_across_restarts(tmp_path):
  for step in (1, 2):
    logger = log_lib.Logger(str(tmp_path), tensorboard=False, console=False)
    logger.score(step, step, step)
    logger.close()
  assert len(open(tmp_path / 'scores.jsonl').readlines()) == 2


def test_rewind_drops_the_records_after_a_position(tmp_path):
  logger = log_lib.Logger(str(tmp_path), tensorboard=False, console=False)
  logger.score(1.0, 10, 100)
  logger.close()
  # A new process (a resume) continues at the files' ends.
  logger = log_lib.Logger(str(tmp_path), tensorboard=False, console=False)
  logger.scalars({'loss': 0.5}, 200)
  position = logger.position()  # Stored with a checkpoint.
  logger.score(2.0, 20, 300)
  logger.scalars({'loss': 0.25}, 400)
  logger.close()
  with open(tmp_path / 'scores.jsonl', 'a') as f:
    f.write('{"step": 5')  # Killed mid-line.
  logger = log_lib.Logger(str(tmp_path), tensorboard=False, console=False)
  logger.rewind(position)
  logger.score(3.0, 30, 300)
  logger.close()
  scores = [json.loads(l) for l in open(tmp_path / 'scores.jsonl')]
  assert [r['episode/score'] for r in scores] == [1.0, 3.0]
  metrics = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert [r['step'] for r in metrics] == [100, 200, 300]
  # Files already shorter than the position are left alone.
  os.remove(tmp_path / 'scores.jsonl')
  logger = log_lib.Logger(str(tmp_path), tensorboard=False, console=False)
  logger.rewind(position)
  logger.score(4.0, 40, 500)
  logger.close()
  assert len(open(tmp_path / 'scores.jsonl').readlines()) == 1


def _strict(line):
  """json.loads refusing the NaN / Infinity tokens JSON does not have."""
  def refuse(token):
    raise ValueError(f'{token} is not JSON')
  return json.loads(line, parse_constant=refuse)


def test_non_finite_values_are_written_as_strict_json_strings(tmp_path,
                                                              capsys):
  logger = log_lib.Logger(str(tmp_path))  # TensorBoard skips them.
  logger.scalars({'nan': float('nan'), 'inf': np.float32(np.inf),
                  'ninf': -np.inf, 'vec': [1.0, np.nan], 'ok': 0.5}, step=1)
  logger.score(float('inf'), 3, step=2, **{'log/x': float('nan')})
  logger.close()
  metrics = [_strict(l) for l in open(tmp_path / 'metrics.jsonl')]
  scores = [_strict(l) for l in open(tmp_path / 'scores.jsonl')]
  assert {k: metrics[0][k] for k in ('nan', 'inf', 'ninf', 'vec', 'ok')} == {
      'nan': 'NaN', 'inf': 'Infinity', 'ninf': '-Infinity', 'vec': 'NaN',
      'ok': 0.5}
  assert scores[0]['episode/score'] == 'Infinity'
  assert scores[0]['log/x'] == 'NaN'
  assert metrics[1]['episode/score'] == 'Infinity'
  # The reader gives the float values back.
  (score,) = log_lib.read_scores(str(tmp_path / 'scores.jsonl'))
  assert score['episode/score'] == np.inf and np.isnan(score['log/x'])
  (record, _) = log_lib.read_scores(str(tmp_path / 'metrics.jsonl'), None)
  assert record['ninf'] == -np.inf and record['ok'] == 0.5
  assert capsys.readouterr().err == ''


def test_warnings_go_to_the_console_unless_it_is_off(tmp_path, capsys):
  for console, printed in ((True, 'WARNING: Update 1 skipped\n'), (False, '')):
    logger = log_lib.Logger(str(tmp_path), tensorboard=False,
                            console=console)
    logger.warn('Update 1 skipped')
    logger.close()
    assert capsys.readouterr().err == printed


def test_abandon_moves_the_records_aside_and_empties_the_files(tmp_path):
  logger = log_lib.Logger(str(tmp_path), tensorboard=False, console=False)
  logger.scalars({'loss': 0.5}, 1)
  logger.score(1.0, 10, 2)
  logger.close()
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 3')  # Killed mid-line.
  logger = log_lib.Logger(str(tmp_path), tensorboard=False, console=False)
  assert logger.abandon(str(tmp_path / 'kept')) == {'metrics.jsonl': 2,
                                                     'scores.jsonl': 1}
  logger.scalars({'loss': 0.25}, 1)
  logger.close()
  assert [json.loads(l)['step'] for l in open(tmp_path / 'metrics.jsonl')] \
      == [1]
  assert (tmp_path / 'scores.jsonl').read_text() == ''
  kept = (tmp_path / 'kept' / 'metrics.jsonl').read_text()
  assert kept.startswith('{"step": 1') and kept.endswith('{"step": 3')
  # Nothing written: nothing moved, no directory.
  logger = log_lib.Logger(str(tmp_path / 'fresh'), tensorboard=False,
                          console=False)
  assert logger.abandon(str(tmp_path / 'fresh' / 'kept')) == {}
  assert not (tmp_path / 'fresh' / 'kept').exists()


def test_tensorboard_scalars_are_what_tf_summary_scalar_writes(tmp_path):
  """One event per `scalars` call, holding per value exactly the tag,
  plugin metadata and float32 tensor of `tf.summary.scalar` (so that
  TensorBoard reads them alike); non-finite values stay out."""
  import glob  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  records = [({'train/loss': 1.5, 'fps/policy': 1e-7, 'x/int': 3}, 10),
             ({'train/loss': -2.25, 'x/nan': float('nan'),
               'x/inf': float('inf')}, 20)]
  ours = tmp_path / 'ours'
  logger = log_lib.Logger(str(ours), console=False)
  for values, step in records:
    logger.scalars(values, step)
  logger.close()
  reference = tmp_path / 'tf'
  writer = tf.summary.create_file_writer(str(reference))
  with writer.as_default():
    for values, step in records:
      for key, value in values.items():
        if np.isfinite(value):
          tf.summary.scalar(key, value, step=step)
  writer.close()

  def values(logdir):
    (path,) = glob.glob(str(logdir / 'events.out.tfevents.*'))
    return [(event.step, value.tag, value.metadata.SerializeToString(),
             value.tensor.SerializeToString())
            for event in tf.compat.v1.train.summary_iterator(path)
            for value in event.summary.value]
  assert values(ours) == values(reference)
  assert len(values(ours)) == 4
