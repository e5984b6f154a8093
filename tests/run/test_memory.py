"""run/memory.py: freed heap memory goes back to the operating system; the
process's resident memory and its peak are read."""
import json
import platform
import subprocess
import sys

import pytest

from dreamer_tf.run import memory
from tests.conftest import ROOT

# Runs in a fresh interpreter: in a test worker, other tests' allocations
# (TensorFlow's threads and arenas) decide where the blocks land.
PROBE = r'''
import gc, json, sys
from dreamer_tf.run import memory

def rss():
  return memory.usage()['rss_gib'] * memory.GIB  # bytes, to ~1 MB

# 300 MB in 4 KiB blocks: below glibc's mmap threshold, so they live on
# the heap and stay with the process after they are freed.
blocks = [bytearray(4096) for _ in range(300 * 256)]
# Free all but the last block: the heap's top stays in use, so glibc's own
# trimming at free() cannot give the pages back.
keep = blocks[-1]
del blocks
gc.collect()
freed = rss()
trimmed = memory.release_free_memory() if sys.argv[1] == 'trim' else None
print(json.dumps(dict(freed=freed, after=rss(), trimmed=trimmed)))
'''


def _probe(mode):
  proc = subprocess.run([sys.executable, '-c', PROBE, mode], cwd=ROOT,
                        capture_output=True, text=True, check=True,
                        timeout=120)
  return json.loads(proc.stdout)


@pytest.mark.skipif(platform.system() != 'Linux' or
                    platform.libc_ver()[0] != 'glibc',
                    reason='malloc_trim is glibc')
def test_release_gives_freed_heap_pages_back():
  trimmed = _probe('trim')
  assert trimmed['trimmed'] is True
  assert trimmed['freed'] - trimmed['after'] > 200 * 2**20, trimmed
  # Without the call the pages stay: the drop is the trim's.
  kept = _probe('none')
  assert kept['freed'] - kept['after'] < 50 * 2**20, kept


def test_usage_reads_rss_and_peak_of_a_status_file(tmp_path):
  status = tmp_path / 'status'
  status.write_text('Name:\tpython\nVmHWM:\t 2097152 kB\nVmRSS:\t 1048576 kB\n'
                    'Threads:\t12\n')
  assert memory.usage(str(status)) == dict(rss_gib=1.0, peak_gib=2.0)
  # No such file (macOS) or a file without the fields: no numbers.
  assert memory.usage(str(tmp_path / 'none')) is None
  (tmp_path / 'other').write_text('Name:\tpython\n')
  assert memory.usage(str(tmp_path / 'other')) is None


@pytest.mark.skipif(platform.system() != 'Linux', reason='/proc is Linux')
def test_usage_of_this_process_is_positive_and_peak_at_least_current():
  now = memory.usage()
  assert 0 < now['rss_gib'] <= now['peak_gib']
