"""The training loop's parts (`dreamer_tf/run/loop.py`); the loop itself
runs end to end in tests/run/test_train.py."""
import numpy as np
import pytest

from dreamer_tf import config
from dreamer_tf import replay as replay_lib
from dreamer_tf import spaces
from dreamer_tf.envs import parallel
from dreamer_tf.model import agent as agent_lib
from dreamer_tf.model import batches
from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import failures
from dreamer_tf.run import loop as loop_lib
from dreamer_tf.run import schedules
from dreamer_tf.run import workers as workers_lib
from tests.conftest import TINY


def test_train_ratio_counts_replayed_steps_per_policy_step():
  ratio = loop_lib.TrainRatio(64, batch_steps=16 * 64)
  assert ratio.due(1000) == 0  # Training starts here: no catch-up burst.
  assert ratio.due(1000 + 15) == 0
  assert ratio.due(1000 + 16) == 1
  ratio.updates += 1
  assert ratio.due(1000 + 160) == 9
  ratio.updates += 9
  restored = loop_lib.TrainRatio(64, 16 * 64)
  restored.restore(ratio.state())
  assert restored.due(1000 + 320) == 10


def test_counters_refuse_a_schedule_state_of_another_schedule():
  """A run started with the fixed weight, resumed with ReturnProgress:
  the checkpoint's schedule state names the binding to restore."""
  fixed = loop_lib.Counters(0, 'test', loop_lib.TrainRatio(1, 1), '/tmp/c',
                            schedules.Fixed())
  progress = loop_lib.Counters(0, 'test', loop_lib.TrainRatio(1, 1),
                               '/tmp/c', schedules.ReturnProgress())
  with pytest.raises(ckpt_lib.CheckpointError,
                     match=r'The checkpoint in /tmp/c: ReturnProgress state '
                     r'\{\} is not one it saved'):
    progress.set_state(fixed.get_state())


class _Driver:
  """The driver interface the loop registers its callbacks with."""

  def on_step(self, callback):
    del callback

  def on_episode(self, callback):
    del callback


class _Logger:
  def __init__(self):
    self.records, self.warnings = [], []

  def scalars(self, values, step):
    self.records.append((step, dict(values)))

  def warn(self, message):
    self.warnings.append(message)


def _stored_priorities(replay, stepid):
  """The step priorities replay holds at stepid [B, T, 2]."""
  # pylint: disable-next=protected-access
  return np.array([[replay._chunks[c].prio[i] for c, i in row]
                   for row in stepid.tolist()])


def _prioritized_loop(context, zero_on_sample, fracs=None):
  """(loop, agent, replay, counters) of a tiny agent over a replay that
  draws half by priority (or by `fracs`), holding 40 steps at priority
  1."""
  config.parse([], TINY + [
      'Agent.batch_size = 3', 'Agent.batch_length = 4',
      f'Agent.replay_context = {context}', 'LaProp.warmup = 0'])
  agent = agent_lib.Agent(spaces.parse_obs_space('5'),
                          spaces.parse_act_space('discrete:2'))
  replay = replay_lib.Replay(
      capacity=1000, chunk_size=16, length=agent.sequence_length,
      context=agent.replay_context, seed=0,
      online=False, fracs=fracs or dict(uniform=0.5, priority=0.5),
      prio_initial=1.0, prio_zero_on_sample=zero_on_sample)
  rng = np.random.default_rng(0)
  steps = batches.random_batch(agent, rng, batch_size=1)
  for t in range(40):
    step = {k: v[0, t % agent.sequence_length] for k, v in steps.items()}
    step['is_first'] = np.array(t == 0)
    replay.add(step)
  counters = loop_lib.Counters(0, 'test', loop_lib.TrainRatio(1, 1), '/tmp')
  loop = loop_lib.Loop(agent, replay, _Logger(), _Driver(), None, counters,
                       loop_lib.Settings(steps=1), save=lambda: None)
  return loop, agent, replay, counters


def _skip_next_updates(replay, agent):
  """Makes the batches of `replay` give a non-finite loss."""
  original = replay.sample
  replay.sample = lambda b, **kw: dict(original(b, **kw), reward=np.full(
      (b, agent.sequence_length), np.nan, np.float32))


