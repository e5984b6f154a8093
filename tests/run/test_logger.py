"""JSONL + TensorBoard logging."""
import json
import os

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


def test_eta_uses_the_mean_rate_since_the_first_line(tmp_path, capsys):
  logger = log_lib.Logger(str(tmp_path), tensorboard=False)
  logger.progress(1000, 101000, 10.0, None, 0, now=0.0)
  # A slow last window (1 fps) must not blow up the ETA: the mean rate
  # since the first line is 2000 frames / 100 s = 20 fps.
  logger.progress(3000, 101000, 1.0, None, 0, now=100.0)
  first, second = capsys.readouterr().err.strip().split('\n')
  assert first.endswith('ETA 2:46:40')  # 100000 frames at 10 fps.
  assert second.endswith('ETA 1:21:40')  # 98000 frames at 20 fps.
  logger.progress(3000, 101000, 0.0, None, 0, now=100.0 + 1e6)
  assert capsys.readouterr().err.strip().endswith('ETA 13612:28:20')  # Not wrapped at a day.
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
