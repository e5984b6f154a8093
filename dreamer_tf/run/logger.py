"""Run logging: metrics.jsonl, scores.jsonl, TensorBoard and a console line.

Every record carries `step` = env frames (policy steps x action repeat, the
x-axis of the paper's curves) plus the raw counters. JSONL files are
appended line by line and flushed, so a killed run loses at most the line
being written. A checkpoint stores the files' `position`; resuming from it
`rewind`s them there, so the records an exact resume writes again (those
after the checkpoint of a killed run) are not duplicated.

Every line is strict JSON (RFC 8259 has no NaN or Infinity): a non-finite
float value is written as the string "NaN", "Infinity" or "-Infinity" in
its place (`json_line`). The string keeps what the value was (`float()`
parses it back), where null would lose it, and the key keeps its one
meaning; `read_scores` turns these strings back into floats, so readers of
this module see the float values. TensorBoard gets finite values only.
"""
import io
import json
import math
import os
import sys
import time

import numpy as np

# Strings standing in for non-finite floats in the JSONL files.
NON_FINITE = {'NaN': math.nan, 'Infinity': math.inf, '-Infinity': -math.inf}


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
    # (step, time) of this process's first line after an update.
    self._eta_anchor = None

  def scalars(self, values, step):
    """Appends one metrics record and the TensorBoard scalars (the finite
    ones, in one event)."""
    numbers = {k: _number(v) for k, v in values.items()}
    record = {'step': int(step), 'time': round(time.time(), 3), **numbers}
    self._metrics.write(json_line(record))
    self._metrics.flush()
    finite = {k: v for k, v in numbers.items() if math.isfinite(v)}
    if self._writer and finite:
      self._write_summary(scalar_summary(finite), step)

  def score(self, score, length, step, kind='train', **extra):
    """One finished episode: scores.jsonl gets train and eval episodes."""
    record = {'step': int(step), 'episode/score': float(score),
              'episode/length': int(length), 'kind': kind}
    record.update(extra)
    self._scores.write(json_line(record))
    self._scores.flush()
    prefix = 'episode' if kind == 'train' else f'{kind}_episode'
    # Scalar `log/<name>` extras (e.g. achievement counts) also go to
    # TensorBoard, as <prefix>/<name>.
    logs = {f'{prefix}/{k[4:]}': v for k, v in extra.items()
            if k.startswith('log/')}
    self.scalars({f'{prefix}/score': score, f'{prefix}/length': length,
                  **logs}, step)

  def progress(self, step, total, fps, score, updates, now=None):
    """One console line: steps, fps of the last window, latest score, ETA.

    The ETA divides the remaining frames by the mean rate since the first
    line of this process that came after an update (`updates` > 0): that
    line's window held the XLA compilation of the train step (and, in a
    new run, the replay prefill, which collects without training), so
    neither skews the rate. Until a second such line exists the ETA reads
    `--:--:--`; the last window's `fps` is not used, as it swings with
    evaluation, checkpoints and compilation (a resumed run's first window
    is mostly compilation and would promise hundreds of hours).
    """
    if not self.console:
      return
    now = time.time() if now is None else now
    rate = None
    if self._eta_anchor is not None:
      start_step, start_time = self._eta_anchor
      rate = (step - start_step) / max(now - start_time, 1e-9)
    elif updates > 0:
      self._eta_anchor = (step, now)
    done = min(1.0, step / max(total, 1))
    eta_text = '--:--:--'
    if rate is not None and rate > 0:
      eta_text = _duration(max(total - step, 0) / rate)
    bar = '#' * int(20 * done) + '.' * (20 - int(20 * done))
    score_text = 'n/a' if score is None else f'{score:.1f}'
    print(f'[{bar}] {step}/{total} frames  {fps:.1f} fps  '
          f'score {score_text}  updates {updates}  ETA {eta_text}',
          file=sys.stderr, flush=True)

  def warn(self, message):
    """One console line about a problem the run goes on with (e.g. a
    skipped update); like `progress`, only with console lines on."""
    if self.console:
      print(f'WARNING: {message}', file=sys.stderr, flush=True)

  def video(self, tag, frames, step, fps=10):
    """An animated GIF [T, H, W, 3] uint8 as a TensorBoard image summary."""
    if not self._writer:
      return
    from tensorboard.compat.proto import summary_pb2  # pylint: disable=import-outside-toplevel
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
      raise ValueError(f'Video frames must be [T, H, W, 3] uint8, got '
                       f'{frames.shape} {frames.dtype}.')
    image = summary_pb2.Summary.Image(
        height=frames.shape[1], width=frames.shape[2], colorspace=3,
        encoded_image_string=encode_gif(frames, fps))
    self._write_summary(summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, image=image)]), step)

  def _write_summary(self, summary, step):
    """Appends a Summary proto to the TensorBoard events, flushed."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    with self._writer.as_default():
      tf.summary.experimental.write_raw_pb(
          summary.SerializeToString(), step=int(step))
    self._writer.flush()

  def position(self):
    """{file name: bytes written}: where a resume from now continues."""
    return {os.path.basename(f.name): f.tell()
            for f in (self._metrics, self._scores)}

  def rewind(self, position):
    """Drops the JSONL records written after `position` (see `position`).

    Files already shorter (e.g. deleted by hand) are left alone. TensorBoard
    events are append-only: repeated steps show as overlapping points.
    """
    for f in (self._metrics, self._scores):
      size = position.get(os.path.basename(f.name))
      if size is not None and f.tell() > size:
        f.truncate(size)  # Append mode: the next write lands at `size`.
        f.seek(size)

  def abandon(self, directory):
    """Moves every JSONL record written so far into `directory` (appended
    to files of the same names) and empties the files; returns {file name:
    records moved}. For a run that starts over: the records of an earlier
    attempt that never wrote a checkpoint describe nothing that survives,
    and the new attempt would log the same steps again."""
    moved = {}
    for f in (self._metrics, self._scores):
      f.flush()
      name = os.path.basename(f.name)
      with open(f.name) as old:
        text = old.read()
      if not text:
        continue
      os.makedirs(directory, exist_ok=True)
      with open(os.path.join(directory, name), 'a') as kept:
        kept.write(text)
        kept.flush()
        os.fsync(kept.fileno())
      f.truncate(0)
      f.seek(0)
      moved[name] = text.count('\n')
    return moved

  def close(self):
    self._metrics.close()
    self._scores.close()
    if self._writer:
      self._writer.close()


def scalar_summary(values):
  """{tag: float} -> one Summary proto holding what `tf.summary.scalar`
  writes for each (the scalar plugin's metadata, a float32 scalar tensor),
  byte for byte. Building the proto in Python and writing it once costs
  ~3 ms per 40 scalars where a `tf.summary.scalar` op per value costs ~25.
  """
  # pylint: disable=import-outside-toplevel
  from tensorboard.compat.proto import summary_pb2
  from tensorboard.compat.proto import tensor_pb2
  from tensorboard.compat.proto import tensor_shape_pb2
  from tensorboard.compat.proto import types_pb2
  metadata = summary_pb2.SummaryMetadata(
      plugin_data=summary_pb2.SummaryMetadata.PluginData(
          plugin_name='scalars'))
  return summary_pb2.Summary(value=[
      summary_pb2.Summary.Value(
          tag=tag, metadata=metadata, tensor=tensor_pb2.TensorProto(
              dtype=types_pb2.DT_FLOAT,
              tensor_shape=tensor_shape_pb2.TensorShapeProto(),
              tensor_content=np.float32(value).tobytes()))
      for tag, value in values.items()])


def encode_gif(frames, fps=10):
  """[T, H, W, 3] uint8 -> bytes of a looping GIF."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  images = [Image.fromarray(f) for f in frames]
  buffer = io.BytesIO()
  images[0].save(buffer, format='GIF', save_all=True,
                 append_images=images[1:], duration=int(1000 / fps), loop=0)
  return buffer.getvalue()


def _duration(seconds):
  """'H:MM:SS', hours not wrapped at a day ('31:00:00')."""
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}:{minutes:02d}:{secs:02d}'


