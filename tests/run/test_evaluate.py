"""Evaluation of a run directory: scores, summary, video, refusals."""
import functools
import json
import os
import shutil

import gin
import numpy as np
import pytest

from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf import config
from dreamer_tf import spaces
from dreamer_tf.envs import base
from dreamer_tf.run import evaluate as eval_lib
from dreamer_tf.run import recording
from tests.conftest import TINY
from tests.run.test_recording import count_frames

ENV = 'dmc:cartpole_balance'
# 1000 physics steps / repeat 10 = 100 agent steps per episode; no XLA
# compile time (export tests cover the XLA policy).
RUN = TINY + [f"train.env = '{ENV}'", "train.env_kwargs = {'repeat': 10}",
              'Agent.jit_compile = False']
POLICY_STEPS = 100
GL_WORDS = ('egl', 'osmesa', 'opengl', 'glfw', 'gladload')


def write_run(logdir, bindings):
  """A run directory as launch/train.py leaves it: config.gin and one
  checkpoint written the way the training loop writes it."""
  from dreamer_tf.model import agent as agent_lib  # pylint: disable=import-outside-toplevel
  gin.clear_config()
  config.parse([], bindings)
  os.makedirs(logdir, exist_ok=True)
  with open(os.path.join(logdir, 'config.gin'), 'w') as f:
    f.write(gin.config_str())
  agent = agent_lib.Agent(*eval_lib.env_spaces(ENV, {'repeat': 10}))
  tensors = agent.get_state()
  ckpt_lib.Checkpointer(os.path.join(logdir, 'ckpt')).save(
      tensors + [np.zeros(1)], dict(
          signature=json.loads(json.dumps(agent.signature())),
          agent_tensors=len(tensors), loop_arrays=['score'],
          policy_steps=POLICY_STEPS, episodes=0, env=ENV))
  gin.clear_config()
  return agent


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  logdir = str(tmp_path_factory.mktemp('run'))
  write_run(logdir, RUN)
  return logdir


@pytest.mark.slow
def test_evaluate_writes_scores_summary_and_video(run_dir, tmp_path):
  outdir = str(tmp_path / 'eval')
  summary = eval_lib.evaluate(run_dir, episodes=3, num_envs=2, seed=1,
                              outdir=outdir)
  if summary['video'] is None and any(
      w in str(summary['video_skipped']).lower() for w in GL_WORDS):
    pytest.skip(f"No headless GL: {summary['video_skipped']}")
  records = [json.loads(line) for line in open(f'{outdir}/scores.jsonl')]
  assert len(records) == summary['episodes'] == 3
  for record in records:
    assert set(record) == {'step', 'episode/score', 'episode/length', 'kind'}
    assert record['kind'] == 'eval'
    assert record['step'] == POLICY_STEPS * 10  # frames = steps x repeat 10.
    assert record['episode/length'] == 100  # cartpole_balance never ends early.
  scores = [r['episode/score'] for r in records]
  assert summary['scores'] == scores
  assert summary['mean'] == pytest.approx(np.mean(scores))
  assert summary['std'] == pytest.approx(np.std(scores))
  assert (summary['min'], summary['max']) == (min(scores), max(scores))
  assert summary['policy'] == 'sample'
  assert json.load(open(f'{outdir}/summary.json')) == summary
  # The first episode's observations, from is_first to is_last.
  assert summary['video'].startswith(f'{outdir}/video.')
  frames, shape = count_frames(summary['video'])
  assert frames == records[0]['episode/length'] + 1
  assert shape == recording.RENDER_SIZE


def test_missing_config_or_checkpoint_is_refused(tmp_path):
  with pytest.raises(FileNotFoundError, match='config.gin'):
    eval_lib.evaluate(str(tmp_path))
  gin.clear_config()
  config.parse([], RUN)
  (tmp_path / 'config.gin').write_text(gin.config_str())
  with pytest.raises(ckpt_lib.CheckpointError, match='No checkpoint'):
    eval_lib.evaluate(str(tmp_path))
  assert not os.path.exists(tmp_path / 'eval')


@pytest.mark.slow
def test_checkpoint_of_another_model_is_refused(run_dir, tmp_path):
  logdir = tmp_path / 'other'
  shutil.copytree(run_dir, logdir)
  with open(logdir / 'config.gin', 'a') as f:
    f.write('\nRSSM.deter = 32\n')
  with pytest.raises(ckpt_lib.CheckpointError, match='RSSM.deter'):
    eval_lib.evaluate(str(logdir), episodes=1, video=False)


