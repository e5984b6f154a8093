"""A user error ends a launcher with one line on stderr; a bug shows its
traceback.

  @errors.exits_on_user_error('launch.train')
  def main(argv):
    with errors.user_input():   # flags and config are read here
      ...
    ...                         # the work

A user error ends the process with `launch.<name>: <message>` on stderr and
exit status 1 (`sys.exit`), without a traceback; `--debug`
(launch/common_flags.py) re-raises it instead, traceback and all. Every
other exception is left alone: it is a bug, and its traceback is what a
bug report needs. absl already reports bad flag values (types, bounds,
required flags: "FATAL Flags parsing error: ...") and `app.UsageError` on
one line.

Which exceptions are user errors, and why (only these, never Exception):

* `UserError`, and a ValueError or TypeError raised inside `user_input()`:
  a launcher reads the user's flags and configuration there, so a bad
  value is the user's. Outside it the same types may come from a bug (a
  shape mismatch in the model is a ValueError too) and keep their
  traceback.
* `ConfigError` (dreamer_tf/config_check.py): an unknown, ill-typed or
  ignored gin binding, a malformed value, a bad seed, wherever it is
  parsed (a run's config.gin too).
* OSError about a path: not found, not a directory, is a directory,
  exists, no permission, read-only file system, no space left. The
  launchers touch only paths the user gave or that derive from them
  (--logdir, --out, gin files, run directories), and the file system's
  answer, with the path, is what the user must fix.
* The run directory's own errors, raised with a message that names the
  fix: `CheckpointError` (no usable checkpoint, or one of another model or
  seed), `RunRecordError` (a resume with another env or budget),
  `RunLockedError` (another run writes the logdir), `ReplayCorruptError`
  (a damaged replay save).
* `EnvBuildError` (dreamer_tf/envs/parallel.py) of a ValueError,
  TypeError, LookupError or ImportError: an env worker's constructor
  rejected the env id or its env_kwargs, or misses a package. Any other
  exception of a constructor is a bug of the env and keeps its traceback
  (the worker's, in the chained cause).

* The errors that stop a run at its last good state and checkpoint it
  (`dreamer_tf/run/failures.py`: a crash-looping env, a non-finite or
  malformed env output, too many skipped updates), and a lost worker of a
  multi-worker run (`WorkerLostError`). Not the user's input,
  but their message names the env, the step, the value and the fix, and
  their note where the run stopped; a traceback adds nothing to act on.

A launcher whose standard output is a pipe (or socket) that its reader
closed early (`python -m launch.tables ... | head`, a killed `tee`) ends
with one line on stderr, '<name>: stopped: the reader of its standard
output closed it', and exit status 141 (128 + SIGPIPE, as the shell
reports a process that SIGPIPE ended: not 1, which is a user error's),
instead of a BrokenPipeError traceback; --debug re-raises it. What main
printed is flushed before it returns, so the error cannot escape at the
interpreter's exit either. A BrokenPipeError of any other pipe (an env
worker's) is a bug and keeps its traceback.

gin re-raises an error of a configurable as a proxy of a subclass of its
type whose message has "In call to configurable '<name>' (...)" appended;
the error is judged, and its message shown, as the original it wraps (and
re-raised as the original when it has a cause, which the proxy hides).
"""
import contextlib
import errno
import functools
import os
import select
import sys

from absl import flags

from dreamer_tf.config_check import ConfigError
from dreamer_tf.envs.parallel import EnvBuildError
from dreamer_tf.replay.disk import ReplayCorruptError
from dreamer_tf.run import failures
from dreamer_tf.run.checkpoint import CheckpointError
from dreamer_tf.run.lock import RunLockedError
from dreamer_tf.run.record import RunRecordError
from launch import common_flags  # noqa: F401  (--debug)


class UserError(Exception):
  """Something the user gave (a flag, the config, a path) cannot work; the
  message names it and the fix."""


# Errors that are the user's wherever they are raised (module doc).
RUN_DIRECTORY_ERRORS = (CheckpointError, RunRecordError, RunLockedError,
                        ReplayCorruptError)
# OSErrors about a path the user can fix: by type, and (for the plain
# OSError the other numbers give) by errno.
PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError,
               FileExistsError, PermissionError)
