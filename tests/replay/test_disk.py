"""On-disk replay format (spec §1.7, §4.3): files, atomicity, corruption.

Replay.save/load behaviour (sampling continues identically) is tested in
test_buffer.py; here: which files a save writes, the commit point, and that
damaged files raise ReplayCorruptError naming them.
"""
import json
import os
import warnings

import numpy as np
import pytest

from dreamer_tf import replay as replay_lib
from dreamer_tf.replay import disk as replay_io
from tests.replay.test_buffer import fill

Replay = replay_lib.Replay
KWARGS = dict(capacity=100, chunk_size=8, length=5, online=False)


def _files(path, kind=''):
  """{name: (inode, mtime_ns)} of the chunk files (of `kind`) in path."""
  return {name: (os.stat(path / name).st_ino, os.stat(path / name).st_mtime_ns)
          for name in os.listdir(path)
          if name.startswith('chunk-') and f'-{kind}' in name}


def _chunk_id(name):
  return int(name.split('-')[1])


def _write_back(replay, batch):
  """Writes deter = stoch = count + 0.5 of the trained steps 1..4."""
  value = batch['count'][:, 1:].astype(np.float32) + 0.5  # [B, 4]
  replay.update(dict(
      stepid=batch['stepid'][:, 1:], deter=np.repeat(value[..., None], 4, -1),
      stoch=np.broadcast_to(value[..., None, None], (*value.shape, 2, 3))))
  return set(batch['count'][:, 1:].ravel().tolist())


def _check_latents(replay, written):
  """Every sampled step holds count + 0.5 if written back, else 0."""
  for _ in range(5):
    batch = replay.sample(16)
    expected = np.where(np.isin(batch['count'], list(written)),
                        batch['count'] + 0.5, 0.0)
    np.testing.assert_array_equal(batch['deter'][..., 3], expected)
    np.testing.assert_array_equal(batch['stoch'][..., 1, 2], expected)


