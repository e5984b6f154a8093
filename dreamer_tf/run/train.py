"""`train`: one run from its factories, resumable from its logdir.

Spec §4.1-§4.2, §8.13. `train` builds the parts of a run — env workers and
their driver, the agent, the replay, the logger, the counters — hands them
to the loop (`run/loop.py`) and keeps them in one checkpoint of named parts
(`run/checkpoint.py`):

  agent       model signature + parameters, slow critic, return statistics,
              optimizer state
  counters    policy steps, episodes, updates, train-ratio start, seed, RNG
  replay      the generation of the replay save written with the checkpoint
              (the replay saves itself under <logdir>/replay, its own
              atomic format, keeping the saves that checkpoints name)
  driver      live observations, policy carry, episode sums, env states
  eval_envs   the evaluation envs' states (evaluations replay exactly)
  logger      the JSONL files' lengths (a resume drops later records)

It first resolves the `tf.distribute` strategy (`run/distribute.py`:
`strategy`, `cpu_replicas`), before any TensorFlow op so that the CPU can
still be split into logical devices, says it on one console line and
records it in run.json; the agent trains with it.

It holds `<logdir>/run.lock` while it runs (`run/lock.py`: a second run on
the logdir refuses at once, naming this one), and writes the run record
`<logdir>/run.json` (`run/record.py`), the
resolved gin config `<logdir>/config.gin` (the bindings the run was given)
and `<logdir>/operative_config.gin` (every parameter of every configurable
the run built, defaults included) once the checkpoint accepted them; the
operative config is rewritten with every checkpoint, as configurables
first called by the update join it.

Multi-worker runs (`strategy='multi_worker'`): every worker runs `train`
with the same arguments. The chief (worker 0) works in `logdir` as a
one-process run does and alone evaluates; worker i keeps its own run
record, checkpoints, replay shard and logs in `<logdir>/worker-<i>` (a
logdir on a shared file system, or the same path on each machine). Env
seeds continue over the workers (`env_seeds`), so they see different
episodes. Policy steps, the train ratio and the budget count every
worker's envs; each worker samples its share of the global batch
(`Agent.batch_size` / workers); stops, timed checkpoints and the start of
training are agreed by vote (`run/workers.py`), so all workers save at the
same update and resume from the same position. A resume with another
worker count is refused.

A checkpoint and its replay save are one commit: a resume restores the
newest checkpoint whose replay save is intact, all parts from that one
checkpoint. When no checkpoint's replay save is (the replay directory was
deleted, a chunk file is corrupt), the run refuses and says what is lost,
unless `lost_replay='empty'`: then it resumes the newest checkpoint with an
empty replay and trains again once the replay has refilled.
"""
import contextlib
import functools
import os
import warnings

import gin

from dreamer_tf import envs as envs_lib
from dreamer_tf import files as files_lib
from dreamer_tf.config_check import ConfigError
from dreamer_tf.envs import parallel
from dreamer_tf.model import agent as agent_lib
from dreamer_tf import replay as replay_lib
from dreamer_tf.run import DONE_FILE
from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import distribute
from dreamer_tf.run import driver as driver_lib
from dreamer_tf.run import lock as lock_lib
from dreamer_tf.run import logger as log_lib
from dreamer_tf.run import loop as loop_lib
from dreamer_tf.run import record as record_lib
from dreamer_tf.run import schedules
from dreamer_tf.run import workers as workers_lib

OPERATIVE_CONFIG = 'operative_config.gin'
# Where the records of an attempt that never checkpointed are moved.
ABANDONED = 'abandoned'
LOST_REPLAY = ('refuse', 'empty')  # What a resume does without its replay.


