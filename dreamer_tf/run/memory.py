"""Give the heap memory a compile freed back to the operating system, and
read how much memory this process holds.

XLA's compile of the update allocates ~0.5-0.65 GiB of working memory and
frees it, but glibc's allocator keeps the freed pages in the process: a
size1m vector run stays at ~2.1-2.25 GiB of RSS where a process that loads
the same update from the compile cache holds ~1.7 GiB. `malloc_trim(0)`
returns those pages. The peak RSS, reached during the compile, is
unchanged; what the run holds for the hours after it is smaller, which
matters when several runs share a machine.

Measured 2026-11-28 on the 5-d vector size1m agent (float32, XLA, batch
16x64; `launch.benchmark`'s `rss_phases`,
docs/benchmarks/rss-phases-2026-11-28.json), RSS in GiB after each phase:
Python 0.04, `import tensorflow` 0.64, agent built 0.75, update traced
0.83, first update (compile) 2.11 = the peak, after `malloc_trim` 1.56;
a process loading the update from the compile cache peaks at 1.68 and
trims to 1.47.
"""
import ctypes
import ctypes.util

GIB = 2**30


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


def usage(status='/proc/self/status'):
  """This process's resident memory now and at its peak, in GiB:
  {rss_gib, peak_gib} (VmRSS and VmHWM of Linux's `status` file), or None
  where there is no such file (macOS). launch.benchmark reports it at each
  phase of a case (import, build, trace, compile, updates, trim)."""
  try:
    with open(status) as f:
      fields = dict(line.split(':', 1) for line in f if ':' in line)
  except OSError:
    return None
  try:
    return {name: round(int(fields[key].split()[0]) * 1024 / GIB, 3)
            for name, key in (('rss_gib', 'VmRSS'), ('peak_gib', 'VmHWM'))}
  except (KeyError, ValueError, IndexError):
    return None
