"""The persistent XLA compile cache: where, when it can be turned on, and
pruning. (A repeated launch loading its compiled functions from it is
tested end to end in tests/run/test_train.py's exact-resume test.)"""
import os

import pytest

from dreamer_tf.run import compile_cache

FLAG = compile_cache.FLAG


def test_default_directory_prefers_the_env_var_then_xdg_then_home():
  assert compile_cache.default_directory(
      {'DREAMER_TF_COMPILE_CACHE': '/c', 'XDG_CACHE_HOME': '/x'}) == '/c'
  assert compile_cache.default_directory(
      {'XDG_CACHE_HOME': '/x'}) == '/x/dreamer_tf/xla'
  assert compile_cache.default_directory({}) == os.path.join(
      os.path.expanduser('~'), '.cache', 'dreamer_tf', 'xla')


def test_enable_sets_the_flag_in_a_version_directory_and_keeps_other_flags(
    tmp_path):
  environ = {'TF_XLA_FLAGS': '--tf_xla_auto_jit=2'}
  path = compile_cache.enable(str(tmp_path / 'cache'), environ=environ,
                              modules={})
  version = compile_cache.tensorflow_version()
  assert version[0].isdigit()
  assert path == str(tmp_path / 'cache' / f'tf-{version}')
  assert os.path.isdir(path)
  assert environ['TF_XLA_FLAGS'] == f'--tf_xla_auto_jit=2 {FLAG}={path}'


def test_enable_is_off_for_an_empty_directory_or_a_users_own_flag(tmp_path):
  environ = {}
  assert compile_cache.enable('', environ=environ, modules={}) is None
  assert environ == {}
  own = {'TF_XLA_FLAGS': f'{FLAG}=/mine'}
  assert compile_cache.enable(str(tmp_path), environ=own, modules={}) is None
  assert own == {'TF_XLA_FLAGS': f'{FLAG}=/mine'}
  assert not os.listdir(tmp_path)


def test_enable_after_tensorflow_loaded_is_refused_with_the_fix(tmp_path):
  environ = {}
  with pytest.raises(compile_cache.CompileCacheError,
                     match='before TensorFlow loads.*--compile_cache='):
    compile_cache.enable(str(tmp_path), environ=environ,
                         modules={'tensorflow': object()})
  assert environ == {}


def test_enable_names_a_directory_that_cannot_be_created(tmp_path):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(compile_cache.CompileCacheError,
                     match=r'--compile_cache=.*file/cache cannot be created.*'
                     'Pass a directory you can write to'):
    compile_cache.enable(str(tmp_path / 'file' / 'cache'), environ={},
                         modules={})


def _entry(path, name, size, mtime):
  file = path / f'{compile_cache.PREFIX}__{name}__XLA_CPU_JIT.pb'
  file.write_bytes(b'x' * size)
  os.utime(file, (mtime, mtime))
  return file


def test_prune_deletes_the_oldest_entries_down_to_the_limit(tmp_path):
  old = _entry(tmp_path, 'old', 400, 1000)
  middle = _entry(tmp_path, 'middle', 400, 2000)
  new = _entry(tmp_path, 'new', 400, 3000)
  other = tmp_path / 'notes.txt'
  other.write_bytes(b'y' * 5000)  # Not an entry: never counted or deleted.
  assert compile_cache.prune(str(tmp_path), 1200) == 0
  assert compile_cache.prune(str(tmp_path), 900) == 1
  assert not old.exists() and middle.exists() and new.exists()
  assert compile_cache.prune(str(tmp_path), 0) == 2
  assert not middle.exists() and not new.exists() and other.exists()
  assert compile_cache.prune(str(tmp_path / 'missing'), 0) == 0


def test_enable_prunes_and_describe_counts_entries(tmp_path):
  version_dir = tmp_path / f'tf-{compile_cache.tensorflow_version()}'
  version_dir.mkdir()
  _entry(version_dir, 'a', 3 * 2**20, 1000)
  _entry(version_dir, 'b', 2 * 2**20, 2000)
  path = compile_cache.enable(str(tmp_path), max_bytes=4 * 2**20,
                              environ={}, modules={})
  assert compile_cache.describe(path) == (
      f'XLA compile cache: {path} (1 entry, 2 MB)')