@pytest.mark.parametrize('context', [0, 1])
def test_priorities_written_back_after_applied_updates_only(context):
  """With prioritized replay every applied update writes its priorities to
  exactly its trained steps; a skipped update writes nothing; without
  priority selection nothing is written (the next test)."""
  loop, agent, replay, counters = _prioritized_loop(context, False)
  results = []
  train = agent.train
  agent.train = lambda b: results.append(train(b)) or results[-1]
  loop._update()  # pylint: disable=protected-access
  updates = results[-1][1]
  # The last value written to each step (rows overlap), row-major.
  expected = {}
  for ids, prios in zip(updates['stepid'].tolist(),
                        updates['priority'].tolist()):
    expected.update(zip(map(tuple, ids), prios))
  stored = _stored_priorities(replay, updates['stepid'])
  want = np.array([[expected[tuple(i)] for i in row]
                   for row in updates['stepid'].tolist()], np.float32)
  np.testing.assert_array_equal(stored, want)
  assert np.all(stored != 1.0) and np.all(np.isfinite(stored))
  untouched = sum(int((ch.prio[:ch.length] == 1.0).sum())
                  for ch in replay._chunks.values())
  assert untouched == 40 - len(expected)  # Only the trained steps changed.
  before = {c: ch.prio.copy() for c, ch in replay._chunks.items()}
  _skip_next_updates(replay, agent)
  loop._update()  # Skipped: non-finite loss.
  assert counters.nonfinite == 1
  for c, prio in before.items():
    np.testing.assert_array_equal(replay._chunks[c].prio, prio)


def test_nothing_is_written_without_priority_selection():
  loop, agent, replay, counters = _prioritized_loop(1, False,
                                                    {'uniform': 1.0})
  computed = []
  train = agent.train

  def train_and_note(batch):
    metrics, updates = train(batch)
    computed.append(set(updates))  # Before the loop drops what it ignores.
    return metrics, updates

  agent.train = train_and_note
  loop._update()  # pylint: disable=protected-access
  assert 'priority' in computed[-1]  # The update computed them,
  assert counters.nonfinite == 0  # and it was applied.
  for chunk in replay._chunks.values():  # pylint: disable=protected-access
    np.testing.assert_array_equal(chunk.prio[:chunk.length], 1.0)


@pytest.mark.parametrize('context', [0, 1])
def test_a_skipped_update_gives_the_items_it_drew_their_priority_back(
    context):
  """Zero-on-sample zeroes the items a batch draws; when the update is
  skipped they get back the priority they had, not 0 (never drawn by
  priority again until a uniform draw trains them)."""
  loop, agent, replay, counters = _prioritized_loop(context, True)
  loop._update()  # pylint: disable=protected-access
  selector = replay._mixture.prioritized  # pylint: disable=protected-access
  items = list(range(len(replay)))
  _skip_next_updates(replay, agent)
  before = selector.priorities(items).copy()
  sample, zeroed = replay.sample, []

  def sample_and_count_zeros(batch_size, **kwargs):
    batch = sample(batch_size, **kwargs)
    zeroed.append(int((selector.priorities(items) == 0).sum()))
    return batch
  replay.sample = sample_and_count_zeros
  loop._update()  # pylint: disable=protected-access
  assert counters.nonfinite == 1
  assert zeroed[0] > int((before == 0).sum())  # The draw zeroed some.
  np.testing.assert_array_equal(selector.priorities(items), before)


class _SkippingAgent:
  """An agent whose updates are all skipped (non-finite loss)."""
  batch_size, batch_length, replay_context, ensemble = 1, 2, 0, None

  def train(self, batch):
    del batch
    return {'opt/skipped': 1.0, 'opt/loss': float('nan')}, {}


class _Replay:
  prioritized = False

  def __len__(self):
    return 10**6

  def sample(self, batch_size, normalize=True):
    del batch_size, normalize
    return {}

  def stats(self):
    return {}


class _Pool:
  lost_episodes = []


