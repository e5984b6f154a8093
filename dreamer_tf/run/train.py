"""`train`: one run from its factories, resumable from its logdir.

Spec §4.1-§4.2, §8.13. `train` builds the parts of a run — env workers and
their driver, the agent, the replay, the logger, the counters — hands them
to the loop (`run/loop.py`) and keeps them in one checkpoint of named parts
(`run/checkpoint.py`):

  agent       model signature + parameters, slow critic, return statistics,
              optimizer state
  counters    policy steps, episodes, updates, train-ratio start, seed, RNG
  replay      the replay saves itself under <logdir>/replay at each
              checkpoint (its own atomic format)
  driver      live observations, policy carry, episode sums, env states
  eval_envs   the evaluation envs' states (evaluations replay exactly)
  logger      the JSONL files' lengths (a resume drops later records)

It holds `<logdir>/run.lock` while it runs (`run/lock.py`: a second run on
the logdir refuses at once, naming this one), and writes the run record
`<logdir>/run.json` (`run/record.py`), the
resolved gin config `<logdir>/config.gin` (the bindings the run was given)
and `<logdir>/operative_config.gin` (every parameter of every configurable
the run built, defaults included) once the checkpoint accepted them.
"""
import contextlib
import functools
import os

import gin

from dreamer_tf import envs as envs_lib
from dreamer_tf.envs import parallel
from dreamer_tf.model import agent as agent_lib
from dreamer_tf.replay import Replay
from dreamer_tf.run import DONE_FILE
from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import driver as driver_lib
from dreamer_tf.run import lock as lock_lib
from dreamer_tf.run import logger as log_lib
from dreamer_tf.run import loop as loop_lib
from dreamer_tf.run import record as record_lib
from dreamer_tf.run import schedules

OPERATIVE_CONFIG = 'operative_config.gin'


