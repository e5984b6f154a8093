"""A persistent XLA compile cache: a resumed or repeated run does not pay
the compile again.

TensorFlow can write every XLA executable it compiles to a directory and
load it from there the next time a process compiles the same function
(`TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=DIR`). An entry is found
again when the function's name, its argument signature and its HLO
module are the same, which they are when the same command runs again: a
resume after a preemption or a kill, an evaluation of a checkpoint, a
second seed of the same config. A function that differs in any of these
compiles afresh and adds an entry; nothing stale is ever loaded for it.

TensorFlow reads TF_XLA_FLAGS once, when it loads, so `enable` must run
before the process imports TensorFlow (the launchers call it first thing
in `main`) and refuses otherwise. The directory holds one subdirectory per
TensorFlow version, as executables compiled by one XLA need not load in
another. Each entry is one file (~10 MB for the debug agent's update,
more for larger models); `enable` deletes the oldest entries once the
directory holds more than `max_bytes`.

This module never imports TensorFlow.
"""
import importlib.metadata
import os
import sys

# Where the launchers cache by default: $DREAMER_TF_COMPILE_CACHE, else
# $XDG_CACHE_HOME/dreamer_tf/xla, else ~/.cache/dreamer_tf/xla.
ENV_VAR = 'DREAMER_TF_COMPILE_CACHE'
MAX_BYTES = 4 * 2**30
FLAG = '--tf_xla_persistent_cache_directory'
PREFIX = 'xla_compile_cache'  # TensorFlow's file name prefix.


class CompileCacheError(ValueError):
  """The cache cannot be used as asked (a user error: flag or path)."""


def default_directory(environ=None):
  """The cache directory when the user names none."""
  environ = os.environ if environ is None else environ
  if environ.get(ENV_VAR):
    return environ[ENV_VAR]
  base = environ.get('XDG_CACHE_HOME') or os.path.join(
      os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'dreamer_tf', 'xla')


def tensorflow_version():
  """The installed TensorFlow's version, read without importing it."""
  for name in ('tensorflow', 'tensorflow-cpu', 'tf-nightly'):
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      continue
  return 'unknown'


def version_directory(directory):
  """Where the installed TensorFlow's entries go in the cache `directory`."""
  return os.path.join(os.path.expanduser(directory),
                      f'tf-{tensorflow_version()}')


def enable(directory, max_bytes=MAX_BYTES, environ=None, modules=None):
  """Turns the cache on for this process and the processes it starts.

  Returns the version subdirectory in use, or None when `directory` is ''
  (off) or TF_XLA_FLAGS already names a cache directory (the user's
  setting is kept). Raises CompileCacheError when TensorFlow is already
  loaded (too late to take effect) or the directory cannot be written.
  """
  environ = os.environ if environ is None else environ
  modules = sys.modules if modules is None else modules
  if not directory:
    return None
  flags = environ.get('TF_XLA_FLAGS', '')
  if FLAG in flags:
    return None
  if 'tensorflow' in modules:
    raise CompileCacheError(
        'The XLA compile cache must be turned on before TensorFlow loads: '
        'call dreamer_tf.run.compile_cache.enable() before importing '
        'tensorflow, or pass --compile_cache= to run without it.')
  path = version_directory(directory)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise CompileCacheError(
        f'--compile_cache={directory} cannot be created ({e.strerror}). '
        'Pass a directory you can write to, or --compile_cache= to run '
        'without the cache.') from e
  if not os.access(path, os.W_OK | os.X_OK):
    raise CompileCacheError(
        f'--compile_cache={directory} is not writable. Pass a directory '
        'you can write to, or --compile_cache= to run without the cache.')
  prune(path, max_bytes)
  environ['TF_XLA_FLAGS'] = f'{flags} {FLAG}={path}'.strip()
  return path


def entries(path):
  """[(mtime, bytes, file path)] of the cache entries in `path`, oldest
  first."""
  found = []
  try:
    names = os.listdir(path)
  except FileNotFoundError:
    return []
  for name in names:
    if not name.startswith(PREFIX):
      continue
    file = os.path.join(path, name)
    try:
      stat = os.stat(file)
    except FileNotFoundError:  # Pruned by another process meanwhile.
      continue
    found.append((stat.st_mtime, stat.st_size, file))
  return sorted(found)


def prune(path, max_bytes):
  """Deletes the oldest entries until the rest take at most `max_bytes`.
  Returns the number of entries deleted."""
  found = entries(path)
  total = sum(size for _, size, _ in found)
  deleted = 0
  for _, size, file in found:
    if total <= max_bytes:
      break
    try:
      os.remove(file)
    except FileNotFoundError:
      pass
    total -= size
    deleted += 1
  return deleted


def describe(path):
  """One line for the run's output: where, how many entries, how big."""
  found = entries(path)
  megabytes = sum(size for _, size, _ in found) / 2**20
  count = f'{len(found)} entr{"y" if len(found) == 1 else "ies"}'
  return f'XLA compile cache: {path} ({count}, {megabytes:.0f} MB)'
