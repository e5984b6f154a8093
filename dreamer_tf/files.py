"""Atomic file writes: a reader sees the old file or the new one, never a
part of either.

`write_atomic` writes to a temp file of its own in the target's directory
(named by process and a random tag, so concurrent writers never share
one; created with the umask's permissions, as `open` would create the
target) and renames it over the target
(`os.replace`, atomic on POSIX within one file system). With `fsync` the
data reaches the disk before the rename, so a power loss cannot leave the
new name pointing at an empty file; the run's checkpoints use it, results
and indexes need not. On any failure the temp file is removed and the old
file is left as it was; only a process killed mid-write leaves its temp
file behind (`<file>.<pid>-<tag>.tmp`, never read; the checkpoint and
the replay delete theirs by name on their next save).
"""
import os
import uuid


def write_atomic(path, data, fsync=False, temp=None):
  """Writes `data` to `path` atomically; returns `path`.

  data: str, bytes, or a function that writes into the open binary file
  (e.g. `np.savez`). temp: the temp file's path, for writers that find
  and delete their own leftovers by name (default: beside `path`, named
  by process and a random tag).
  """
  if not (isinstance(data, (str, bytes)) or callable(data)):
    raise TypeError(f'write_atomic({path!r}) takes str, bytes or a function '
                    f'of the file, got {type(data).__name__}.')
  tmp = temp or f'{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp'
  f = open(tmp, 'wb' if temp else 'xb')  # pylint: disable=consider-using-with
  try:
    with f:
      if callable(data):
        data(f)
      else:
        f.write(data.encode() if isinstance(data, str) else data)
      if fsync:
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path