class _SteppingDriver(_Driver):
  """One env; its `fail_at`-th step raises `error`."""
  pool = _Pool()

  def __init__(self, fail_at=None, error=None):
    self.fail_at, self.error, self.steps = fail_at, error, 0

  def __len__(self):
    return 1

  def step(self, seed):
    del seed
    self.steps += 1
    if self.steps == self.fail_at:
      raise self.error


def _loop(driver, steps, **settings):
  counters = loop_lib.Counters(0, 'test', loop_lib.TrainRatio(2, 2), '/ckpt')
  saves = []
  loop = loop_lib.Loop(
      _SkippingAgent(), _Replay(), _Logger(), driver, None, counters,
      loop_lib.Settings(steps=steps, report_every=0, log_every=1e9,
                        save_every=1e9, **settings),
      save=lambda: saves.append(counters.policy_steps))
  return loop, saves


def test_a_run_whose_updates_were_all_skipped_raises_after_its_checkpoint():
  # 9 updates, fewer than max_nonfinite: the run must not end as if trained.
  loop, saves = _loop(_SteppingDriver(), steps=10)
  with pytest.raises(failures.NonFiniteError,
                     match=r"9 of the run's 9 updates were skipped"):
    loop.run()
  assert saves == [10]  # The final checkpoint, then the error.
  # Said on the console at the 1st, 2nd, 4th and 8th skipped update.
  assert [w.split(':')[0] for w in loop.logger.warnings] == [
      f'Update {n} skipped' for n in (1, 2, 4, 8)]
  assert 'train.max_nonfinite = 100' in loop.logger.warnings[0]


def test_the_memory_the_first_update_freed_is_given_back_once(monkeypatch):
  """run/memory.py's trim runs after the first update (the one that
  compiles), not after every update."""
  calls = []
  monkeypatch.setattr(loop_lib.memory, 'release_free_memory',
                      lambda: calls.append(1) or True)
  loop, _ = _loop(_SteppingDriver(), steps=10)
  with pytest.raises(failures.NonFiniteError):  # All 9 updates skipped.
    loop.run()
  assert loop.counters.ratio.updates == 9 and calls == [1]


def test_too_many_skipped_updates_stop_the_run_with_a_checkpoint():
  loop, saves = _loop(_SteppingDriver(), steps=100, max_nonfinite=3)
  with pytest.raises(failures.NonFiniteError, match='3 updates had a non-'
                     'finite loss') as error:
    loop.run()
  assert saves == [4]
  assert 'stopped at policy step 4 (frame 4, update 2)' in str(
      error.value.__notes__)


def test_a_bad_env_output_stops_the_run_with_a_checkpoint_of_its_last_step():
  error = parallel.EnvOutputError("Env worker 0 (...): 'reward' = nan")
  loop, saves = _loop(_SteppingDriver(fail_at=4, error=error), steps=100,
                      max_nonfinite_share=1.0)
  with pytest.raises(parallel.EnvOutputError) as raised:
    loop.run()
  assert raised.value is error and saves == [3]
  (note,) = error.__notes__
  assert note.startswith('The run stopped at policy step 3 (frame 3, update '
                         '2); its last good state is checkpointed in /ckpt')


class _RecordingAgent:
  """Records the intrinsic weight and batch of each (applied) update."""
  batch_size, batch_length, ensemble = 4, 2, object()

  def __init__(self):
    self.weights, self.batches = [], []

  def set_intrinsic_weight(self, weight):
    self.weights.append(weight)

  def train(self, batch):
    self.batches.append(batch)
    return {'opt/skipped': 0.0, 'opt/loss': 1.0}, {'stepid': batch['stepid']}


class _TwoWorkers(workers_lib.Solo):
  """This worker of two; the other worker's schedule gives `weight` and
  its largest raw importance weight is `largest`."""
  workers = 2

  def __init__(self, weight, largest):
    self.weight, self.largest = weight, largest
    self.exchanges = 0

  def mean_and_max(self, mean_of, max_of):
    self.exchanges += 1
    return (mean_of + self.weight) / 2, max(max_of, self.largest)


