"""Chunked replay (spec §1.7, §4.2, §4.3): storage, sampling, write-back.

Save/restore is tested here as behaviour (sampling continues identically);
the on-disk format, atomicity and corruption checks in test_disk.py, the
selectors on their own in test_selectors.py.

Steps carry a `count` key (the step's position in its worker stream, plus
1000 * worker) so every test can check which stored steps a batch holds.
"""
import os

import numpy as np
import pytest

from dreamer_tf import replay as replay_lib

Replay = replay_lib.Replay


def make_step(t, worker=0, episode=7, size=8):
  """Step t of a worker; episodes of `episode` steps without is_last."""
  return dict(
      image=np.full((size, size, 3), t % 256, np.uint8),
      vector=np.full(3, t, np.float32),
      count=np.int64(1000 * worker + t),
      reward=np.float32(t),
      is_first=np.bool_(t % episode == 0),
      is_last=np.bool_(False),
      is_terminal=np.bool_(False),
      action=np.int32(t % 4),
      deter=np.zeros(4, np.float32),
      stoch=np.zeros((2, 3), np.float32),
  )


def fill(replay, steps, worker=0, start=0, **kwargs):
  for t in range(start, start + steps):
    replay.add(make_step(t, worker, **kwargs), worker)


def starts(batch):
  return batch['count'][:, 0] % 1000


def _assert_same(a, b):
  """Equal batches (step ids included)."""
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_add_sample_shapes_and_dtypes():
  replay = Replay(capacity=1000, chunk_size=16, length=10, online=False)
  fill(replay, 40, size=64)
  assert len(replay) == 40 - 10 + 1
  batch = replay.sample(5)
  keys = batch['stepid'][:, 0]  # [B, 2] first steps.
  assert keys.shape == (5, 2) and keys.dtype == np.int64
  expected = dict(
      image=((64, 64, 3), np.uint8), vector=((3,), np.float32),
      count=((), np.int64), reward=((), np.float32), is_first=((), bool),
      is_last=((), bool), is_terminal=((), bool), action=((), np.int32),
      deter=((4,), np.float32), stoch=((2, 3), np.float32),
      stepid=((2,), np.int64))
  assert set(batch) == set(expected)
  for key, (shape, dtype) in expected.items():
    assert batch[key].shape == (5, 10, *shape), key
    assert batch[key].dtype == dtype, key
  prefix = replay.sample(3, length=4)
  assert prefix['image'].shape == (3, 4, 64, 64, 3)


def test_rejects_changed_steps_and_empty_sampling():
  replay = Replay(capacity=100, chunk_size=8, length=5)
  with pytest.raises(RuntimeError, match='no complete sequence'):
    replay.sample(1)
  replay.add(make_step(0))
  step = make_step(1)
  del step['vector']
  with pytest.raises(ValueError, match='missing'):
    replay.add(step)
  step = make_step(1)
  step['image'] = step['image'][:4]
  with pytest.raises(ValueError, match="'image' has shape"):
    replay.add(step)
  step = make_step(1)
  step['action'] = np.float32(1.5)
  with pytest.raises(ValueError, match="'action'"):
    replay.add(step)


def test_sequences_cross_chunks_with_consecutive_steps():
  replay = Replay(capacity=1000, chunk_size=8, length=20, online=False)
  fill(replay, 200)
  for _ in range(10):
    batch = replay.sample(8)
    np.testing.assert_array_equal(np.diff(batch['count'], axis=1), 1)
    np.testing.assert_array_equal(batch['image'][..., 0, 0, 0],
                                  batch['count'] % 256)
    np.testing.assert_array_equal(batch['vector'][..., 0], batch['count'])
  # Every sequence of 20 steps spans at least 3 chunks of 8.
  assert len(replay) == 181 and replay.stats()['chunks'] == 25


def test_first_and_last_annotation_leaves_storage_unchanged():
  replay = Replay(capacity=1000, chunk_size=8, length=12, online=False)
  fill(replay, 100, episode=7)
  # 160 rows over 89 items: later batches reread steps whose copies were
  # annotated before, so any write to the storage would show up.
  for _ in range(10):
    batch = replay.sample(16)
    stored_first = batch['count'] % 7 == 0
    assert batch['is_first'][:, 0].all()
    np.testing.assert_array_equal(batch['is_first'][:, 1:],
                                  stored_first[:, 1:])
    # is_last marks the step before every is_first (abandoned episodes).
    np.testing.assert_array_equal(batch['is_last'][:, :-1],
                                  stored_first[:, 1:])
    assert not batch['is_last'][:, -1].any()