def test_checkpoint_of_another_env_is_refused(run_dir, tmp_path):
  logdir = tmp_path / 'other'
  shutil.copytree(run_dir, logdir)
  with open(logdir / 'config.gin', 'a') as f:
    f.write("\ntrain.env = 'dmc:cartpole_swingup'\n")
  with pytest.raises(ckpt_lib.CheckpointError, match='cartpole_swingup'):
    eval_lib.evaluate(str(logdir))


# --- Episode bookkeeping and frames (no agent) -----------------------------


class _Counter(base.Env):
  """Episodes of `length` steps; obs 'image' shows the step count (gray),
  `log/steps` counts the steps too (a log-only scalar)."""

  def __init__(self, length):
    self.length, self.t = length, 0

  @property
  def obs_space(self):
    return base.with_flags({'image': spaces.Space((4, 6, 1), 'uint8'),
                            'log/steps': spaces.Space((), 'int32')})

  @property
  def act_space(self):
    return {'action': spaces.Space((), 'int32', classes=2)}

  def _obs(self, **flags):
    image = np.full((4, 6, 1), self.t, np.uint8)
    return base.observation({'image': image, 'log/steps': np.int32(self.t)},
                            reward=1.0, **flags)

  def _reset(self):
    self.t = 0
    return {**self._obs(is_first=True), 'reward': np.float32(0)}

  def _step(self, action):
    self.t += 1
    return self._obs(is_last=self.t == self.length)


class _Pool:
  """ParallelEnvs' interface over in-process envs."""

  def __init__(self, envs_):
    self.envs = envs_
    self.obs_space = envs_[0].obs_space

  def __len__(self):
    return len(self.envs)

  def step(self, actions):
    obs = [env.step({k: v[i] for k, v in actions.items()})
           for i, env in enumerate(self.envs)]
    return {k: np.stack([o[k] for o in obs]) for k in obs[0]}


class _Agent:
  obs_space = _Counter(1).obs_space
  act_space = _Counter(1).act_space

  def initial_carry(self, n):
    return np.zeros(n)

  def policy(self, obs, carry, seed, mode=False):
    del seed, mode
    return {'action': np.zeros(len(obs['is_first']), np.int32)}, carry, {}


def test_episodes_are_counted_in_fixed_quotas_per_env():
  # Env 0 has short episodes: only its quota of them counts, no more.
  pool = _Pool([_Counter(2), _Counter(5)])
  results, frames = eval_lib.run_episodes(
      _Agent(), pool, [2, 2], False, np.random.default_rng(0))
  assert sorted(results, key=lambda e: e.score) == [
      (2.0, 2, {'log/steps': 2})] * 2 + [(5.0, 5, {'log/steps': 5})] * 2
  assert frames == []  # No FRAME_KEY in these observations.


def test_recorder_adds_rgb_frames_from_the_image_observation():
  env = recording.Recorder(functools.partial(_Counter, 3))
  assert env.obs_space[recording.FRAME_KEY].shape == (4, 6, 3)
  pool = _Pool([env])
  results, frames = eval_lib.run_episodes(
      _Agent(), pool, [1], False, np.random.default_rng(0))
  # The frame is no scalar log: only log/steps reaches the episode's logs.
  assert results == [(3.0, 3, {'log/steps': 3})]
  assert [int(f[0, 0, 0]) for f in frames] == [0, 1, 2, 3]
  assert all(f.shape == (4, 6, 3) for f in frames)


def test_summary_reports_achievements_only_when_episodes_have_them():
  assert eval_lib._achievement_summary([{}, {'log/steps': 3}]) == {}  # pylint: disable=protected-access
  logs = [{'log/achievement_wood': 1, 'log/achievement_stone': 0},
          {'log/achievement_wood': 0, 'log/achievement_stone': 0}]
  summary = eval_lib._achievement_summary(logs)  # pylint: disable=protected-access
  assert summary['achievements'] == {'stone': 0.0, 'wood': 50.0}
  # exp((ln 1 + ln 51) / 2) - 1
  assert summary['crafter_score'] == pytest.approx(51 ** 0.5 - 1)
