"""One writer per run directory: `<logdir>/run.lock`.

`RunLock(logdir)` takes an exclusive `flock` on <logdir>/run.lock and
writes who holds it (pid, host, start time, command) into the file. A
second run on the same logdir fails at once with `RunLockedError` naming
the holder, before it reads or writes anything else: two writers would
interleave checkpoints, replay chunks and JSONL logs.

The kernel releases a flock when its process dies, however it dies (kill
-9 included), so a killed run never leaves the lock stuck: the next run
takes it and overwrites the stale holder text. The lock file's descriptor
is not inherited by env worker processes (Python opens files
non-inheritable). On network filesystems flock may be local to one host
(NFS without lock support); run one writer per logdir there yourself.
No TensorFlow here.
"""
import fcntl
import json
import os
import socket
import sys
import time

LOCK_FILE = 'run.lock'


class RunLockedError(RuntimeError):
  """Another live process is writing this run directory."""


class RunLock:
  """Context manager: holds <logdir>/run.lock for this process."""

  def __init__(self, logdir):
    self.path = os.path.join(logdir, LOCK_FILE)
    self._fd = None

  def __enter__(self):
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd)
      os.close(fd)
      raise RunLockedError(
          f'Another run is writing {os.path.dirname(self.path)}: '
          f'{_describe(holder)}. Wait for it to finish or stop it (Ctrl-C '
          'saves a checkpoint; it resumes with the same command), or use '
          'another --logdir.') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(dict(
        pid=os.getpid(), host=socket.gethostname(),
        started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        command=' '.join(sys.argv))).encode(), 0)
    os.fsync(fd)
    self._fd = fd
    return self

  def __exit__(self, *exc):
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None


def _read_holder(fd):
  """The holder's record, or {} while it is being written."""
  try:
    return json.loads(os.pread(fd, 4096, 0).decode() or '{}')
  except (ValueError, UnicodeDecodeError):
    return {}


def _describe(holder):
  if not holder:
    return 'a process that is starting'
  return (f"pid {holder.get('pid')} on {holder.get('host')}, started "
          f"{holder.get('started')} ({holder.get('command')})")
