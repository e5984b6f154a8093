"""Give the heap memory a compile freed back to the operating system.

XLA's compile of the update allocates ~0.5-0.65 GiB of working memory and
frees it, but glibc's allocator keeps the freed pages in the process: a
size1m vector run stays at ~2.25 GiB of RSS where a process that loads the
same update from the compile cache holds ~1.73 GiB. `malloc_trim(0)`
returns those pages (measured: 2.25 -> 1.61 GiB after the first update of
the 5-d vector size1m agent; README "Speed"). The peak RSS, reached
during the compile, is unchanged; what the run holds for the hours after
it is smaller, which matters when several runs share a machine.
"""
import ctypes
import ctypes.util


def release_free_memory():
  """Calls glibc's `malloc_trim(0)`. Returns True when memory was given
  back, False when there was none to give or the C library is not glibc
  (macOS, musl: nothing to do)."""
  name = ctypes.util.find_library('c')
  try:
    libc = ctypes.CDLL(name)
    trim = libc.malloc_trim
  except (OSError, AttributeError, TypeError):
    return False
  trim.argtypes = [ctypes.c_size_t]
  trim.restype = ctypes.c_int
  return bool(trim(0))