def _number(value):
  value = np.asarray(value)
  return float(value) if value.size == 1 else float(value.mean())


def json_line(record):
  """One strict JSON line of a flat record; non-finite floats (Python or
  numpy) become "NaN" / "Infinity" / "-Infinity" (module doc)."""
  clean = {}
  for key, value in record.items():
    if isinstance(value, (float, np.floating)):
      value = float(value)
      if not math.isfinite(value):
        value = 'NaN' if math.isnan(value) else (
            'Infinity' if value > 0 else '-Infinity')
    clean[key] = value
  return json.dumps(clean, allow_nan=False) + '\n'


def read_scores(path, kind='train'):
  """The episode records of a scores.jsonl file whose `kind` is `kind`
  ('train', 'eval'; None: all). A torn last line (a run killed while
  writing it) is skipped; a bad line elsewhere is an error. Values written
  as "NaN" / "Infinity" / "-Infinity" (`json_line`) come back as floats."""
  with open(path) as f:
    lines = f.read().splitlines()
  records = []
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      if i == len(lines) - 1:
        continue
      raise ValueError(f'Bad line {i + 1} in {path}: {line!r}') from None
    record = {k: NON_FINITE.get(v, v) if isinstance(v, str) else v
              for k, v in record.items()}
    if kind is None or record.get('kind', 'train') == kind:
      records.append(record)
  return records
