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

from dreamer_tf import files
LATEST = 'latest'


class CheckpointError(IOError):
  """No usable checkpoint, or one that does not fit the current model."""


class PartsUnavailableError(CheckpointError):
  """Every readable checkpoint needs data that is gone or damaged (e.g.
  its replay save). `problems`: [(checkpoint path, error)], newest first."""

  def __init__(self, message, problems):
    super().__init__(message)
    self.problems = problems


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
    self.loaded = None  # Path of the checkpoint `load` returned last.
    os.makedirs(directory, exist_ok=True)

  def names(self):
    """Complete checkpoint names, oldest first."""
    return sorted(n for n in os.listdir(self.directory)
                  if n.startswith('ckpt-') and not n.endswith('.tmp'))

  def save(self, tensors, state):
    """Writes a new checkpoint atomically; returns its path.

    Also deletes the temporary files a killed save left (only the run that
    holds the run lock saves, so none of them is being written).
    """
    for name in os.listdir(self.directory):
      if name.endswith('.tmp'):
        path = os.path.join(self.directory, name)
        if os.path.isdir(path):
          shutil.rmtree(path)
        else:
          os.remove(path)
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
    files.write_atomic(os.path.join(self.directory, LATEST), name,
                       fsync=True)
    _fsync(self.directory)

  def load(self):
    """(tensors, state) of the newest valid checkpoint, or None if none.

    Corrupt checkpoints are skipped with a warning naming them; if
    checkpoints exist but none is valid, raises CheckpointError.
    """
    for path, tensors, state in self.readable():
      self.loaded = path
      return tensors, state
    return None

  def readable(self):
    """Yields (path, tensors, state) of every valid checkpoint, newest
    first. Corrupt ones are skipped with a warning naming them; if
    checkpoints exist but none is valid, raises CheckpointError at the end.
    """
    names = self.names()
    errors = []
    for name in reversed(names):
      try:
        tensors, state = self._read(name)
      except (OSError, ValueError, KeyError) as e:
        errors.append(f'{name}: {e}')
        warnings.warn(f'Skipping unreadable checkpoint {name}: {e}')
        continue
      yield os.path.join(self.directory, name), tensors, state
    if len(errors) == len(names) and names:
      raise CheckpointError(
          f'No valid checkpoint in {self.directory}: ' + '; '.join(errors))

  def states(self):
    """{name: state.json contents} of the checkpoints whose state.json
    reads (tensors are not read or checked)."""
    states = {}
    for name in self.names():
      try:
        with open(os.path.join(self.directory, name, 'state.json')) as f:
          states[name] = json.load(f)
      except (OSError, ValueError):
        pass
    return states

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


# --- A checkpoint of named parts -------------------------------------------

FORMAT = 2  # 1: dreamer_tf < 0.2, one flat tensor list decoded by the loop.
LISTS = '__lists__'  # Metadata key: {key: length} of a part's array lists.


