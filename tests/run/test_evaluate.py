"""Evaluation of a run directory: scores, summary, video, refusals."""
import json
import os
import shutil

import gin
import numpy as np
import pytest

from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf import config
from dreamer_tf.run import evaluate as eval_lib
from dreamer_tf.run import record as record_lib
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


def write_run(logdir, bindings, env=ENV, env_kwargs=None, repeat=10,
              counters=None):
  """A run directory as launch/train.py leaves it: config.gin, run.json and
  one more checkpoint with the agent and counters parts (`counters`
  added to or replacing policy_steps, episodes and env)."""
  from dreamer_tf.model import agent as agent_lib  # pylint: disable=import-outside-toplevel
  env_kwargs = {'repeat': 10} if env_kwargs is None else env_kwargs
  gin.clear_config()
  config.parse([], bindings)
  os.makedirs(logdir, exist_ok=True)
  with open(os.path.join(logdir, 'config.gin'), 'w') as f:
    f.write(gin.config_str())
  record_lib.write(logdir, record_lib.RunRecord(
      env=env, env_kwargs=env_kwargs, frames_per_step=repeat, seed=0))
  agent = agent_lib.Agent(*eval_lib.env_spaces(env, env_kwargs))
  directory = os.path.join(logdir, 'ckpt')
  ckpt_lib.Checkpoint(directory, dict(
      agent=ckpt_lib.AgentPart(agent, directory, ''),
      counters=_Fixed(dict(dict(policy_steps=POLICY_STEPS, episodes=0,
                                env=env), **(counters or {}))))).save()
  gin.clear_config()
  return agent


class _Fixed:
  """A checkpoint part with a fixed state."""

  def __init__(self, state):
    self.state = state

  def get_state(self):
    return self.state


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
  record = json.loads((logdir / 'run.json').read_text())
  record['env'] = 'dmc:cartpole_swingup'
  (logdir / 'run.json').write_text(json.dumps(record))
  with pytest.raises(ckpt_lib.CheckpointError, match='cartpole_swingup'):
    eval_lib.evaluate(str(logdir))


# --- Episode bookkeeping and frames (no agent) -----------------------------


def test_summary_reports_achievements_only_when_episodes_have_them():
  assert eval_lib._achievement_summary([{}, {'log/steps': 3}]) == {}  # pylint: disable=protected-access
  logs = [{'log/achievement_wood': 1, 'log/achievement_stone': 0},
          {'log/achievement_wood': 0, 'log/achievement_stone': 0}]
  summary = eval_lib._achievement_summary(logs)  # pylint: disable=protected-access
  assert summary['achievements'] == {'stone': 0.0, 'wood': 50.0}
  # exp((ln 1 + ln 51) / 2) - 1
  assert summary['crafter_score'] == pytest.approx(51 ** 0.5 - 1)