@gin.configurable
def train(
    logdir, env=envs_lib.DEFAULT, env_kwargs=None, num_envs=1,
    steps=int(1e5),
    train_ratio=512.0, frames_per_step=None, log_every=60.0,
    save_every=600.0, save_every_steps=0, report_every=300.0,
    eval_every=0, eval_episodes=1,
    eval_mode=False, replay_capacity=int(5e6), seed=0, max_nonfinite=100,
    max_nonfinite_share=0.5, intrinsic_schedule=None, lost_replay='refuse',
    strategy='auto', cpu_replicas=1, collective_timeout=3600.0,
    slurm_port_base=8888):
  """Trains one agent until `steps` policy steps; resumes from `logdir`.

  env: 'suite:task' id (see dreamer_tf.envs), env_kwargs for its
  constructor (e.g. {'repeat': 2}); num_envs worker processes.
  steps: policy steps over all envs (frames = steps * frames_per_step).
  eval_every: policy steps between evaluations (0: none), each running
  `eval_episodes` episodes on separate eval envs (stochastic policy unless
  eval_mode). Checkpoints every `save_every` seconds, every
  `save_every_steps` policy steps (0: off) and at exit. Every
  `report_every` seconds (0: never) an open-loop report (§4.4) logs the
  prediction errors and, for image observations, a TensorBoard video.
  max_nonfinite: skipped updates (non-finite loss or gradient) at which the
  run stops; max_nonfinite_share: the share of skipped updates at which a
  run that ends raises instead of returning (`run/failures.py`).
  intrinsic_schedule: the intrinsic reward's weight over the run when
  `Exploration.signal` is on (`run/schedules.py`; default `Fixed()`).
  lost_replay: 'refuse' (default) or 'empty', what a resume does when no
  checkpoint's replay save is intact (see the module docstring).
  strategy: 'auto', 'default', 'mirrored' or 'multi_worker';
  cpu_replicas: logical CPU devices for 'mirrored' on a machine without
  GPUs (`run/distribute.py`). A resume may use another strategy or replica
  count (a note says it is then not bit-exact), not another worker count.
  collective_timeout: seconds a multi-worker collective waits for a worker
  that does not answer; slurm_port_base: the port of the first worker on a
  SLURM node (the node's next workers take the next ports).
  Returns the final counters.

  With several workers (module docstring, "Multi-worker runs") every
  worker runs this with the same arguments.
  """
  if lost_replay not in LOST_REPLAY:
    raise ValueError(f'train.lost_replay={lost_replay!r}; use one of '
                     f'{LOST_REPLAY}.')
  # First: the CPU split must precede every TensorFlow op of the process.
  distribution = distribute.resolve(strategy, cpu_replicas,
                                    collective_timeout=collective_timeout,
                                    slurm_port_base=slurm_port_base)
  print(distribution.describe(), flush=True)
  cluster = (workers_lib.Cluster(distribution) if distribution.workers > 1
             else workers_lib.Solo())
  logdir = worker_directory(logdir, distribution.worker)
  os.makedirs(logdir, exist_ok=True)
  env_kwargs = dict(env_kwargs or {})
  seeds = env_seeds(seed, num_envs, distribution.worker, distribution.workers)
  record = record_lib.RunRecord(
      env=env, env_kwargs=env_kwargs, seed=seed, num_envs=num_envs,
      frames_per_step=envs_lib.frames_per_step(env, env_kwargs,
                                               frames_per_step),
      steps=int(steps), train_ratio=float(train_ratio),
      **distribution.record())
  settings = loop_lib.Settings(
      steps=int(steps), train_ratio=train_ratio,
      frames_per_step=record.frames_per_step, log_every=log_every,
      save_every=save_every, save_every_steps=save_every_steps,
      report_every=report_every, eval_every=eval_every,
      eval_episodes=eval_episodes, eval_mode=eval_mode,
      max_nonfinite=max_nonfinite, max_nonfinite_share=max_nonfinite_share)
  with contextlib.ExitStack() as stack:  # Closes whatever was opened.
    # One writer per logdir: a second run stops here (run/lock.py).
    stack.enter_context(lock_lib.RunLock(logdir))
    # Refused before anything is started or changed: another experiment (a
    # seed change is refused by the counters part, naming --seed).
    previous = record_lib.check(logdir, record,
                                ('env', 'env_kwargs', 'frames_per_step'))
    if previous is not None:
      distribute.check_workers(previous, distribution)
    pool = stack.enter_context(_pool(env, env_kwargs, seeds))
    eval_pool = None
    if eval_every and distribution.is_chief:  # The chief alone evaluates.
      eval_pool = stack.enter_context(_pool(env, env_kwargs, [
          10**6 + seed * 1000 + i for i in range(min(eval_episodes, 4))]))
    logger = log_lib.Logger(logdir)
    stack.callback(logger.close)
    agent = agent_lib.Agent(pool.obs_space, pool.act_space, seed=seed,
                            strategy=distribution.strategy)
    ckpt_dir = os.path.join(logdir, 'ckpt')
    # Empty until a checkpoint names the save to load (`_ReplayPart`).
    replay = replay_lib.Replay(
        os.path.join(logdir, 'replay'), capacity=replay_capacity,
        length=agent.sequence_length, context=agent.replay_context,
        seed=_stream(seed, distribution.worker), restore=False)
    replay_part = _ReplayPart(replay, ckpt_dir)
    ratio = loop_lib.TrainRatio(train_ratio,
                                agent.batch_size * agent.batch_length)
    schedule = None
    if agent.ensemble is not None:
      schedule = intrinsic_schedule or schedules.Fixed()
    counters = loop_lib.Counters(seed, env, ratio, ckpt_dir, schedule,
                                 rng_seed=_stream(seed, distribution.worker))
    driver = driver_lib.Driver(agent, pool)
    parts = dict(
        agent=ckpt_lib.AgentPart(
            agent, ckpt_dir, 'Use the original gin bindings or a new '
            '--logdir.'),
        counters=counters, replay=replay_part, driver=driver,
        # Also without evaluation: it may be turned on or off on a resume.
        eval_envs=driver_lib.EnvPoolState(eval_pool),
        logger=_LoggerPart(logger))
    checkpoint = ckpt_lib.Checkpoint(
        ckpt_dir, parts, unavailable=(replay_lib.ReplayCorruptError,))
    if _load(checkpoint, replay_part, lost_replay, cluster) is None:
      _start_over(logger, logdir)
      driver.reset()
    else:
      _say_resumed(checkpoint, counters, record)
      note = distribute.resume_note(previous, distribution)
      if note:
        print(note, flush=True)
      if replay_part.lost:
        counters.ratio.reanchor()  # No catch-up burst after the refill.
        print(replay_part.lost, flush=True)
    # After the checkpoint accepted this config: a refused resume must not
    # overwrite the run's record of its config.
    record_lib.write(logdir, record)
    _write_config(logdir)

    def save():
      checkpoint.save()
      _write_config(logdir, operative_only=True)

    loop = loop_lib.Loop(agent, replay, logger, driver, eval_pool, counters,
                         settings, save, cluster)
    result = loop.run()
    if result['policy_steps'] >= steps:
      if result['updates'] > result['skipped_updates']:
        _write_done(logdir, result)
      else:  # Not done: a rerun with a larger budget goes on training.
        logger.warn(
            f'The budget of {steps:,} policy steps ended before any update '
            'was applied (the replay was still filling): no done.json was '
            'written. Raise train.steps to train.')
    return result