def _weighted_replay():
  """A replay with importance weights whose steps 0..7 have priorities."""
  replay = replay_lib.Replay(capacity=100, chunk_size=8, length=3,
                             online=False, seed=1,
                             fracs=dict(uniform=0.5, priority=0.5),
                             prio_zero_on_sample=False, importance=0.6)
  for t in range(30):
    replay.add(dict(x=np.float32(t), is_first=np.array(t == 0)))
  replay.update(dict(stepid=np.array([[[0, i] for i in range(8)]]),
                     priority=np.arange(8.0)[None]))
  return replay


def test_workers_share_the_intrinsic_weight_and_the_importance_max():
  """With several workers every replica must train on the same objective:
  the intrinsic weight is the mean of the workers' schedules (a
  returns-driven one sees only its worker's episodes) and importance
  weights are divided by the largest raw weight of any worker's rows."""
  raw = _weighted_replay().sample(2, normalize=False)[replay_lib.WEIGHT]
  assert raw.dtype == np.float64
  largest = 10 * raw.max()  # The other worker's rows weigh more.
  counters = loop_lib.Counters(0, 'test', loop_lib.TrainRatio(1, 1), '/tmp',
                               schedules.Fixed(0.2))
  agent = _RecordingAgent()
  cluster = _TwoWorkers(0.6, largest)
  loop = loop_lib.Loop(agent, _weighted_replay(), _Logger(), _Driver(), None,
                       counters, loop_lib.Settings(steps=1),
                       save=lambda: None, cluster=cluster)
  assert loop.batch_share == 2
  loop._update()  # pylint: disable=protected-access  # The same draws.
  assert cluster.exchanges == 1  # One all-gather for both per update.
  assert agent.weights == [pytest.approx(0.4)]
  assert loop.logger.records[0][1] == {
      'explore/intrinsic_weight': pytest.approx(0.4)}
  got = agent.batches[0][replay_lib.WEIGHT]
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, (raw / largest).astype(np.float32))
  assert got.max() < 0.2  # Not divided by this worker's own max.
  # One worker: the weights are those Replay.sample normalises itself.
  solo = _weighted_replay().sample(2)[replay_lib.WEIGHT]
  np.testing.assert_array_equal(solo, (raw / raw.max()).astype(np.float32))


def _uniform_replay():
  replay = replay_lib.Replay(capacity=100, chunk_size=8, length=3,
                             online=False, seed=1)
  for t in range(30):
    replay.add(dict(x=np.float32(t), is_first=np.array(t == 0)))
  return replay


@pytest.mark.parametrize('exploring, weighted', [
    (True, False), (False, True), (False, False)])
def test_one_exchange_for_what_the_update_needs(exploring, weighted):
  """Each worker exchanges once per update if the update needs the mean
  weight or the importance max (both set by the config, so all workers
  agree), and never otherwise; what it does not need stays untouched."""
  replay = _weighted_replay() if weighted else _uniform_replay()
  raw = (replay.sample(2, normalize=False)[replay_lib.WEIGHT] if weighted
         else None)
  replay = _weighted_replay() if weighted else _uniform_replay()
  schedule = schedules.Fixed(0.2) if exploring else None
  counters = loop_lib.Counters(0, 'test', loop_lib.TrainRatio(1, 1), '/tmp',
                               schedule)
  agent = _RecordingAgent()
  cluster = _TwoWorkers(0.6, largest=7.0)
  loop = loop_lib.Loop(agent, replay, _Logger(), _Driver(), None, counters,
                       loop_lib.Settings(steps=1), save=lambda: None,
                       cluster=cluster)
  loop._update()  # pylint: disable=protected-access
  assert cluster.exchanges == int(exploring or weighted)
  assert agent.weights == ([pytest.approx(0.4)] if exploring else [])
  assert bool(loop.logger.records) == exploring
  batch = agent.batches[0]
  assert (replay_lib.WEIGHT in batch) == weighted
  if weighted:
    np.testing.assert_array_equal(batch[replay_lib.WEIGHT],
                                  (raw / 7.0).astype(np.float32))