def test_capacity_evicts_oldest_items_and_frees_chunks():
  replay = Replay(capacity=20, chunk_size=8, length=4, online=False)
  fill(replay, 100)
  assert len(replay) == 20
  seen = set()
  for _ in range(30):
    batch = replay.sample(16)
    seen |= set(starts(batch).tolist())
  # Items are starts 0..96; the 20 newest are 77..96.
  assert seen == set(range(77, 97))
  stats = replay.stats()
  assert stats['inserts'] == 97 and stats['items'] == 20
  assert stats['chunks'] <= 4  # Steps 77..99 live in chunks 9..12.


def test_online_queue_gives_fresh_non_overlapping_sequences_first():
  replay = Replay(capacity=1000, chunk_size=8, length=5, online=True, seed=1)
  fill(replay, 22)  # Items start at 0..17; queued starts 0, 5, 10, 15.
  batch = replay.sample(3)
  np.testing.assert_array_equal(starts(batch), [0, 5, 10])
  batch = replay.sample(3)
  assert starts(batch)[0] == 15
  fill(replay, 10, start=22)  # New queued starts 20, 25.
  batch = replay.sample(2)
  np.testing.assert_array_equal(starts(batch), [20, 25])
  # Report batches leave the queue alone.
  fill(replay, 5, start=32)
  replay.sample(2, online=False)
  assert starts(replay.sample(1))[0] == 30
  assert Replay(capacity=100, chunk_size=8, length=5, online=False).stats()[
      'queue'] == 0


def test_online_queue_skips_evicted_items():
  replay = Replay(capacity=6, chunk_size=8, length=3, online=True)
  fill(replay, 30)  # Items 0..27, live 22..27; queued 0, 3, ..., 27.
  assert replay.stats()['queue'] == 2  # Evicted entries are dropped.
  batch = replay.sample(3)
  assert starts(batch)[0] == 24 and starts(batch)[1] == 27
  assert replay.stats()['queue'] == 0


def test_recency_prefers_recent_items():
  kwargs = dict(capacity=1000, chunk_size=64, length=2, online=False, seed=3)
  recent = Replay(fracs=dict(recency=1.0), **kwargs)
  uniform = Replay(**kwargs)
  fill(recent, 1001)
  fill(uniform, 1001)
  ages = lambda r: 999 - np.concatenate([
      starts(r.sample(100)) for _ in range(20)])
  recent_ages, uniform_ages = ages(recent), ages(uniform)
  # p(age) ∝ 1 / (age + 1): P(age < 100) = H_100 / H_1000 = 0.69.
  assert 0.63 < np.mean(recent_ages < 100) < 0.75
  assert 0.11 < np.mean(recent_ages == 0) < 0.16  # 1 / H_1000 = 0.134.
  assert np.mean(uniform_ages < 100) < 0.15


def test_prioritized_sampling_follows_priorities():
  replay = Replay(
      capacity=100, chunk_size=8, length=1, online=False, seed=4,
      fracs=dict(priority=1.0), prio_exponent=1.0, prio_maxfrac=0.0,
      prio_zero_on_sample=False)
  fill(replay, 4)
  stepid = np.array([[[0, 0]], [[0, 1]], [[0, 2]], [[0, 3]]])  # [4, 1, 2]
  replay.update(dict(stepid=stepid, priority=[[1.0], [2.0], [3.0], [4.0]]))
  counts = np.bincount(np.concatenate([
      starts(replay.sample(100)) for _ in range(40)]), minlength=4)
  np.testing.assert_allclose(counts / 4000, [0.1, 0.2, 0.3, 0.4], atol=0.03)


