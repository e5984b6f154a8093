"""run/memory.py: freed heap memory goes back to the operating system."""
import json
import platform
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Runs in a fresh interpreter: in a test worker, other tests' allocations
# (TensorFlow's threads and arenas) decide where the blocks land.
PROBE = r'''
import gc, json, sys
from dreamer_tf.run import memory

def rss():
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) * 1024

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
