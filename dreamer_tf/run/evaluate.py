"""Evaluates a trained run: N episodes with its newest checkpoint.

  summary = evaluate('runs/cartpole', episodes=10)

Reads `<logdir>/config.gin` (the resolved config launch/train.py writes),
builds the run's env in worker processes and its agent, loads the agent
tensors of the newest checkpoint (refusing one written by a different model
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
import inspect
import json
import os
import typing
import warnings

import gin
import numpy as np

from dreamer_tf.analysis import achievements as achievements_lib
from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf import envs as envs_lib
from dreamer_tf.run import logger as log_lib
from dreamer_tf.envs import parallel
from dreamer_tf.run import recording

# Env seeds of evaluations: far from train (1000 s + i) and in-training eval
# envs (10**6 + 1000 s + i).
EVAL_SEED = 2 * 10**6

# --- Run directory ---------------------------------------------------------


def load_config(logdir):
  """Parses `<logdir>/config.gin` (replacing the current gin config).

  Returns the env settings of the run: {env, env_kwargs, frames_per_step}.
  """
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
  env = _train_arg('env')
  suite = envs_lib.parse(env)[0]
  # pylint: disable-next=import-outside-toplevel
  from dreamer_tf.run import train as train_lib
  env_kwargs = dict(_train_arg('env_kwargs') or {})
  return dict(
      env=env, env_kwargs=env_kwargs,
      frames_per_step=train_lib.env_frames_per_step(
          suite, env_kwargs, _train_arg('frames_per_step')))


def _train_arg(name):
  """`train.<name>` as bound in the parsed config, else train's default."""
  try:
    return gin.query_parameter(f'train.{name}')
  except ValueError:
    # pylint: disable-next=import-outside-toplevel
    from dreamer_tf.run import train as train_lib
    return inspect.signature(train_lib.train).parameters[name].default


def load_checkpoint(logdir):
  """(tensors, state) of the newest valid checkpoint in `<logdir>/ckpt`."""
  directory = os.path.join(logdir, 'ckpt')
  loaded = (ckpt_lib.Checkpointer(directory).load()
            if os.path.isdir(directory) else None)
  if loaded is None:
    raise ckpt_lib.CheckpointError(
        f'No checkpoint in {directory}: the run has not saved one yet. '
        f'Train first (python -m launch.train --logdir={logdir}) or pass '
        'the run directory that holds ckpt/.')
  return loaded


def build_agent(obs_space, act_space, tensors, state, logdir):
  """An Agent for the parsed config, holding the checkpoint's tensors.

  Raises CheckpointError naming the differing settings when the checkpoint
  was written by another model configuration.
  """
  # pylint: disable-next=import-outside-toplevel
  from dreamer_tf.model import agent as agent_lib
  agent = agent_lib.Agent(obs_space, act_space)
  current = json.loads(json.dumps(agent.signature()))
  diff = ckpt_lib.signature_diff(state['signature'], current)
  if diff:
    raise ckpt_lib.CheckpointError(
        f'The checkpoint in {os.path.join(logdir, "ckpt")} was written by a '
        f'different model configuration than {logdir}/config.gin '
        'describes:\n  ' + '\n  '.join(diff) +
        '\nEvaluate with the config.gin the run was trained with.')
  agent.set_state(tensors[:state['agent_tensors']])
  return agent


def env_spaces(env, env_kwargs):
  """(obs_space, act_space) of an env id, read in a worker process."""
  with parallel.ParallelEnvs([functools.partial(
      envs_lib.make, env, seed=EVAL_SEED, **env_kwargs)]) as pool:
    return pool.obs_space, pool.act_space


def restore_agent(logdir):
  """(agent, checkpoint state) of a run: config parsed, weights loaded."""
  settings = load_config(logdir)
  tensors, state = load_checkpoint(logdir)
  _check_env(settings, state, logdir)
  obs_space, act_space = env_spaces(settings['env'], settings['env_kwargs'])
  return build_agent(obs_space, act_space, tensors, state, logdir), state


