"""Evaluates a trained run: N episodes with its newest checkpoint.

  summary = evaluate('runs/cartpole', episodes=10)

Reads the run record `<logdir>/run.json` (env, its kwargs, frames per
step) and `<logdir>/config.gin` (the resolved model config), both written by
launch/train.py, builds the run's env in worker processes and its agent,
loads the agent part of the newest checkpoint (refusing one written by a different model
configuration) and runs `episodes` episodes with the stochastic policy, as
the paper evaluates, or with the policy's mode (`mode=True`). Writes into
`outdir` (default `<logdir>/eval`, files replaced):

  scores.jsonl   one record per episode, Logger.score's keys, kind 'eval'
  metrics.jsonl  the same scores as Logger scalars
  summary.json   mean, std, min, max, episodes and the settings used
  video.mp4      the first episode (video.gif where OpenCV is missing)

Episodes are spread over the envs in fixed quotas (each env contributes its
first k episodes): counting the first N episodes to finish would favour
short ones. With a video, the first episode runs alone on one recording env
(`recording.Recorder`), the others on `num_envs` envs afterwards. Eval envs
get seeds `EVAL_SEED + 1000 * seed + i`, apart from the training and
in-training eval envs.

Frames and the video file come from `dreamer_tf/run/recording.py`; envs
that cannot render are evaluated without a video, with a warning that says
why. This module imports TensorFlow (agent, config, training loop) inside
functions only. Spawned env workers re-import the caller's main module:
call `evaluate` from a script whose top level does not import TensorFlow
(like launch/evaluate.py) when dm_control renders, or its EGL renderer
crashes the worker (envs/dmc.py).
"""
import functools
import json
import os
import warnings

import gin
import numpy as np

from dreamer_tf import files
from dreamer_tf.analysis import achievements as achievements_lib
from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf import envs as envs_lib
from dreamer_tf.run import logger as log_lib
from dreamer_tf.envs import parallel
from dreamer_tf.run import driver as driver_lib
from dreamer_tf.run import record as record_lib
from dreamer_tf.run import recording

# Env seeds of evaluations: far from train (1000 s + i) and in-training eval
# envs (10**6 + 1000 s + i).
EVAL_SEED = 2 * 10**6

# --- Run directory ---------------------------------------------------------


def load_config(logdir):
  """Parses `<logdir>/config.gin` (replacing the current gin config) for
  the run's model settings; returns the run record (`run/record.py`: env,
  env_kwargs, frames_per_step, seed, budget)."""
  path = os.path.join(logdir, 'config.gin')
  if not os.path.exists(path):
    raise FileNotFoundError(
        f'{path} does not exist: evaluation needs the resolved config that '
        'launch/train.py writes into the run directory. Pass the --logdir '
        'of a training run.')
  # pylint: disable-next=import-outside-toplevel
  from dreamer_tf import config
  gin.clear_config()
  config.parse([path])
  return record_lib.load(logdir)


def load_checkpoint(logdir):
  """{part: state} of the newest valid checkpoint in `<logdir>/ckpt`."""
  directory = os.path.join(logdir, 'ckpt')
  states = ckpt_lib.read(directory)
  if states is None:
    raise ckpt_lib.CheckpointError(
        f'No checkpoint in {directory}: the run has not saved one yet. '
        f'Train first (python -m launch.train --logdir={logdir}) or pass '
        'the run directory that holds ckpt/.')
  return states


def build_agent(obs_space, act_space, states, logdir):
  """An Agent for the parsed config, holding the checkpoint's parameters.

  Raises CheckpointError naming the differing settings when the checkpoint
  was written by another model configuration.
  """
  # pylint: disable-next=import-outside-toplevel
  from dreamer_tf.model import agent as agent_lib
  agent = agent_lib.Agent(obs_space, act_space)
  ckpt_lib.AgentPart(
      agent, os.path.join(logdir, 'ckpt'),
      f'It differs from what {logdir}/config.gin describes: evaluate with '
      'the config.gin the run was trained with.').set_state(states['agent'])
  return agent


def env_spaces(env, env_kwargs):
  """(obs_space, act_space) of an env id, read in a worker process."""
  with parallel.ParallelEnvs([functools.partial(
      envs_lib.make, env, seed=EVAL_SEED, **env_kwargs)]) as pool:
    return pool.obs_space, pool.act_space


def restore_agent(logdir):
  """(agent, {part: state} of the checkpoint) of a run: config parsed,
  weights loaded."""
  record = load_config(logdir)
  states = load_checkpoint(logdir)
  _check_env(record, states, logdir)
  obs_space, act_space = env_spaces(record.env, record.env_kwargs)
  return build_agent(obs_space, act_space, states, logdir), states


