"""Atomic checkpoints for exact resume.

Layout of a checkpoint directory:

  ckpt-000012/        one complete checkpoint (never modified after writing)
    tensors.npz       the agent's state tensors (`Agent.get_state()` order)
    state.json        counters, RNG states, model signature, sha256 of tensors
  latest              the name of the newest complete checkpoint

A checkpoint is written into a temporary directory, every file is fsynced,
the directory is renamed into place, and only then is `latest` replaced
(temp file + os.replace). A crash or a full disk at any point leaves the
previous checkpoint and `latest` valid. Loading verifies the checksum; a
corrupt or truncated newest checkpoint is reported and the previous good
one is used instead.
"""
import hashlib
import json
import os
import shutil
import tempfile
import warnings

import numpy as np

LATEST = 'latest'


class CheckpointError(IOError):
  """No usable checkpoint, or one that does not fit the current model."""


def _fsync(path):
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def _sha256(path):
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


class Checkpointer:
  """Writes and reads checkpoints in `directory`, keeping the newest `keep`."""

  def __init__(self, directory, keep=2):
    self.directory = directory
    self.keep = keep
    os.makedirs(directory, exist_ok=True)

  def names(self):
    """Complete checkpoint names, oldest first."""
    return sorted(n for n in os.listdir(self.directory)
                  if n.startswith('ckpt-') and not n.endswith('.tmp'))

  def save(self, tensors, state):
    """Writes a new checkpoint atomically; returns its path."""
    names = self.names()
    number = int(names[-1].split('-')[1]) + 1 if names else 0
    name = f'ckpt-{number:06d}'
    tmp = tempfile.mkdtemp(prefix=f'{name}.', suffix='.tmp',
                           dir=self.directory)
    try:
      tensor_path = os.path.join(tmp, 'tensors.npz')
      with open(tensor_path, 'wb') as f:
        np.savez(f, **{f'{i:05d}': np.asarray(t) for i, t in
                       enumerate(tensors)})
        f.flush()
        os.fsync(f.fileno())
      state = dict(state, tensors_sha256=_sha256(tensor_path),
                   num_tensors=len(tensors))
      with open(os.path.join(tmp, 'state.json'), 'w') as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
      _fsync(tmp)
      os.replace(tmp, os.path.join(self.directory, name))
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
    self._write_latest(name)
    for old in self.names()[:-self.keep]:
      shutil.rmtree(os.path.join(self.directory, old), ignore_errors=True)
    return os.path.join(self.directory, name)

  def _write_latest(self, name):
    path = os.path.join(self.directory, LATEST)
    with open(path + '.tmp', 'w') as f:
      f.write(name)
      f.flush()
      os.fsync(f.fileno())
    os.replace(path + '.tmp', path)
    _fsync(self.directory)

  def load(self):
    """(tensors, state) of the newest valid checkpoint, or None if none.

    Corrupt checkpoints are skipped with a warning naming them; if
    checkpoints exist but none is valid, raises CheckpointError.
    """
    names = self.names()
    if not names:
      return None
    errors = []
    for name in reversed(names):
      try:
        return self._read(name)
      except (OSError, ValueError, KeyError) as e:
        errors.append(f'{name}: {e}')
        warnings.warn(f'Skipping unreadable checkpoint {name}: {e}')
    raise CheckpointError(
        f'No valid checkpoint in {self.directory}: ' + '; '.join(errors))

  def _read(self, name):
    path = os.path.join(self.directory, name)
    with open(os.path.join(path, 'state.json')) as f:
      state = json.load(f)
    tensor_path = os.path.join(path, 'tensors.npz')
    if _sha256(tensor_path) != state['tensors_sha256']:
      raise ValueError('tensors.npz does not match its checksum '
                       '(truncated or corrupt)')
    with np.load(tensor_path) as data:
      tensors = [data[f'{i:05d}'] for i in range(state['num_tensors'])]
    return tensors, state


def signature_diff(saved, current):
  """Human-readable differences between two `Agent.signature()` dicts."""
  lines = []
  for key in sorted(set(saved) | set(current)):
    old, new = saved.get(key, '<unset>'), current.get(key, '<unset>')
    if old != new:
      lines.append(f'{key}: checkpoint {old!r} vs now {new!r}')
  return lines