@gin.configurable
def train(
    logdir, env=envs_lib.DEFAULT, env_kwargs=None, num_envs=1,
    steps=int(1e5),
    train_ratio=512.0, frames_per_step=None, log_every=60.0,
    save_every=600.0, save_every_steps=0, report_every=300.0,
    eval_every=0, eval_episodes=1,
    eval_mode=False, replay_capacity=int(5e6), seed=0, max_nonfinite=100,
    intrinsic_schedule=None):
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
  intrinsic_schedule: the intrinsic reward's weight over the run when
  `Exploration.signal` is on (`run/schedules.py`; default `Fixed()`).
  Returns the final counters.
  """
  os.makedirs(logdir, exist_ok=True)
  env_kwargs = dict(env_kwargs or {})
  record = record_lib.RunRecord(
      env=env, env_kwargs=env_kwargs, seed=seed, num_envs=num_envs,
      frames_per_step=envs_lib.frames_per_step(env, env_kwargs,
                                               frames_per_step),
      steps=int(steps), train_ratio=float(train_ratio))
  settings = loop_lib.Settings(
      steps=int(steps), train_ratio=train_ratio,
      frames_per_step=record.frames_per_step, log_every=log_every,
      save_every=save_every, save_every_steps=save_every_steps,
      report_every=report_every, eval_every=eval_every,
      eval_episodes=eval_episodes, eval_mode=eval_mode,
      max_nonfinite=max_nonfinite)
  with contextlib.ExitStack() as stack:  # Closes whatever was opened.
    # One writer per logdir: a second run stops here (run/lock.py).
    stack.enter_context(lock_lib.RunLock(logdir))
    # Refused before anything is started or changed: another experiment (a
    # seed change is refused by the counters part, naming --seed).
    record_lib.check(logdir, record, ('env', 'env_kwargs', 'frames_per_step'))
    pool = stack.enter_context(_pool(
        env, env_kwargs, [seed * 1000 + i for i in range(num_envs)]))
    eval_pool = stack.enter_context(_pool(env, env_kwargs, [
        10**6 + seed * 1000 + i for i in range(min(eval_episodes, 4))]
                                          )) if eval_every else None
    logger = log_lib.Logger(logdir)
    stack.callback(logger.close)
    agent = agent_lib.Agent(pool.obs_space, pool.act_space, seed=seed)
    replay = Replay(os.path.join(logdir, 'replay'), capacity=replay_capacity,
                    length=agent.sequence_length, seed=seed)
    ckpt_dir = os.path.join(logdir, 'ckpt')
    ratio = loop_lib.TrainRatio(train_ratio,
                                agent.batch_size * agent.batch_length)
    schedule = None
    if agent.ensemble is not None:
      schedule = intrinsic_schedule or schedules.Fixed()
    counters = loop_lib.Counters(seed, env, ratio, ckpt_dir, schedule)
    driver = driver_lib.Driver(agent, pool)
    parts = dict(
        agent=ckpt_lib.AgentPart(
            agent, ckpt_dir, 'Use the original gin bindings or a new '
            '--logdir.'),
        counters=counters, replay=_ReplayPart(replay), driver=driver,
        # Also without evaluation: it may be turned on or off on a resume.
        eval_envs=driver_lib.EnvPoolState(eval_pool),
        logger=_LoggerPart(logger))
    checkpoint = ckpt_lib.Checkpoint(ckpt_dir, parts)
    if checkpoint.load() is None:
      driver.reset()
    else:
      _say_resumed(checkpoint, counters, record)
    # After the checkpoint accepted this config: a refused resume must not
    # overwrite the run's record of its config.
    record_lib.write(logdir, record)
    _write_config(logdir)
    loop = loop_lib.Loop(agent, replay, logger, driver, eval_pool, counters,
                         settings, checkpoint.save)
    result = loop.run()
    if result['policy_steps'] >= steps:
      _write_done(logdir, result)
    return result


def _pool(env, env_kwargs, seeds):
  """Env worker processes of `env`, one per seed."""
  return parallel.ParallelEnvs([
      functools.partial(envs_lib.make, env, seed=s, **env_kwargs)
      for s in seeds])


class _ReplayPart:
  """Checkpoint part of the replay: it saves itself (atomically, its own
  format, `replay/disk.py`) under <logdir>/replay with every checkpoint and
  loaded itself when it was built."""

  def __init__(self, replay):
    self.replay = replay

  def get_state(self):
    self.replay.save()
    return {}

  def set_state(self, state):
    del state


class _LoggerPart:
  """Checkpoint part of the logger: the JSONL files' lengths; a resume
  drops the records that a killed run wrote after the checkpoint."""

  def __init__(self, logger):
    self.logger = logger

  def get_state(self):
    return dict(position=self.logger.position())

  def set_state(self, state):
    self.logger.rewind(state['position'])


def _say_resumed(checkpoint, counters, record):
  """One console line: which checkpoint, at which frame and update."""
  print(f'Resuming from {checkpoint.checkpointer.loaded}: '
        f'{counters.policy_steps * record.frames_per_step:,} frames '
        f'({counters.policy_steps:,} policy steps), '
        f'{counters.ratio.updates:,} updates, {counters.episodes:,} '
        'episodes.', flush=True)


def _write_config(logdir):
  """<logdir>/config.gin (the bindings) and operative_config.gin (every
  parameter the run's configurables use), each written atomically."""
  for name, text in (('config.gin', gin.config_str()),
                     (OPERATIVE_CONFIG, gin.operative_config_str())):
    path = os.path.join(logdir, name)
    with open(path + '.tmp', 'w') as f:
      f.write(text)
    os.replace(path + '.tmp', path)


def _write_done(logdir, result):
  """Marks a run whose budget is spent: `<logdir>/done.json` (atomic)."""
  import json  # pylint: disable=import-outside-toplevel
  path = os.path.join(logdir, DONE_FILE)
  with open(path + '.tmp', 'w') as f:
    json.dump(result, f)
  os.replace(path + '.tmp', path)