class Checkpoint:
  """The state of a run as named parts, saved and restored as one commit.

  parts: {name: object with get_state() and set_state(state)}. A part's
  state is a dict whose values are numpy arrays, lists of numpy arrays or
  JSON values; arrays go to tensors.npz (as `<part>/<key>`, list items as
  `<part>/<key>/<i>` with the list lengths under `LISTS` in state.json), the
  rest to state.json. Parts are restored in the
  order given, so parts that validate (the agent's model signature, the
  run's seed) come before parts that change files (the logger).

  unavailable: exception types a part's `set_state` raises when data the
  checkpoint names is gone or damaged (a replay save): `load` then resumes
  from the previous checkpoint, restoring every part from it, so no part
  comes from another generation than the others.
  """

  def __init__(self, directory, parts, keep=2, unavailable=()):
    self.checkpointer = Checkpointer(directory, keep)
    self.directory = directory
    self.parts = dict(parts)
    self.unavailable = tuple(unavailable)

  def save(self):
    """Collects every part's state and writes a checkpoint atomically."""
    tensors, names, meta = [], [], {}
    for part, obj in self.parts.items():
      meta[part], lists = {}, {}
      for key, value in obj.get_state().items():
        if isinstance(value, np.ndarray):
          names.append(f'{part}/{key}')
          tensors.append(value)
        elif (isinstance(value, list) and value
              and all(isinstance(v, np.ndarray) for v in value)):
          lists[key] = len(value)
          for i, item in enumerate(value):
            names.append(f'{part}/{key}/{i}')
            tensors.append(item)
        else:
          meta[part][key] = value
      if lists:
        meta[part][LISTS] = lists
    return self.checkpointer.save(tensors, dict(
        format=FORMAT, parts=meta, tensor_names=names))

  def load(self, accept=None):
    """Restores the newest valid checkpoint whose parts all restore.

    Returns its state.json contents, or None when there is no checkpoint.
    A checkpoint whose part raises one of `unavailable` is skipped with a
    warning; when every readable one is, raises PartsUnavailableError.
    Raises CheckpointError for a checkpoint of an older layout or another
    configuration (not skipped: an older one would not fit either).
    accept: state.json contents -> bool, the checkpoints to consider (all
    by default; the workers of a run take the position all of them have).
    When checkpoints exist and none is accepted, raises CheckpointError.
    """
    problems, considered = [], 0
    for path, tensors, state in self.checkpointer.readable():
      if accept is not None and not accept(state):
        continue
      considered += 1
      try:
        self._restore(unpack(tensors, state, self.directory))
      except self.unavailable as e:
        problems.append((path, e))
        warnings.warn(f'Cannot resume from {path}: {e} Trying the previous '
                      'checkpoint.')
        continue
      self.checkpointer.loaded = path
      return state
    if problems:
      raise PartsUnavailableError(
          f'No checkpoint in {self.directory} can be resumed:\n' +
          '\n'.join(f'  {os.path.basename(p)}: {e}' for p, e in problems),
          problems)
    if accept is not None and not considered and self.checkpointer.names():
      raise CheckpointError(
          f'No valid checkpoint in {self.directory} is the one asked for '
          '(the position every worker of the run has): restore this '
          "worker's directory from a backup, or start a new --logdir.")
    return None

  def _restore(self, states):
    """Sets every part's state, in order."""
    for part, obj in self.parts.items():
      if part not in states:
        raise CheckpointError(
            f'The checkpoint in {self.directory} has no {part!r} part '
            f'(it has {sorted(states)}): it was written by another kind of '
            'run. Use a new --logdir.')
      obj.set_state(states[part])


def unpack(tensors, state, directory):
  """{part: state} of a checkpoint read by `Checkpointer.load`."""
  if state.get('format') != FORMAT:
    raise CheckpointError(
        f'The checkpoint in {directory} was written by dreamer_tf before '
        '0.2 (one flat tensor list; format '
        f"{state.get('format', 1)}), which this version cannot read. Resume "
        'it with the commit that wrote it (git checkout 5258955) or start '
        'a new --logdir.')
  states = {part: dict(meta) for part, meta in state['parts'].items()}
  tensors = dict(zip(state['tensor_names'], tensors))
  for part, meta in states.items():
    lists = meta.pop(LISTS, {})
    for key, length in lists.items():
      meta[key] = [tensors.pop(f'{part}/{key}/{i}') for i in range(length)]
  for name, value in tensors.items():
    part, key = name.split('/', 1)
    states.setdefault(part, {})[key] = value
  return states


class AgentPart:
  """Checkpoint part of an agent: its model signature (the settings that
  fix its shapes) and state tensors (`Agent.get_state()`). Restoring a
  checkpoint of another model configuration raises CheckpointError naming
  every differing setting and `fix`, what the user should do."""

  def __init__(self, agent, directory, fix):
    self.agent, self.directory, self.fix = agent, directory, fix

  def get_state(self):
    return dict(signature=json.loads(json.dumps(self.agent.signature())),
                variables=self.agent.get_state())

  def set_state(self, state):
    diff = signature_diff(
        state['signature'], json.loads(json.dumps(self.agent.signature())))
    if diff:
      raise CheckpointError(
          f'The checkpoint in {self.directory} was written by a different '
          'model configuration:\n  ' + '\n  '.join(diff) + f'\n{self.fix}')
    self.agent.set_state(state['variables'])


def read(directory):
  """{part: state} of the newest valid checkpoint in `directory` (as
  `Checkpoint.load` would restore it), or None when there is none."""
  checkpointer = Checkpointer(directory) if os.path.isdir(directory) else None
  loaded = checkpointer and checkpointer.load()
  return unpack(*loaded, directory) if loaded else None