@pytest.mark.parametrize('zero_on_sample', [False, True])
def test_replay_draws_match_a_brute_force_sampler(zero_on_sample):
  """The whole path: step priorities -> windows -> exponent 0.6 and
  maxfrac 0.25 (not the defaults, so that both must reach the selector)
  -> a half-uniform, half-prioritized mixture, with and
  without zero-on-sample, against the exact chance of every ordered pair
  of rows of a 2-row batch (priorities written back after each batch, as
  training does). Chi-square over 36 pairs."""
  stats = pytest.importorskip('scipy.stats')
  exponent, maxfrac, length = 0.6, 0.25, 3
  replay = Replay(
      capacity=100, chunk_size=8, length=length, online=False, seed=11,
      fracs=dict(uniform=0.5, priority=0.5), prio_exponent=exponent,
      prio_maxfrac=maxfrac, prio_zero_on_sample=zero_on_sample)
  fill(replay, 8)  # Items: the windows starting at steps 0..5.
  prios = np.array([1.0, 1.0, 1.0, 1.0, 0.01, 0.01, 30.0, 0.01])  # [8]
  stepid = np.array([[[0, s] for s in range(8)]])  # [1, 8, 2]
  items = 8 - length + 1
  windows = np.stack([prios[i:i + length] for i in range(items)])  # [6, 3]
  powered = windows ** exponent
  item_prio = maxfrac * powered.max(1) + (1 - maxfrac) * powered.mean(1)

  def row_chances(zeroed=None):  # [6] one row's chance of each item.
    p = item_prio.copy()
    if zeroed is not None:
      p[zeroed] = 0.0
    return 0.5 / items + 0.5 * p / p.sum()

  expected = np.zeros((items, items))
  for first in range(items):
    # The second row sees the first's item zeroed only if the first row
    # was drawn by the prioritized selector (chance 0.5 * its share).
    by_priority = 0.5 * item_prio[first] / item_prio.sum()
    second = row_chances()
    if zero_on_sample:
      share = by_priority / row_chances()[first]
      second = share * row_chances(first) + (1 - share) * second
    expected[first] = row_chances()[first] * second
  assert expected.sum() == pytest.approx(1.0)
  draws = 6000
  counts = np.zeros((items, items))
  for _ in range(draws):
    replay.update(dict(stepid=stepid, priority=prios[None]))
    first, second = starts(replay.sample(2))
    counts[first, second] += 1
  _, p_value = stats.chisquare(counts.ravel(), expected.ravel() * draws)
  assert p_value > 1e-3, (counts, expected * draws)