def worker_directory(logdir, worker):
  """Where a worker keeps its checkpoints, replay shard and logs: the
  logdir for the chief (worker 0), <logdir>/worker-<i> for worker i."""
  return logdir if worker == 0 else os.path.join(logdir, f'worker-{worker}')


def env_seeds(seed, num_envs, worker=0, workers=1):
  """Seeds of this worker's training envs: seed * 1000 + the env's index
  over all workers (workers see different episodes). ConfigError when the
  run has more than 1000 envs (they would reach the next seed's)."""
  if num_envs * workers > 1000:
    raise ConfigError(
        f'train.num_envs={num_envs} x {workers} worker(s) = '
        f'{num_envs * workers} envs: a run has at most 1000 (env seeds are '
        'seed * 1000 + env index). Use fewer envs per worker.')
  return [seed * 1000 + worker * num_envs + i for i in range(num_envs)]


def _stream(seed, worker):
  """A worker's seed for its replay sampler and loop RNG: the run's seed
  for the chief (a one-worker run is unchanged), [seed, worker] else."""
  return seed if worker == 0 else [seed, worker]


def _pool(env, env_kwargs, seeds):
  """Env worker processes of `env`, one per seed."""
  return parallel.ParallelEnvs([
      functools.partial(envs_lib.make, env, seed=s, **env_kwargs)
      for s in seeds])


def _load(checkpoint, replay_part, lost_replay, cluster):
  """Restores the newest checkpoint that has its replay save; without one,
  refuses, or (lost_replay='empty') resumes the newest with an empty
  replay. Returns the checkpoint's state, None when there is none.

  Several workers first agree on the newest position (policy steps) that
  every worker has a checkpoint of, and each restores its own."""
  accept = None
  if cluster.workers > 1:
    positions = [state['parts']['counters']['policy_steps'] for state in
                 checkpoint.checkpointer.states().values()
                 if 'counters' in state.get('parts', {})]
    position = cluster.common(positions)
    if position is None:
      return None
    accept = lambda state: (  # pylint: disable=g-long-lambda
        state['parts']['counters']['policy_steps'] == position)
  try:
    return checkpoint.load(accept)
  except ckpt_lib.PartsUnavailableError as e:
    if lost_replay != 'empty':
      raise ckpt_lib.CheckpointError(
          f'{e}\nThe agent in these checkpoints is intact; the experience '
          'it was trained on is not. Restore '
          f'{replay_part.replay.directory} from a backup and rerun; or '
          'resume with an empty replay (the agent keeps its parameters, '
          'optimizer and counters; training waits until the replay has '
          'refilled) by adding --gin_param="train.lost_replay=\'empty\'"; '
          'or start a new --logdir.') from None
  replay_part.allow_lost = True
  with warnings.catch_warnings():  # Said once, by `_ReplayPart.lost`.
    warnings.simplefilter('ignore')
    return checkpoint.load(accept)