def _check_env(settings, state, logdir):
  saved = state.get('env')
  if saved is not None and saved != settings['env']:
    raise ckpt_lib.CheckpointError(
        f'The checkpoint in {logdir}/ckpt was trained on {saved!r}, but '
        f'{logdir}/config.gin sets train.env={settings["env"]!r}.')


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
  settings = load_config(logdir)
  tensors, state = load_checkpoint(logdir)
  _check_env(settings, state, logdir)
  outdir = outdir or os.path.join(logdir, 'eval')
  os.makedirs(outdir, exist_ok=True)
  env, env_kwargs = settings['env'], settings['env_kwargs']
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
    agent = build_agent(obs_space, first.act_space, tensors, state, logdir)
    if recorder:
      results, frames = run_episodes(agent, recorder, [1], mode, rng)
      recorder.close()  # Frees the renderer now (closing twice is fine).
      if recorder.lost_episodes:
        warnings.warn('The recording env crashed during the first episode: '
                      'the video shows a restarted episode.')
    if main:
      quotas = episode_quotas(rest, count)
      results += run_episodes(agent, main, quotas, mode, rng)[0]
  finally:
    for pool in pools:
      if pool:
        pool.close()

  step = state['policy_steps'] * settings['frames_per_step']
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
      logdir=logdir, policy_steps=state['policy_steps'], step=step,
      video=video_path, video_skipped=None if frames or not video else note)
  path = os.path.join(outdir, 'summary.json')
  with open(path + '.tmp', 'w') as f:
    json.dump(summary, f, indent=2)
  os.replace(path + '.tmp', path)
  return summary


def episode_quotas(episodes, envs):
  """Episodes per env, as equal as possible: [episodes // envs (+1)]."""
  return [episodes // envs + (i < episodes % envs) for i in range(envs)]


class Episode(typing.NamedTuple):
  """A finished episode: return, length and its final `log/` scalars."""
  score: float
  length: int
  logs: dict


def episode_logs(obs, i):
  """{key: value} of env i's scalar `log/` observations (e.g. Crafter's
  achievement counts) in a batched obs dict; frames are not scalars."""
  return {k: v[i].item() for k, v in obs.items()
          if k.startswith('log/') and np.ndim(v) == 1}


def run_episodes(agent, pool, quotas, mode, rng):
  """Steps all envs until env i finished quotas[i] episodes.

  Envs may be mid-episode (a reused pool): only episodes that start here
  count. Returns ([Episode] in completion order, frames of env 0's first
  episode when the pool provides recording.FRAME_KEY).
  """
  n = len(pool)
  quotas = np.asarray(quotas)
  carry = agent.initial_carry(n)
  obs = pool.step({k: np.zeros((n, *s.shape), s.dtype)
                   for k, s in agent.act_space.items()})
  score, length = np.zeros(n), np.zeros(n, np.int64)
  done = np.zeros(n, np.int64)
  started = np.zeros(n, bool)
  results, frames = [], []
  while True:
    started |= obs['is_first']
    score += obs['reward']
    length += 1
    score[obs['is_first']] = 0.0
    length[obs['is_first']] = 0
    if recording.FRAME_KEY in obs and not done[0]:
      frames.append(obs[recording.FRAME_KEY][0])
    for i in np.flatnonzero(obs['is_last'] & started):
      if done[i] < quotas[i]:
        results.append(Episode(float(score[i]), int(length[i]),
                               episode_logs(obs, i)))
        done[i] += 1
    if (done >= quotas).all():
      return results, frames
    seed = rng.integers(0, 2**31 - 1, 2).astype(np.int32)
    act, carry, _ = agent.policy(
        {k: obs[k] for k in agent.obs_space}, carry, seed, mode=mode)
    obs = pool.step({k: np.asarray(v) for k, v in act.items()})


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
