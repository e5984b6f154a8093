"""Run logging: metrics.jsonl, scores.jsonl, TensorBoard and a console line.

Every record carries `step` = env frames (policy steps x action repeat, the
x-axis of the paper's curves) plus the raw counters. JSONL files are
appended line by line and flushed, so a killed run loses at most the line
being written; on resume the logger continues after the restored step.
"""
import json
import os
import sys
import time

import numpy as np


class Logger:
  """Writes scalars and episode scores of one run directory."""

  def __init__(self, logdir, tensorboard=True, console=True):
    self.logdir = logdir
    os.makedirs(logdir, exist_ok=True)
    self._metrics = open(os.path.join(logdir, 'metrics.jsonl'), 'a')
    self._scores = open(os.path.join(logdir, 'scores.jsonl'), 'a')
    self._writer = None
    if tensorboard:
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
      self._writer = tf.summary.create_file_writer(logdir)
    self.console = console
    self._start = time.time()

  def scalars(self, values, step):
    """Appends one metrics record and the TensorBoard scalars."""
    record = {'step': int(step), 'time': round(time.time(), 3)}
    record.update({k: _number(v) for k, v in values.items()})
    self._metrics.write(json.dumps(record) + '\n')
    self._metrics.flush()
    if self._writer:
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
      with self._writer.as_default(step=int(step)):
        for key, value in record.items():
          if key not in ('step', 'time') and np.isfinite(value):
            tf.summary.scalar(key, value)
      self._writer.flush()

  def score(self, score, length, step, kind='train', **extra):
    """One finished episode: scores.jsonl gets train and eval episodes."""
    record = {'step': int(step), 'episode/score': float(score),
              'episode/length': int(length), 'kind': kind}
    record.update(extra)
    self._scores.write(json.dumps(record) + '\n')
    self._scores.flush()
    prefix = 'episode' if kind == 'train' else f'{kind}_episode'
    self.scalars({f'{prefix}/score': score, f'{prefix}/length': length},
                 step)

  def progress(self, step, total, fps, score, updates):
    """One console line: steps, fps, latest score and ETA."""
    if not self.console:
      return
    done = min(1.0, step / max(total, 1))
    eta = (total - step) / fps if fps > 0 else float('inf')
    eta_text = time.strftime('%H:%M:%S', time.gmtime(eta)) if np.isfinite(
        eta) else '--:--:--'
    bar = '#' * int(20 * done) + '.' * (20 - int(20 * done))
    score_text = 'n/a' if score is None else f'{score:.1f}'
    print(f'[{bar}] {step}/{total} frames  {fps:.1f} fps  '
          f'score {score_text}  updates {updates}  ETA {eta_text}',
          file=sys.stderr, flush=True)

  def close(self):
    self._metrics.close()
    self._scores.close()
    if self._writer:
      self._writer.close()


def _number(value):
  value = np.asarray(value)
  return float(value) if value.size == 1 else float(value.mean())