class _ReplayPart:
  """Checkpoint part of the replay: with every checkpoint the replay
  saves itself (atomically, its own format, `replay/disk.py`) under
  <logdir>/replay, keeping the saves the existing checkpoints name; the
  checkpoint holds the save's generation and restoring loads that save.

  allow_lost: restore an empty replay when the save is missing or damaged
  (`lost` then says what was lost) instead of raising ReplayCorruptError.
  """

  def __init__(self, replay, ckpt_dir):
    self.replay, self.ckpt_dir = replay, ckpt_dir
    self.allow_lost, self.lost = False, None

  def get_state(self):
    kept = [state['parts']['replay'].get('generation')
            for state in ckpt_lib.Checkpointer(self.ckpt_dir).states().values()
            if 'replay' in state.get('parts', {})]
    generation = self.replay.save(keep=[g for g in kept if g is not None])
    return dict(generation=generation, items=len(self.replay),
                steps=self.replay.stats()['steps'])

  def set_state(self, state):
    # No generation: a checkpoint from before replay generations were kept.
    try:
      self.replay.load(state.get('generation'))
      self.lost = None
    except replay_lib.ReplayCorruptError as e:
      if not self.allow_lost:
        raise
      self.replay.clear()
      self.lost = (
          f'Resuming with an EMPTY replay (train.lost_replay=\'empty\'): '
          f'{e} Lost: {state.get("steps", "?")} stored steps '
          f'({state.get("items", "?")} sequences); training waits until the '
          'replay has refilled.')


class _LoggerPart:
  """Checkpoint part of the logger: the JSONL files' lengths; a resume
  drops the records that a killed run wrote after the checkpoint."""

  def __init__(self, logger):
    self.logger = logger

  def get_state(self):
    return dict(position=self.logger.position())

  def set_state(self, state):
    self.logger.rewind(state['position'])


def _start_over(logger, logdir):
  """A run without a checkpoint starts from step 0: records an earlier
  attempt logged before it was stopped ahead of its first checkpoint move
  to <logdir>/abandoned (kept, not mixed into this attempt's steps), and a
  warning says so."""
  directory = os.path.join(logdir, ABANDONED)
  moved = logger.abandon(directory)
  if moved:
    logger.warn(
        'An earlier attempt in this logdir stopped before its first '
        'checkpoint; the run starts over from step 0. Its records (' +
        ', '.join(f'{n} in {name}' for name, n in sorted(moved.items())) +
        f') were moved to {directory}.')


def _say_resumed(checkpoint, counters, record):
  """One console line: which checkpoint, at which frame and update."""
  print(f'Resuming from {checkpoint.checkpointer.loaded}: '
        f'{counters.policy_steps * record.frames_per_step:,} frames '
        f'({counters.policy_steps:,} policy steps), '
        f'{counters.ratio.updates:,} updates, {counters.episodes:,} '
        'episodes.', flush=True)


def _write_config(logdir, operative_only=False):
  """<logdir>/config.gin (the bindings) and operative_config.gin (every
  parameter the run's configurables use), each written atomically.

  gin lists a configurable in the operative config only once it has been
  called, and some are first called when the first update is traced (e.g.
  `imagination_losses`), so the loop rewrites operative_config.gin with
  every checkpoint (`operative_only`)."""
  configs = [(OPERATIVE_CONFIG, gin.operative_config_str())]
  if not operative_only:
    configs.append(('config.gin', gin.config_str()))
  for name, text in configs:
    files_lib.write_atomic(os.path.join(logdir, name), text)


def _write_done(logdir, result):
  """Marks a run whose budget is spent: `<logdir>/done.json` (atomic)."""
  import json  # pylint: disable=import-outside-toplevel
  files_lib.write_atomic(os.path.join(logdir, DONE_FILE), json.dumps(result))