def test_prioritized_new_items_first_and_zero_on_sample():
  replay = Replay(
      capacity=100, chunk_size=8, length=3, online=False, seed=5,
      fracs=dict(priority=1.0))
  fill(replay, 12)  # Items 0..9, all with infinite (new) priority.
  batch = replay.sample(4)
  assert len(set(starts(batch).tolist())) == 4  # Zeroed once sampled.
  # Train everything to a small priority; a new item then comes first.
  all_steps = np.array([[[s // 8, s % 8] for s in range(12)]])  # [1, 12, 2]
  replay.update(dict(stepid=all_steps, priority=np.full((1, 12), 0.01)))
  fill(replay, 1, start=12)
  assert starts(replay.sample(1))[0] == 10
  # One large trained step lifts every item whose window holds it.
  replay.update(dict(stepid=batch['stepid'][:1, 1:],
                     priority=[[0.0, 100.0]]))  # Step start + 2.
  step = starts(batch)[0] + 2
  drawn = starts(replay.sample(1))[0]
  assert step - 2 <= drawn <= step


@pytest.mark.parametrize('context', [0, 1, 2])
def test_item_priorities_match_their_steps_after_eviction(context):
  """Internal invariant: each item's tree leaf aggregates its own trained
  steps (all but the first `context`)."""
  replay = Replay(capacity=25, chunk_size=4, length=6, online=False, seed=9,
                  fracs=dict(priority=1.0), prio_initial=1.0,
                  context=context)
  rng = np.random.default_rng(0)
  for t in range(120):
    replay.add(make_step(t, t % 2), t % 2)
    if t % 10 == 9 and t > 20:
      batch = replay.sample(4)  # Zeroed when drawn, refreshed by training.
      replay.update(dict(stepid=batch['stepid'][:, 1:],
                         priority=rng.random((4, 5)) * 10))
  items, selector = replay._items, replay._mixture.prioritized
  for item, (chunk_id, index) in zip(range(items.first, items.next),
                                     zip(*items.table())):
    chunk = replay._chunks[int(chunk_id)]
    prios = replay._read(chunk, int(index), 0, 6, lambda c: c.prio, np.nan)
    prios = prios.astype(np.float64)[context:]
    expected = 0.5 * (prios ** 0.8).max() + 0.5 * (prios ** 0.8).mean()
    np.testing.assert_allclose(selector.priorities([item]), expected,
                               rtol=1e-12)


def _head_draws(context, rounds=50):
  """Batches (of `rounds`) that drew each worker stream's first item, when
  training (an agent with one context step) writes priority 1 to all but
  the first step of each row after each batch of 4 drawn by priority;
  the replay leaves out the first `context` steps of an item."""
  replay = Replay(capacity=1000, chunk_size=8, length=4, online=False,
                  seed=0, fracs=dict(priority=1.0), context=context)
  for worker in range(2):
    fill(replay, 30, worker=worker)
  heads = 0
  for _ in range(rounds):
    batch = replay.sample(4)
    heads += bool((batch['count'][:, 0] % 1000 == 0).any())
    stepid = batch['stepid'][:, 1:]
    replay.update(dict(stepid=stepid, priority=np.ones(stepid.shape[:2])))
  return heads, replay.priorities()['items']


def test_context_steps_are_left_out_of_item_priorities():
  """A stream's first step is only ever a context step: training writes
  no priority to it. Counted in its item's priority (context 0), it holds
  that item at its initial, infinite priority for good: drawn in almost
  every batch. Left out (context 1, the agent's replay_context), the item
  gets the priority of its trained steps like any other."""
  heads, items = _head_draws(context=1)
  assert heads <= 10, heads  # 54 items, 4 rows a batch.
  assert np.isfinite(items).all()
  heads, items = _head_draws(context=0)  # What counting them did.
  assert heads >= 45, heads
  assert np.isinf(items).sum() == 2  # The two streams' first items.


def test_replay_settings_are_checked():
  for kwargs, message in [
      (dict(length=4, context=4), r'context=4 must be in \[0, length\) = '
       r'\[0, 4\): each sequence needs a trained step'),
      (dict(length=4, context=-1), r'context=-1 must be in \[0, length\)'),
      (dict(prio_exponent=-0.5), r'Replay.prio_exponent=-0.5 must be a '
       r'finite number >= 0'),
      (dict(prio_exponent=float('nan')), r'prio_exponent=nan must be'),
      (dict(prio_exponent='0.8'), r"prio_exponent='0.8' must be a finite "
       'number'),
      (dict(prio_maxfrac=1.5), r'prio_maxfrac=1.5 must be in \[0, 1\]')]:
    with pytest.raises(ValueError, match=message):
      Replay(**kwargs)


def test_latent_write_back_lands_on_trained_steps_across_chunks():
  replay = Replay(capacity=1000, chunk_size=8, length=6, online=False, seed=6)
  fill(replay, 40)
  batch = replay.sample(12)
  keys = batch['stepid'][:, 0]  # [B, 2] first steps.
  assert (keys[:, 1] > 8 - 6).any(), 'no sequence crosses a chunk boundary'
  counts = batch['count'][:, 1:]  # [B, 5] trained steps.
  deter = np.repeat(counts[..., None], 4, -1).astype(np.float32) + 0.5
  stoch = np.repeat(deter[..., :3, None], 2, -1).transpose(0, 1, 3, 2)
  replay.update(dict(stepid=batch['stepid'][:, 1:], deter=deter,
                     stoch=stoch))
  written = set(counts.ravel().tolist())
  for _ in range(10):
    new = replay.sample(16)
    expected = np.where(np.isin(new['count'], list(written)),
                        new['count'] + 0.5, 0.0)
    np.testing.assert_array_equal(new['deter'][..., 0], expected)
    np.testing.assert_array_equal(new['stoch'][..., 1, 2], expected)
  with pytest.raises(ValueError, match='deter'):
    replay.update(dict(stepid=batch['stepid'][:, 1:],
                       deter=np.zeros((12, 6, 4), np.float32)))
  assert replay.stats()['updates'] == 12


def test_write_back_to_evicted_chunk_is_dropped():
  replay = Replay(capacity=5, chunk_size=4, length=3, online=False)
  fill(replay, 8)
  stepid = replay.sample(2)['stepid'][:, 1:]  # [2, 2, 2]
  fill(replay, 30, start=8)
  replay.update(dict(stepid=stepid, deter=np.ones((2, 2, 4), np.float32)))
  replay.update(dict(stepid=stepid, priority=[[1.0, 1.0], [2.0, 2.0]]))
  batch = replay.sample(8)
  assert (batch['deter'] == 0).all()
  assert replay.stats()['update_skipped'] == 2 * 4


def test_multiple_workers_interleaved():
  replay = Replay(capacity=1000, chunk_size=8, length=6, online=True, seed=7)
  for t in range(30):
    for worker in range(3):
      replay.add(make_step(t, worker), worker)
  assert len(replay) == 3 * 25 and replay.stats()['streams'] == 3
  batch = replay.sample(6)  # Queued starts 0 (x3 workers), 6 (x3), ...
  np.testing.assert_array_equal(batch['count'][:, 0],
                                [0, 1000, 2000, 6, 1006, 2006])
  for _ in range(5):
    batch = replay.sample(16)
    np.testing.assert_array_equal(np.diff(batch['count'], axis=1), 1)
  assert len(set((batch['count'][:, 0] // 1000).tolist())) == 3


@pytest.mark.parametrize('length, chunk_size, capacity', [
    (7, 4, 30), (1, 2, 3), (3, 1, 5), (12, 5, 1)])
def test_random_interleaving_keeps_sequences_and_frees_memory(
    tmp_path, length, chunk_size, capacity):
  """3 workers in random order; periodic batches, priorities and restores."""
  kwargs = dict(capacity=capacity, chunk_size=chunk_size, length=length,
                online=True, seed=8,
                fracs=dict(uniform=0.5, recency=0.25, priority=0.25))
  replay, twin = Replay(directory=str(tmp_path), **kwargs), Replay(**kwargs)
  rng = np.random.default_rng(0)
  added, inserted = [0, 0, 0], []  # Steps per worker; item start counts.
  for op in range(300):
    worker = int(rng.integers(3))
    for r in (replay, twin):
      r.add(make_step(added[worker], worker, size=2), worker)
    added[worker] += 1
    if added[worker] >= length:
      inserted.append(1000 * worker + added[worker] - length)
    if op % 10 == 9 and inserted:
      batch = replay.sample(8)
      np.testing.assert_array_equal(np.diff(batch['count'], axis=1), 1)
      # Only the newest `capacity` items (over all workers) can be drawn.
      assert set(batch['count'][:, 0].tolist()) <= set(inserted[-capacity:])
      _assert_same(batch, twin.sample(8))
      for r in (replay, twin):
        r.update(dict(stepid=batch['stepid'],
                      priority=np.full((8, length), 0.5)))
    if op % 100 == 99:
      replay.save()
      replay = Replay(directory=str(tmp_path), **kwargs)
    assert len(replay) == min(capacity, len(inserted))
    # Chunks of the live items plus, per stream, the pending steps.
    bound = -(-(capacity + length) // chunk_size) + 3 * (
        -(-length // chunk_size) + 2)
    assert replay.stats()['chunks'] <= bound


def test_stats_keys():
  replay = Replay(capacity=100, chunk_size=8, length=4)
  fill(replay, 10)
  replay.sample(2)
  stats = replay.stats()
  assert {'items', 'chunks', 'streams', 'inserts', 'samples', 'updates',
          'ram_gb'} <= set(stats)
  assert (stats['items'], stats['chunks'], stats['streams']) == (7, 2, 1)
  assert (stats['inserts'], stats['samples'], stats['updates']) == (7, 2, 0)
  assert 0 < stats['ram_gb'] < 1e-3


def test_memory_per_million_steps():
  replay = Replay(capacity=10_000, chunk_size=1024, length=65, online=False)
  step = dict(image=np.zeros((64, 64, 3), np.uint8), reward=np.float32(0),
              is_first=np.bool_(False), is_last=np.bool_(False),
              is_terminal=np.bool_(False), action=np.int32(0))
  for _ in range(2048):
    replay.add(step)
  per_step = replay.stats()['ram_gb'] * 2 ** 30 / 2048
  assert 12_288 <= per_step < 12_350  # ~12.3 GB per million steps.


def _twins(tmp_path, **kwargs):
  kwargs = dict(capacity=120, chunk_size=8, length=5, online=True, seed=11,
                fracs=dict(uniform=0.4, recency=0.3, priority=0.3), **kwargs)
  return Replay(directory=str(tmp_path), **kwargs), Replay(**kwargs), kwargs


def _run(replay, round_, rng):
  """Adds of 2 workers (23 and 11 steps), a batch, write-back, priorities.

  Worker 1 adds after the batch, so saves see a non-empty online queue.
  """
  fill(replay, 23, worker=0, start=23 * round_)
  batch = replay.sample(16)  # ~6 online rows, ~10 from the mixture.
  trained = batch['stepid'][:, 1:]  # [16, 4, 2]
  deter = rng.random((16, 4, 4)).astype(np.float32)
  replay.update(dict(stepid=trained, deter=deter))
  replay.update(dict(stepid=trained, priority=rng.random((16, 4))))
  fill(replay, 11, worker=1, start=11 * round_)
  return batch


def test_save_restore_continues_identically(tmp_path):
  saved, never, kwargs = _twins(tmp_path)
  rngs = [np.random.default_rng(0), np.random.default_rng(0)]
  for round_ in range(3):  # Later saves rewrite updated chunks.
    _assert_same(_run(saved, round_, rngs[0]), _run(never, round_, rngs[1]))
    saved.save()
  restored = Replay(directory=str(tmp_path), **kwargs)
  assert restored.stats() == never.stats()
  for round_ in range(3, 6):
    _assert_same(_run(restored, round_, rngs[0]), _run(never, round_,
                                                       rngs[1]))
  # Steps added before the save but not yet part of any item (the last
  # length - 1 of each stream) survive: sequences across the save point are
  # consecutive.
  batch = restored.sample(40, online=False)
  np.testing.assert_array_equal(np.diff(batch['count'], axis=1), 1)
  files = sorted(os.listdir(tmp_path))
  assert files.count('index.json') == 1
  assert not [f for f in files if f.startswith('.tmp-')]


def test_restored_pending_steps_become_items(tmp_path):
  replay = Replay(directory=str(tmp_path), capacity=100, chunk_size=8,
                  length=5, online=False)
  fill(replay, 10)  # Items 0..5; steps 6..9 are pending.
  replay.save()
  restored = Replay(directory=str(tmp_path), capacity=100, chunk_size=8,
                    length=5, online=False)
  fill(restored, 1, start=10)
  assert len(restored) == 7
  batch = restored.sample(50)
  assert 6 in starts(batch)
  np.testing.assert_array_equal(np.diff(batch['count'], axis=1), 1)


# --- Step ids, write-back by step id, zero-on-sample ------------------------


def _stored(replay, key):
  """{(chunk id, index): value} of every stored step."""
  return {(chunk.id, i): chunk.data[key][i]
          for chunk in replay._chunks.values() for i in range(chunk.length)}


def test_mixture_draws_match_the_previous_implementation():
  """Seeded draws of the string-dispatch replay (before the selector
  protocol), recorded with zero_on_sample off: same mixture, same trees."""
  replay = Replay(capacity=40, chunk_size=4, length=3, online=False, seed=13,
                  fracs=dict(uniform=0.3, recency=0.3, priority=0.4),
                  prio_zero_on_sample=False)
  rng, drawn = np.random.default_rng(0), []
  for t in range(60):
    for worker in range(2):
      replay.add(make_step(t, worker, size=1), worker)
    if t % 6 == 5:
      batch = replay.sample(7)
      replay.update(dict(stepid=batch['stepid'][:, 1:],
                         priority=rng.random((7, 2)) * 3))
      drawn += batch['count'][:, 0].tolist()
  assert drawn == [
      3, 0, 3, 1003, 1000, 1003, 3, 1002, 9, 1008, 8, 1009, 1005, 1003,
      1015, 1015, 0, 1008, 1010, 1014, 1008, 20, 1011, 15, 20, 15, 1021, 19,
      1012, 16, 1025, 25, 10, 1013, 1027, 19, 1020, 18, 1033, 1025, 1031,
      1023, 1030, 24, 30, 1039, 37, 1034, 1038, 1045, 1038, 1039, 44, 35,
      1040, 1028, 1048, 48, 1051, 44, 1050, 1048, 1046, 51, 1055, 57, 45,
      1045, 53, 46]


def test_stepids_name_the_stored_steps():
  replay = Replay(capacity=200, chunk_size=4, length=7, online=True, seed=2,
                  fracs=dict(uniform=0.5, recency=0.25, priority=0.25))
  for t in range(40):
    for worker in range(3):
      replay.add(make_step(t, worker, size=2), worker)
  counts = _stored(replay, 'count')
  batches = [replay.sample(16) for _ in range(5)]
  batches.append(replay.peek(16, 5, np.random.default_rng(0)))
  for batch in batches:
    stepid = batch['stepid']
    assert stepid.dtype == np.int64
    assert stepid.shape == batch['count'].shape + (2,)
    for row, t in np.ndindex(stepid.shape[:2]):
      assert counts[tuple(stepid[row, t])] == batch['count'][row, t]
    chunks = stepid[..., 0]
    assert (chunks[:, -1] != chunks[:, 0]).any()  # Rows span chunks.
    # Within a row: consecutive indices, or index 0 of the next chunk.
    same = chunks[:, 1:] == chunks[:, :-1]
    step = np.diff(stepid[..., 1], axis=1)
    assert ((same & (step == 1)) | (~same & (stepid[:, 1:, 1] == 0))).all()


def test_update_by_stepid_writes_exactly_those_steps():
  replay = Replay(capacity=12, chunk_size=4, length=6, online=False, seed=3)
  fill(replay, 12)
  old = replay.sample(3)['stepid'][:, 1:]  # [3, 5, 2]
  fill(replay, 30, start=12)  # Frees every chunk `old` names.
  assert not set(old[..., 0].ravel().tolist()) & set(replay._chunks)
  batch = replay.sample(4)
  spans = batch['stepid'][:, 1, 0] != batch['stepid'][:, -1, 0]
  assert spans.any(), 'no trained steps in two chunks'
  stepid = np.concatenate([old, batch['stepid'][:, 1:]])  # [7, 5, 2]
  value = np.concatenate([np.full((3, 5), -1.0), batch['count'][:, 1:]])
  deter = np.repeat(value[..., None], 4, -1).astype(np.float32) + 0.5
  replay.update(dict(stepid=stepid, deter=deter))
  trained = set(batch['count'][:, 1:].ravel().tolist())
  counts, written = _stored(replay, 'count'), _stored(replay, 'deter')
  for step, count in counts.items():
    expected = count + 0.5 if count in trained else 0.0
    np.testing.assert_array_equal(written[step], expected, err_msg=step)
  stats = replay.stats()
  assert stats['update_skipped'] == 3 * 5 and stats['updates'] == 4
  # A step named twice takes its last value (row-major).
  twice = np.repeat(batch['stepid'][:1, 1:2], 2, axis=1)  # [1, 2, 2]
  replay.update(dict(stepid=twice, deter=np.float32(
      [[[1, 1, 1, 1], [2, 2, 2, 2]]])))
  chunk, index = twice[0, 0]
  np.testing.assert_array_equal(replay._chunks[chunk].data['deter'][index],
                                2.0)


def test_update_errors_name_the_fix():
  replay = Replay(capacity=100, chunk_size=8, length=5, online=False,
                  fracs=dict(priority=1.0))
  fill(replay, 12)
  stepid = replay.sample(2)['stepid'][:, 1:]  # [2, 4, 2]
  deter = np.zeros((2, 4, 4), np.float32)
  with pytest.raises(KeyError, match="needs 'stepid'"):
    replay.update(dict(deter=deter))
  with pytest.raises(ValueError, match=r"'stepid' is \(2, 4\)"):
    replay.update(dict(stepid=stepid[..., 0], deter=deter))
  with pytest.raises(ValueError, match='never stored'):
    replay.update(dict(stepid=stepid + [0, 7], deter=deter))  # Index >= 4.
  with pytest.raises(ValueError, match='never stored'):
    replay.update(dict(stepid=stepid + [5, 0], deter=deter))  # No chunk 5.
  with pytest.raises(KeyError, match="no key 'latent'"):
    replay.update(dict(stepid=stepid, latent=deter))
  with pytest.raises(ValueError, match=r"'priority' is \(2,\)"):
    replay.update(dict(stepid=stepid, priority=np.ones(2)))
  for bad in (np.nan, np.inf, -1.0, 1e39):
    prios = np.ones((2, 4))
    prios[1, 2] = bad
    with pytest.raises(ValueError, match=r'finite and >= 0.*\[\[1, 2\]\]'):
      replay.update(dict(stepid=stepid, priority=prios))
  assert replay.stats()['updates'] == 0  # Failed calls write nothing.
  with pytest.raises(ValueError, match='reserved'):
    Replay().add(dict(stepid=np.zeros(2, np.int64)))


def test_zero_on_sample_lives_only_in_the_selector(tmp_path):
  kwargs = dict(capacity=100, chunk_size=8, length=4, online=False, seed=4,
                fracs=dict(priority=1.0), prio_initial=1.0)
  replay = Replay(directory=str(tmp_path), **kwargs)
  fill(replay, 30)  # Items 0..26, all at priority 1 (finite).
  replay.save()
  prios = {c: chunk.prio.copy() for c, chunk in replay._chunks.items()}
  selector = replay._mixture.prioritized
  batch = replay.sample(5)
  drawn = starts(batch)
  assert len(set(drawn.tolist())) == 5  # Zeroed items are not redrawn.
  assert replay.stats()['prio_zeroed'] == 5
  np.testing.assert_array_equal(selector.priorities(drawn), 0.0)
  for c, chunk in replay._chunks.items():  # Stored priorities untouched.
    np.testing.assert_array_equal(chunk.prio, prios[c])
  # Overlapping items keep their priority (the official code lowers them).
  others = sorted(set(range(27)) - set(drawn.tolist()))
  np.testing.assert_array_equal(selector.priorities(others), 1.0)
  # Sampling changes no chunk file: the zeros are saved as selector state.
  files = {n for n in os.listdir(tmp_path) if n.startswith('chunk-')}
  replay.save()
  assert {n for n in os.listdir(tmp_path) if n.startswith('chunk-')} == files
  restored = Replay(directory=str(tmp_path), **kwargs)
  np.testing.assert_array_equal(
      restored._mixture.prioritized.priorities(drawn), 0.0)
  assert restored.stats()['prio_zeroed'] == 5
  # Training one step of the first drawn item gives it (and only the items
  # holding that step) a fresh priority.
  restored.update(dict(stepid=batch['stepid'][:1, 2:3], priority=[[3.0]]))
  step = drawn[0] + 2
  fresh = 0.5 * 3.0 ** 0.8 + 0.5 * (3.0 ** 0.8 + 3) / 4
  selector = restored._mixture.prioritized
  for item in range(27):
    if step - 3 <= item <= step:
      np.testing.assert_allclose(selector.priorities([item]), fresh)
    else:
      expected = 0.0 if item in drawn else 1.0
      np.testing.assert_array_equal(selector.priorities([item]), expected)


@pytest.mark.parametrize('trained', [30, 20])
def test_restore_priorities_undoes_zero_on_sample_for_a_skipped_update(
    trained):
  """trained: steps with a priority; the items of the others are new
  (infinite priority), and draws take them first."""
  replay = Replay(capacity=100, chunk_size=8, length=4, online=False, seed=4,
                  fracs=dict(priority=1.0))
  fill(replay, 30)  # Items 0..26.
  steps = np.array([[[s // 8, s % 8] for s in range(trained)]])  # [1, N, 2]
  replay.update(dict(stepid=steps,
                     priority=np.arange(float(trained))[None] % 7))
  selector = replay._mixture.prioritized
  before = selector.priorities(list(range(27))).copy()
  stored = {c: chunk.prio.copy() for c, chunk in replay._chunks.items()}
  batch = replay.sample(5)
  drawn = starts(batch)
  np.testing.assert_array_equal(selector.priorities(drawn), 0.0)
  assert np.isinf(before[drawn]).all() == (trained < 30)
  replay.restore_priorities(batch['stepid'][:, 1:])  # The trained steps.
  np.testing.assert_array_equal(selector.priorities(list(range(27))),
                                before)
  for c, chunk in replay._chunks.items():
    np.testing.assert_array_equal(chunk.prio, stored[c])
  # Without priority selection it checks its input and does nothing.
  plain = Replay(capacity=100, chunk_size=8, length=4, online=False)
  fill(plain, 10)
  plain.restore_priorities(plain.sample(2)['stepid'])
  with pytest.raises(ValueError, match='never stored'):
    plain.restore_priorities(np.array([[[7, 0]]]))


def test_importance_weights_follow_the_draw_probabilities():
  """weight_b = (N P_b)^-β / max_b', P_b by brute force; queue rows count
  as uniform draws; no weights without β or without priority."""
  replay = Replay(capacity=100, chunk_size=8, length=1, online=True, seed=3,
                  fracs=dict(uniform=0.5, priority=0.5), prio_exponent=1.0,
                  prio_maxfrac=0.0, prio_zero_on_sample=False,
                  importance=0.6)
  fill(replay, 6)
  stepid = np.array([[[0, i]] for i in range(6)])  # [6, 1, 2]
  prios = np.array([[1.0], [2.0], [3.0], [4.0], [0.0], [10.0]])
  replay.update(dict(stepid=stepid, priority=prios))
  batch = replay.sample(8)
  rows = starts(batch)
  queued = 6  # length 1: every step was queued once, oldest first.
  assert rows[:queued].tolist() == list(range(6))
  p = 0.5 / 6 + 0.5 * prios[:, 0] / prios.sum()
  probs = np.concatenate([np.full(queued, 1 / 6), p[rows[queued:]]])
  expected = (6 * probs) ** -0.6
  np.testing.assert_allclose(batch['weight'], expected / expected.max(),
                             rtol=1e-6)
  assert batch['weight'].dtype == np.float32 and batch['weight'].max() == 1
  plain = Replay(capacity=100, chunk_size=8, length=1, seed=3,
                 fracs=dict(uniform=1.0), importance=0.6)
  fill(plain, 6)
  assert 'weight' not in plain.sample(4)
  with pytest.raises(ValueError, match='importance'):
    Replay(importance=1.5)
