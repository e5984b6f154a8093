"""run/memory.py: freed heap memory goes back to the operating system."""
import gc
import platform

import pytest

from dreamer_tf.run import memory


def _rss_bytes():
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) * 1024
  raise AssertionError('no VmRSS')


@pytest.mark.skipif(platform.system() != 'Linux' or
                    platform.libc_ver()[0] != 'glibc',
                    reason='malloc_trim is glibc')
def test_release_gives_freed_heap_pages_back():
  # 300 MB in 4 KiB blocks: below glibc's mmap threshold, so they live on
  # the heap and stay with the process after they are freed.
  blocks = [bytearray(4096) for _ in range(300 * 256)]
  for block in blocks[::4096]:
    block[0] = 1
  before_free = _rss_bytes()
  # Free all but the last block: the heap's top stays in use, so glibc's
  # own trimming at free() cannot give the pages back.
  keep = blocks[-1]
  del blocks
  gc.collect()
  freed = _rss_bytes()
  assert memory.release_free_memory()
  released = _rss_bytes()
  assert freed - released > 200 * 2**20, (before_free, freed, released)
  del keep

