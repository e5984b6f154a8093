"""dreamer_tf/files.py: atomic writes keep the old file on any failure."""
import os

import pytest

from dreamer_tf import files


def test_writes_text_and_bytes_and_replaces(tmp_path):
  path = str(tmp_path / 'a.json')
  assert files.write_atomic(path, '{"x": 1}') == path
  assert open(path).read() == '{"x": 1}'
  files.write_atomic(path, b'\x00\x01', fsync=True)
  assert open(path, 'rb').read() == b'\x00\x01'
  assert os.listdir(tmp_path) == ['a.json']  # No temp file is left.


def test_the_umask_sets_the_permissions(tmp_path):
  path = str(tmp_path / 'a')
  old = os.umask(0o022)
  try:
    files.write_atomic(path, 'x')
  finally:
    os.umask(old)
  assert os.stat(path).st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
  path = str(tmp_path / 'a')
  files.write_atomic(path, 'old')
  def full_disk(fd):
    raise OSError(28, 'No space left on device')
  monkeypatch.setattr(os, 'fsync', full_disk)
  with pytest.raises(OSError, match='No space'):
    files.write_atomic(path, 'new', fsync=True)
  assert open(path).read() == 'old'
  assert os.listdir(tmp_path) == ['a']


def test_a_writer_function_and_a_named_temp(tmp_path):
  path, temp = str(tmp_path / 'a.npz'), str(tmp_path / '.tmp-a.npz')
  files.write_atomic(path, lambda f: f.write(b'abc'), temp=temp)
  assert open(path, 'rb').read() == b'abc'
  def fails_halfway(f):
    f.write(b'ab')
    raise ValueError('cannot serialise')
  with pytest.raises(ValueError, match='serialise'):
    files.write_atomic(path, fails_halfway, temp=temp)
  assert open(path, 'rb').read() == b'abc'
  assert sorted(os.listdir(tmp_path)) == ['a.npz']


def test_refuses_what_is_not_text_or_bytes(tmp_path):
  with pytest.raises(TypeError, match='str, bytes or a function of the '
                     'file, got dict'):
    files.write_atomic(str(tmp_path / 'a'), {'x': 1})
  assert not os.listdir(tmp_path)