PATH_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                         errno.ENAMETOOLONG, errno.ENOTEMPTY})
# What an env constructor raises for its arguments (the env id, env_kwargs)
# or a missing package, rather than for a bug of the env.
ENV_ARGUMENT_ERRORS = (ValueError, TypeError, LookupError, ImportError)
# The types among which user errors are (`is_user_error` decides).
CANDIDATES = (UserError, ConfigError, OSError, EnvBuildError,
              *RUN_DIRECTORY_ERRORS, *failures.STOPPING_ERRORS)


def unwrap(error):
  """The error gin's proxies wrap (module doc), or `error` itself.

  gin raises its proxy `from None` while it handles the original, which is
  therefore the proxy's `__context__`; the proxy's class is a direct
  subclass of the original's, with the same name.
  """
  while (error.__suppress_context__ and error.__context__ is not None
         and type(error).__bases__ == (type(error.__context__),)
         and type(error).__name__ == type(error.__context__).__name__):
    error = error.__context__
  return error


def is_user_error(error):
  """Whether `error` (unwrapped) is a user error (module doc)."""
  if isinstance(error, EnvBuildError):
    return isinstance(error.error, ENV_ARGUMENT_ERRORS)
  if isinstance(error, (UserError, ConfigError, *RUN_DIRECTORY_ERRORS,
                        *PATH_ERRORS, *failures.STOPPING_ERRORS)):
    return True
  return isinstance(error, OSError) and error.errno in PATH_ERRNOS


def message(error):
  """The text of a user error (unwrapped): its message; an OSError of the
  file system as 'strerror: path'."""
  if (isinstance(error, OSError) and error.strerror
      and error.filename is not None):
    text = f'{error.strerror}: {error.filename}'
    if error.filename2 is not None:
      text += f' -> {error.filename2}'
    return text
  text = str(error).strip() or type(error).__name__
  return '\n'.join([text, *getattr(error, '__notes__', ())])


@contextlib.contextmanager
def user_input():
  """Within it, a ValueError or TypeError is a user error: wrap the code
  that reads flags and configuration (module doc)."""
  try:
    yield
  except (ValueError, TypeError) as e:
    raise UserError(message(unwrap(e))) from e


CLOSED_STDOUT_STATUS = 141  # 128 + SIGPIPE (module doc).


def stdout_reader_gone():
  """Whether standard output is a pipe or socket whose reader has closed
  it (Linux reports POLLERR on the write end of such a pipe, POLLHUP on a
  socket whose peer is gone)."""
  try:
    fd = sys.stdout.fileno()
  except (AttributeError, OSError, ValueError):  # None, closed, in memory
    return False
  poller = select.poll()
  poller.register(fd, select.POLLOUT)
  return any(event & (select.POLLERR | select.POLLHUP)
             for _, event in poller.poll(0))


def exit_for_a_closed_stdout(name):
  """Ends the process with status 141 and one line on stderr (module
  doc); standard output points at /dev/null first, so that the
  interpreter's last flush of what is still buffered raises nothing."""
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, sys.stdout.fileno())
  os.close(devnull)
  print(f'{name}: stopped: the reader of its standard output closed it.',
        file=sys.stderr)
  sys.exit(CLOSED_STDOUT_STATUS)


def exits_on_user_error(name):
  """Decorates a launcher's `main(argv)`: a user error ends the process
  with '<name>: <message>' (exit status 1) unless --debug is given; a
  closed standard output ends it with status 141 (module doc)."""

  def decorate(main):

    @functools.wraps(main)
    def wrapper(argv):
      try:
        result = main(argv)
        if sys.stdout is not None:  # Here, where a closed reader is caught.
          sys.stdout.flush()
        return result
      except BrokenPipeError:
        if flags.FLAGS['debug'].value or not stdout_reader_gone():
          raise
        exit_for_a_closed_stdout(name)
      except CANDIDATES as e:
        error = unwrap(e)
        if flags.FLAGS['debug'].value or not is_user_error(error):
          if error is not e and error.__cause__ is not None:
            # gin's proxy hides the cause (e.g. an env worker's traceback).
            raise error from error.__cause__
          raise
        sys.exit(f'{name}: {message(error)}')

    return wrapper

  return decorate