def _check_env(record, states, logdir):
  saved = states['counters'].get('env')
  if saved is not None and saved != record.env:
    raise ckpt_lib.CheckpointError(
        f'The checkpoint in {logdir}/ckpt was trained on {saved!r}, but '
        f'{logdir}/run.json names {record.env!r}.')


# --- Evaluation ------------------------------------------------------------


def evaluate(logdir, episodes=10, mode=False, num_envs=1, video=True, seed=0,
             outdir=None, fps=recording.VIDEO_FPS):
  """Runs `episodes` episodes of the run in `logdir`; returns the summary.

  mode: act with the policy's mode instead of sampling (the paper samples).
  num_envs: env worker processes. video: record the first episode.
  seed: seeds the envs and the policy's sampling. outdir: where the files
  go (default `<logdir>/eval`). See the module docstring.
  """
  if episodes < 1 or num_envs < 1:
    raise ValueError(f'episodes={episodes} and num_envs={num_envs} must be '
                     '>= 1.')
  record = load_config(logdir)
  states = load_checkpoint(logdir)
  _check_env(record, states, logdir)
  outdir = outdir or os.path.join(logdir, 'eval')
  os.makedirs(outdir, exist_ok=True)
  env, env_kwargs = record.env, record.env_kwargs
  rng = np.random.default_rng(seed)

  def ctor(index, **extra):
    return functools.partial(
        envs_lib.make, env, seed=EVAL_SEED + 1000 * seed + index,
        **{**env_kwargs, **extra})

  results, frames, note, pools = [], [], None, []
  try:
    recorder = None
    if video:
      recorder, note = recording.recording_pool(
          ctor(0, **recording.render_kwargs(env)))
      pools.append(recorder)
      if note:
        warnings.warn(f'No video for {env}: {note}', stacklevel=2)
    rest = episodes - (recorder is not None)
    count = min(num_envs, rest)
    main = parallel.ParallelEnvs(
        [ctor(i + 1) for i in range(count)]) if rest else None
    pools.append(main)
    first = recorder or main
    obs_space = {k: v for k, v in first.obs_space.items()
                 if k != recording.FRAME_KEY}
    agent = build_agent(obs_space, first.act_space, states, logdir)
    if recorder:
      results, frames = driver_lib.run_episodes(
          agent, recorder, [1], mode, rng, recording.FRAME_KEY)
      recorder.close()  # Frees the renderer now (closing twice is fine).
      if recorder.lost_episodes:
        warnings.warn('The recording env crashed during the first episode: '
                      'the video shows a restarted episode.')
    if main:
      quotas = driver_lib.episode_quotas(rest, count)
      results += driver_lib.run_episodes(agent, main, quotas, mode, rng)[0]
  finally:
    for pool in pools:
      if pool:
        pool.close()

  policy_steps = states['counters']['policy_steps']
  step = policy_steps * record.frames_per_step
  _write_scores(outdir, results, step)
  video_path = None
  if frames:
    video_path = recording.write_video(os.path.join(outdir, 'video'),
                                       frames, fps)
  scores = np.array([e.score for e in results])
  lengths = [e.length for e in results]
  summary = dict(
      episodes=len(results), mean=float(scores.mean()),
      std=float(scores.std()), min=float(scores.min()),
      max=float(scores.max()), length_mean=float(np.mean(lengths)),
      scores=scores.tolist(), lengths=lengths,
      policy='mode' if mode else 'sample', env=env, seed=seed,
      **_achievement_summary([e.logs for e in results]),
      logdir=logdir, policy_steps=policy_steps, step=step,
      video=video_path, video_skipped=None if frames or not video else note)
  files.write_atomic(os.path.join(outdir, 'summary.json'),
                     json.dumps(summary, indent=2))
  return summary


def _achievement_summary(logs):
  """{achievements: {name: success %}, crafter_score} when the episodes
  carry achievement counts (Crafter), else {}."""
  rates = achievements_lib.success_rates(logs)
  if not rates:
    return {}
  return dict(achievements=rates,
              crafter_score=achievements_lib.crafter_score(rates))


def _write_scores(outdir, results, step):
  """scores.jsonl and metrics.jsonl of `outdir`, replacing old ones."""
  for name in ('scores.jsonl', 'metrics.jsonl'):
    if os.path.exists(os.path.join(outdir, name)):
      os.remove(os.path.join(outdir, name))
  logger = log_lib.Logger(outdir, tensorboard=False, console=False)
  try:
    for episode in results:
      logger.score(episode.score, episode.length, step, kind='eval',
                   **episode.logs)
  finally:
    logger.close()