def test_write_back_rewrites_only_latents_files(tmp_path):
  replay = Replay(directory=str(tmp_path), seed=1, **KWARGS)
  fill(replay, 32)  # 4 full chunks, no write-back yet.
  replay.save()
  steps, latents = _files(tmp_path, 'steps'), _files(tmp_path, 'latents')
  assert len(steps) == len(latents) == 4
  batch = replay.sample(3)
  keys = batch['stepid'][:, 0]  # [B, 2] first steps.
  written = _write_back(replay, batch)
  touched = {int(c) + (int(i) + j) // 8 for c, i in keys for j in (1, 4)}
  replay.save()
  # The observations stay where they are, as the same files.
  assert _files(tmp_path, 'steps') == steps
  after = _files(tmp_path, 'latents')
  assert {_chunk_id(n) for n in set(after) - set(latents)} == touched
  assert {_chunk_id(n) for n in set(latents) - set(after)} == touched
  for name in set(after) & set(latents):  # Untouched chunks: kept files.
    assert after[name] == latents[name]
  restored = Replay(directory=str(tmp_path), seed=1, **KWARGS)
  _check_latents(restored, written)
  # Steps files written before the first write-back still hold the stale
  # (zero) latents; the latents files win. Restored replays keep saving
  # only the latents after write-back.
  with np.load(tmp_path / sorted(steps)[0]) as data:
    assert 'deter' in data.files and not data['deter'].any()
  batch = restored.sample(4)
  written |= _write_back(restored, batch)
  restored.save()
  assert _files(tmp_path, 'steps') == steps
  _check_latents(Replay(directory=str(tmp_path), **KWARGS), written)
  # Nothing changed: no chunk file is written.
  before = _files(tmp_path)
  restored.save()
  assert _files(tmp_path) == before


def test_appends_rewrite_both_files_of_the_open_chunk(tmp_path):
  replay = Replay(directory=str(tmp_path), **KWARGS)
  fill(replay, 12)  # Chunk 0 full, chunk 1 holds 4 steps.
  stepid = replay.sample(2)['stepid'][:, 1:]
  replay.update(dict(stepid=stepid, deter=np.ones((2, 4, 4), np.float32)))
  replay.save()
  before = _files(tmp_path)
  fill(replay, 1, start=12)
  replay.save()
  after = _files(tmp_path)
  assert sorted(_chunk_id(n) for n in set(after) - set(before)) == [1, 1]
  # Files written after the first write-back hold no copy of the latents.
  for name in after:
    with np.load(tmp_path / name) as data:
      assert ('deter' in data.files) == ('-latents-' in name), name
      assert ('__priority__' in data.files) == ('-latents-' in name), name


def test_priority_updates_rewrite_only_latents_files(tmp_path):
  replay = Replay(directory=str(tmp_path), **KWARGS)
  fill(replay, 24)
  replay.save()
  steps = _files(tmp_path, 'steps')
  replay.update(dict(stepid=np.array([[[0, 1], [0, 2], [0, 3], [0, 4]]]),
                     priority=[[1.0, 2.0, 3.0, 4.0]]))
  replay.save()
  assert _files(tmp_path, 'steps') == steps
  restored = Replay(directory=str(tmp_path), **KWARGS)
  np.testing.assert_array_equal(restored._chunks[0].prio[:6],
                                [np.inf, 1, 2, 3, 4, np.inf])


def test_index_lists_files_and_latent_keys(tmp_path):
  replay = Replay(directory=str(tmp_path), **KWARGS)
  fill(replay, 10)
  stepid = replay.sample(1)['stepid'][:, 1:]
  replay.update(dict(stepid=stepid, stoch=np.ones((1, 4, 2, 3), np.float32)))
  replay.save()
  index = json.loads((tmp_path / 'index.json').read_text())
  assert index['format'] == replay_io.FORMAT == 3
  assert index['latent_keys'] == ['stoch']
  assert index['spec']['image'] == ['|u1', [8, 8, 3]]
  names = {n for c in index['chunks'] for n in c[6:]} | {
      index['items']['file'], 'index.json', 'index-000001.json'}
  assert names == set(os.listdir(tmp_path))
  assert index['chunks'][0][6:] == ['chunk-0000000000-steps-000001.npz',
                                    'chunk-0000000000-latents-000001.npz']
  # A reader that takes the saved length and chunk size (analysis); a
  # replay's own load checks them.
  directory = replay_io.Directory(str(tmp_path))
  read = directory.load_index(None, None)
  assert (read['length'], read['chunk_size']) == (KWARGS['length'],
                                                  KWARGS['chunk_size'])
  with pytest.raises(ValueError, match='this replay uses'):
    directory.load_index(KWARGS['length'] + 1, None)


def test_corrupt_latents_file_raises_naming_it(tmp_path):
  replay = Replay(directory=str(tmp_path), **KWARGS)
  fill(replay, 20)
  _write_back(replay, replay.sample(4))
  replay.save()
  name = sorted(_files(tmp_path, 'latents'))[1]
  path = tmp_path / name
  good = path.read_bytes()
  path.write_bytes(good[:len(good) // 2])  # Truncated.
  with pytest.raises(replay_lib.ReplayCorruptError, match=name):
    Replay(directory=str(tmp_path), **KWARGS)
  data = bytearray(good)  # A flipped bit in the latents fails the zip CRC.
  data[len(data) // 2] ^= 0xFF
  path.write_bytes(bytes(data))
  with pytest.raises(replay_lib.ReplayCorruptError, match='CRC'):
    Replay(directory=str(tmp_path), **KWARGS)
  with open(path, 'wb') as f:  # A written-back key is missing.
    np.savez(f, __priority__=np.zeros(8, np.float32),
             deter=np.zeros((8, 4), np.float32))
  with pytest.raises(replay_lib.ReplayCorruptError,
                     match=f"{name} hold keys .*'deter', 'image'"):
    Replay(directory=str(tmp_path), **KWARGS)
  with open(path, 'wb') as f:  # Wrong dtype.
    np.savez(f, __priority__=np.zeros(8, np.float32),
             deter=np.zeros((8, 4), np.float16),
             stoch=np.zeros((8, 2, 3), np.float32))
  with pytest.raises(replay_lib.ReplayCorruptError, match=f"{name}: 'deter'"):
    Replay(directory=str(tmp_path), **KWARGS)
  os.remove(path)
  with pytest.raises(replay_lib.ReplayCorruptError, match=name):
    Replay(directory=str(tmp_path), **KWARGS)
  replay.save()  # Rewrites the deleted file.
  assert len(Replay(directory=str(tmp_path), **KWARGS)) == 16


def test_failed_latents_write_keeps_previous_save(tmp_path, monkeypatch):
  replay = Replay(directory=str(tmp_path), **KWARGS)
  fill(replay, 16)
  first = _write_back(replay, replay.sample(4))
  replay.save()
  batch = replay.sample(4)
  replay.update(dict(stepid=batch['stepid'][:, 1:],
                     deter=np.full((4, 4, 4), 9, np.float32)))
  second = set(batch['count'][:, 1:].ravel().tolist())
  real_replace = os.replace

  def failing_replace(src, dst):
    if '-latents-' in dst:
      raise OSError('disk full')
    return real_replace(src, dst)

  monkeypatch.setattr(os, 'replace', failing_replace)
  with pytest.raises(OSError, match='disk full'):
    replay.save()
  monkeypatch.undo()
  _check_latents(Replay(directory=str(tmp_path), **KWARGS), first)
  replay.save()  # A fresh generation: no committed file is overwritten.
  batch = Replay(directory=str(tmp_path), **KWARGS).sample(40)
  rewritten = np.isin(batch['count'], list(second))
  assert rewritten.any() and (batch['deter'][rewritten] == 9).all()


def test_failed_save_keeps_previous_save_valid(tmp_path, monkeypatch):
  kwargs = dict(capacity=100, chunk_size=8, length=5, online=False)
  replay = Replay(directory=str(tmp_path), **kwargs)
  fill(replay, 20)
  replay.save()
  before = sorted(os.listdir(tmp_path))
  fill(replay, 20, start=20)
  stepid = replay.sample(4)['stepid'][:, 1:]
  replay.update(dict(stepid=stepid, deter=np.ones((4, 4, 4), np.float32)))
  real_replace = os.replace

  def failing_replace(src, dst):
    if dst.endswith('index.json'):
      raise OSError('disk full')
    return real_replace(src, dst)

  monkeypatch.setattr(os, 'replace', failing_replace)
  with pytest.raises(OSError, match='disk full'):
    replay.save()
  monkeypatch.setattr(os, 'replace', real_replace)
  restored = Replay(directory=str(tmp_path), **kwargs)
  assert len(restored) == 16 and restored.stats()['steps'] == 20
  assert set(before) <= set(os.listdir(tmp_path))
  batch = restored.sample(20)
  assert (batch['deter'] == 0).all() and batch['count'].max() <= 19
  # The next successful save commits everything and removes orphans.
  replay.save()
  restored = Replay(directory=str(tmp_path), **kwargs)
  assert len(restored) == 36
  assert not [f for f in os.listdir(tmp_path) if f.startswith('.tmp-')]
  assert len([f for f in os.listdir(tmp_path) if f.startswith('chunk-')]
             ) == 2 * restored.stats()['chunks']


def test_failed_chunk_write_keeps_previous_save_valid(tmp_path, monkeypatch):
  kwargs = dict(capacity=100, chunk_size=8, length=5, online=False)
  replay = Replay(directory=str(tmp_path), **kwargs)
  fill(replay, 12)
  replay.save()
  fill(replay, 12, start=12)

  def failing_savez(file, **arrays):
    file.write(b'partial')
    raise OSError('write error')

  monkeypatch.setattr(np, 'savez', failing_savez)
  with pytest.raises(OSError, match='write error'):
    replay.save()
  monkeypatch.undo()
  assert not [f for f in os.listdir(tmp_path) if f.startswith('.tmp-')]
  restored = Replay(directory=str(tmp_path), **kwargs)
  assert restored.stats()['steps'] == 12 and len(restored) == 8


def test_truncated_steps_file_raises_clear_error(tmp_path):
  kwargs = dict(capacity=100, chunk_size=8, length=5, online=False)
  replay = Replay(directory=str(tmp_path), **kwargs)
  fill(replay, 20)
  replay.save()
  name = sorted(_files(tmp_path, 'steps'))[1]
  path = tmp_path / name
  path.write_bytes(path.read_bytes()[:200])
  with pytest.raises(replay_lib.ReplayCorruptError, match=name):
    Replay(directory=str(tmp_path), **kwargs)
  os.remove(path)
  with pytest.raises(replay_lib.ReplayCorruptError, match=name):
    Replay(directory=str(tmp_path), **kwargs)
  # A flipped bit fails the zip CRC; a failed load keeps the current state.
  replay.save()  # Rewrites the deleted file.
  assert len(Replay(directory=str(tmp_path), **kwargs)) == 16
  name = sorted(_files(tmp_path, 'steps'))[0]
  data = bytearray((tmp_path / name).read_bytes())
  data[data.index(b'\x03' * 192) + 5] ^= 0xFF  # Image of step 3.
  (tmp_path / name).write_bytes(bytes(data))
  fill(replay, 3, start=20)
  with pytest.raises(replay_lib.ReplayCorruptError, match='CRC'):
    replay.load()
  assert replay.stats()['steps'] == 23 and len(replay) == 19


def test_restore_rejects_other_sequence_length(tmp_path):
  replay = Replay(directory=str(tmp_path), capacity=100, chunk_size=8,
                  length=5)
  fill(replay, 10)
  replay.save()
  with pytest.raises(ValueError, match='length 5'):
    Replay(directory=str(tmp_path), capacity=100, chunk_size=8, length=6)


def test_unreadable_or_old_index(tmp_path):
  replay = Replay(directory=str(tmp_path), **KWARGS)
  fill(replay, 10)
  replay.save()
  index = json.loads((tmp_path / 'index.json').read_text())
  (tmp_path / 'index.json').write_text('{"format": 2, "len')
  with pytest.raises(replay_lib.ReplayCorruptError, match='index.json'):
    Replay(directory=str(tmp_path), **KWARGS)
  (tmp_path / 'index.json').write_text(json.dumps(dict(index, format=1)))
  with pytest.raises(ValueError, match=r'\(format 1\).*\(format 3;'):
    Replay(directory=str(tmp_path), **KWARGS)
  del index['latent_keys']
  (tmp_path / 'index.json').write_text(json.dumps(index))
  with pytest.raises(replay_lib.ReplayCorruptError, match='latent_keys'):
    Replay(directory=str(tmp_path), **KWARGS)


def test_item_table_must_match_index(tmp_path):
  replay = Replay(directory=str(tmp_path), **KWARGS)
  fill(replay, 10)
  replay.save()
  name = json.loads((tmp_path / 'index.json').read_text())['items']['file']
  disk = replay_io.Directory(str(tmp_path))
  chunk, index, queue = disk.load_items(
      dict(file=name, first=0, next=6), {0: 8, 1: 2})
  np.testing.assert_array_equal(index, range(6))
  with pytest.raises(replay_lib.ReplayCorruptError, match=f'{name} holds 6'):
    disk.load_items(dict(file=name, first=0, next=7), {0: 8, 1: 2})
  with pytest.raises(replay_lib.ReplayCorruptError, match='step 5 of chunk 0'):
    disk.load_items(dict(file=name, first=0, next=6), {0: 5, 1: 2})
  disk.write(name, dict(chunk=chunk, index=index[:3], queue=queue), True)
  with pytest.raises(replay_lib.ReplayCorruptError, match=name):
    Replay(directory=str(tmp_path), **KWARGS)


def test_write_is_atomic(tmp_path, monkeypatch):
  disk = replay_io.Directory(str(tmp_path))
  disk.write('a.bin', b'old', False)
  monkeypatch.setattr(os, 'fsync', lambda fd: (_ for _ in ()).throw(
      OSError('io error')))
  with pytest.raises(OSError, match='io error'):
    disk.write('a.bin', b'new', False)
  monkeypatch.undo()
  assert os.listdir(tmp_path) == ['a.bin']
  assert (tmp_path / 'a.bin').read_bytes() == b'old'
  disk.write('a.npz', dict(x=np.arange(3)), True)
  np.testing.assert_array_equal(disk.load_npz('a.npz')['x'], range(3))
  assert disk.load_npz('a.npz', skip={'x'}) == {}


PRIO = dict(KWARGS, fracs=dict(uniform=0.5, priority=0.5), seed=3)


def _as_format_2(path):
  """Rewrites a save as format 2 wrote it: no selector states."""
  index = json.loads((path / 'index.json').read_text())
  name = index['items']['file']
  disk = replay_io.Directory(str(path))
  table = disk.load_npz(name)
  disk.write(name, {k: table[k] for k in ('chunk', 'index', 'queue')}, True)
  del index['selectors'], index['counts']['update_skipped']
  (path / 'index.json').write_text(json.dumps(dict(index, format=2)))


def test_selector_state_is_saved_with_the_item_table(tmp_path):
  replay = Replay(directory=str(tmp_path), **PRIO)
  fill(replay, 30)
  replay.sample(8)
  replay.save()
  index = json.loads((tmp_path / 'index.json').read_text())
  assert index['selectors']['priority']['leaves'] == {
      'npz': 'selectors.priority.leaves'}
  assert index['selectors']['uniform'] == dict(first=0, next=26)
  name = index['items']['file']
  with np.load(tmp_path / name) as data:
    assert data['selectors.priority.leaves'].shape == (26,)
  # A damaged selector state names the files.
  disk = replay_io.Directory(str(tmp_path))
  table = disk.load_npz(name)
  disk.write(name, dict(table, **{
      'selectors.priority.leaves': np.zeros(3)}), True)
  with pytest.raises(replay_lib.ReplayCorruptError, match=f'{name}.*26'):
    Replay(directory=str(tmp_path), **PRIO)
  del table['selectors.priority.leaves']
  disk.write(name, table, True)
  with pytest.raises(replay_lib.ReplayCorruptError,
                     match=f'{name} lacks the selector array'):
    Replay(directory=str(tmp_path), **PRIO)


def test_priorities_are_restored_bit_exactly(tmp_path):
  replay = Replay(directory=str(tmp_path), **PRIO)
  fill(replay, 30)
  rng = np.random.default_rng(0)
  for _ in range(3):
    batch = replay.sample(4)  # Zeroes the items it draws by priority.
    replay.update(dict(stepid=batch['stepid'][:, 1:], priority=rng.random(
        batch['stepid'][:, 1:].shape[:2]) * 10))
  replay.sample(4)  # Zeroed and not written: pending at the save.
  replay.save()
  want = replay.priorities()
  got = Replay(directory=str(tmp_path), **PRIO).priorities()
  assert sorted(got['steps']) == sorted(want['steps'])
  for chunk, prio in want['steps'].items():
    np.testing.assert_array_equal(got['steps'][chunk], prio)
  assert got['items'].dtype == np.float64
  np.testing.assert_array_equal(got['items'], want['items'])
  assert (want['items'] == 0).any() and np.isfinite(want['items']).any()
  assert replay.priorities()['items'] is not None
  assert Replay(**KWARGS).priorities() == dict(steps={}, items=None)


def test_item_priorities_saved_with_other_settings_are_recomputed(tmp_path):
  """A save's item priorities hold its exponent, maxfrac and context; a
  replay made with others recomputes them from the stored step
  priorities, says so, and matches a replay that never had them."""
  settings = dict(PRIO, prio_exponent=1.0, prio_maxfrac=0.0)
  replay = Replay(directory=str(tmp_path), **settings)
  fill(replay, 30)
  batch = replay.sample(8)
  replay.update(dict(stepid=batch['stepid'][:, 1:],
                     priority=np.arange(32.0).reshape(8, 4)))
  replay.save()
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # The same settings: no warning.
    same = Replay(directory=str(tmp_path), **settings).priorities()
  np.testing.assert_array_equal(same['items'], replay.priorities()['items'])
  for changed in (dict(prio_exponent=0.5), dict(prio_maxfrac=0.5),
                  dict(context=1)):
    with pytest.warns(UserWarning, match=r'item priorities were saved with '
                      r"other settings \({'exponent': 1.0, 'maxfrac': 0.0, "
                      r"'context': 0}; now .*recomputed from the stored step "
                      'priorities'):
      loaded = Replay(directory=str(tmp_path), **dict(settings, **changed))
    fresh = Replay(**dict(settings, **changed))  # Without a directory.
    fill(fresh, 30)
    fresh.update(dict(stepid=batch['stepid'][:, 1:],
                      priority=np.arange(32.0).reshape(8, 4)))
    np.testing.assert_allclose(loaded.priorities()['items'],
                               fresh.priorities()['items'], rtol=1e-12)


def test_format_2_save_is_migrated(tmp_path):
  replay = Replay(directory=str(tmp_path), **PRIO)
  fill(replay, 30)
  batch = replay.sample(8)
  replay.update(dict(stepid=batch['stepid'][:, 1:],
                     priority=np.arange(32.0).reshape(8, 4)))
  replay.sample(6)  # Zeroes the items the priority selector draws.
  replay.save()
  files = set(os.listdir(tmp_path))
  _as_format_2(tmp_path)
  migrated = Replay(directory=str(tmp_path), **PRIO)
  assert len(migrated) == 26 and migrated.stats()['update_skipped'] == 0
  # The item priorities are recomputed from the stored step priorities, so
  # items zeroed by sampling come back.
  zeroed = replay._mixture.prioritized.priorities(np.arange(26)) == 0
  assert zeroed.any()
  again = migrated._mixture.prioritized.priorities(np.arange(26))
  for item in range(26):
    chunk_id, index = migrated._items.get(item)
    prios = migrated._read(migrated._chunks[chunk_id], index, 0, 5,
                           lambda c: c.prio, np.nan).astype(np.float64)
    expected = 0.5 * (prios ** 0.8).max() + 0.5 * (prios ** 0.8).mean()
    np.testing.assert_allclose(again[item], expected, rtol=1e-12)
  batch = migrated.sample(8)  # Sampling and saving work as before.
  np.testing.assert_array_equal(np.diff(batch['count'], axis=1), 1)
  migrated.save()
  index = json.loads((tmp_path / 'index.json').read_text())
  assert index['format'] == 3 and 'selectors' in index
  # The chunk files of the format 2 save are kept as they are.
  chunks = {n for n in files if n.startswith('chunk-')}
  assert chunks <= set(os.listdir(tmp_path))


def test_kept_generations_stay_loadable(tmp_path):
  """A save keeps the generations it is told to keep (a checkpoint's replay)
  and deletes the others; each kept one loads as it was saved."""
  replay = Replay(directory=str(tmp_path), seed=1, **KWARGS)
  fill(replay, 20)
  first = replay.save()
  fill(replay, 12, start=20)
  written = _write_back(replay, replay.sample(4))
  second = replay.save(keep=[first])
  assert (first, second) == (1, 2)
  assert {'index-000001.json', 'index-000002.json'} <= set(os.listdir(tmp_path))
  old = Replay(directory=str(tmp_path), restore=False, **KWARGS)
  old.load(generation=first)
  assert len(old) == 16 and old.stats()['steps'] == 20
  _check_latents(old, set())  # The write-back came after save 1.
  new = Replay(directory=str(tmp_path), **KWARGS)  # The last save.
  assert len(new) == 28
  _check_latents(new, written)
  third = replay.save(keep=[second])
  gone = {'index-000001.json', 'items-000001.npz'}
  assert not gone & set(os.listdir(tmp_path))  # Chunk files stay if reused.
  with pytest.raises(replay_lib.ReplayMissingError,
                     match='save 1 is not in .*index-000001.json is missing'):
    old.load(generation=first)
  assert len(old) == 16  # A failed load keeps the current state.
  old.load(generation=third)
  assert len(old) == 28


def test_a_loaded_older_save_is_not_overwritten_by_later_saves(tmp_path):
  """Loading an older generation (the previous checkpoint's) and saving
  again numbers the save after every save on disk: the abandoned newer save
  is garbage, never a mix of two runs' files."""
  replay = Replay(directory=str(tmp_path), **KWARGS)
  fill(replay, 10)
  replay.save()
  fill(replay, 10, start=10)
  replay.save(keep=[1])
  replay.load(generation=1)
  assert replay.save() == 3
  assert len(Replay(directory=str(tmp_path), **KWARGS)) == 6
  fresh = Replay(directory=str(tmp_path), restore=False, **KWARGS)
  assert len(fresh) == 0
  fill(fresh, 5)
  assert fresh.save() == 4


def test_missing_replay_raises_missing_error(tmp_path):
  replay = Replay(directory=str(tmp_path / 'replay'), restore=False, **KWARGS)
  with pytest.raises(replay_lib.ReplayMissingError,
                     match='no saved replay in'):
    replay.load()
  with pytest.raises(replay_lib.ReplayMissingError,
                     match='directory is missing'):
    replay.load(generation=3)


def test_load_priorities_reads_the_step_priorities_alone(tmp_path):
  """The step priorities of a save, as the full load reads them, without
  the latents; a latents file without them is named."""
  replay = Replay(directory=str(tmp_path), **KWARGS)
  fill(replay, 20)
  batch = replay.sample(4)
  _write_back(replay, batch)
  replay.update(dict(stepid=batch['stepid'],
                     priority=np.arange(20, dtype=np.float32).reshape(4, 5)))
  generation = replay.save()
  directory = replay_io.Directory(str(tmp_path))
  index, prios = directory.load_priorities(generation)
  _, chunks, _, _ = directory.load(KWARGS['length'], KWARGS['chunk_size'],
                                   np.inf, generation)
  assert [c[0] for c in index['chunks']] == [c.id for c in chunks]
  for prio, chunk in zip(prios, chunks):
    np.testing.assert_array_equal(prio, chunk.prio[:chunk.length])
  assert np.isfinite(np.concatenate(prios)).sum() == len(
      {tuple(s) for s in batch['stepid'].reshape(-1, 2).tolist()})
  name = sorted(_files(tmp_path, 'latents'))[0]
  with open(tmp_path / name, 'wb') as f:
    np.savez(f, deter=np.zeros((8, 4), np.float32))
  with pytest.raises(replay_lib.ReplayCorruptError,
                     match=f'{name} holds __priority__ None'):
    directory.load_priorities(generation)
