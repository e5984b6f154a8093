"""The training loop: ratio accounting, end-to-end run, resume, errors."""
import json
import os
import shutil

import gin
import numpy as np
import pytest

from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf import config
from dreamer_tf import envs
from dreamer_tf.envs import parallel
from dreamer_tf import replay as replay_lib
from dreamer_tf.run import record as record_lib
from dreamer_tf.run import train as train_lib
from tests.conftest import TINY
from tools import fault_injection

RUN = TINY + ['Agent.batch_size = 4', 'Agent.batch_length = 8',
              'train.log_every = 0', 'train.save_every = 1e9']


def test_frames_per_step_follows_the_action_repeat():
  frames = envs.frames_per_step
  assert frames('dmc:x', {}) == 2 and frames('atari:x', {}) == 4
  assert frames('dmc:x', {'repeat': 1}) == 1  # HEAD's DMC setting.
  assert frames('gym:x', {}, 3) == 3
  with pytest.raises(ValueError, match='contradicts'):
    frames('dmc:x', {'repeat': 1}, 2)


def run(logdir, steps, *bindings, seed=0):
  gin.clear_config()
  config.parse([], RUN + list(bindings))
  return train_lib.train(str(logdir), steps=steps, seed=seed)


@pytest.mark.slow
def test_end_to_end_cartpole_run_then_resume(tmp_path, capsys):
  result = run(tmp_path, 120, 'train.train_ratio = 16',
               'train.report_every = 1e-6', 'train.eval_every = 60',
               'train.eval_episodes = 3')
  assert result['policy_steps'] == 120
  assert json.load(open(tmp_path / train_lib.DONE_FILE)) == result
  state = ckpt_lib.read(str(tmp_path / 'ckpt'))['counters']
  # Training starts once B*T = 32 sequences of length C+T = 9 are stored.
  assert state['ratio']['start'] == 32 + 8
  expected = int((120 - 40) * 16 / 32)
  assert result['updates'] == expected
  records = [json.loads(l) for l in open(tmp_path / 'scores.jsonl')]
  # Two evaluations (at policy steps 60 and 120) of 3 episodes each.
  evals = [s for s in records if s['kind'] == 'eval']
  assert [s['step'] for s in evals] == [60] * 3 + [120] * 3
  scores = [s for s in records if s['kind'] == 'train']
  assert scores and all(s['episode/score'] >= 1 for s in scores)
  # CartPole pays 1 per step: the score equals the episode length.
  assert all(s['episode/score'] == s['episode/length'] for s in scores)
  metrics = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert any('train/opt/loss' in m for m in metrics)
  # Where the wall time goes: the update's share of each log window.
  shares = [m['time/update_share'] for m in metrics
            if 'time/update_share' in m]
  assert shares and all(0 <= share <= 1 for share in shares)
  assert any(share > 0 for share in shares)
  # Open-loop reports log prediction errors in every loop iteration from
  # the first update on (policy step 42 = 40 + 32 / 16) to 120.
  reports = [m for m in metrics if 'report/openloop/vector_imagined' in m]
  assert len(reports) == 120 - 42 + 1 and all(
      np.isfinite(m['report/openloop/vector_observed']) for m in reports)
  assert os.path.exists(tmp_path / 'ckpt' / 'latest')
  # The operative config is rewritten with the checkpoints, so it lists
  # the configurables first called by the update (the results CSV reads
  # its defaults from here).
  operative = (tmp_path / train_lib.OPERATIVE_CONFIG).read_text()
  assert 'imagination_losses.actent = ' in operative
  # Rerunning the same command with a larger budget resumes, and says so.
  capsys.readouterr()
  again = run(tmp_path, 200, 'train.train_ratio = 16')
  out = capsys.readouterr().out
  assert f'Resuming from {tmp_path}/ckpt/ckpt-' in out
  assert f'120 frames (120 policy steps), {expected} updates' in out
  assert again['policy_steps'] == 200
  assert again['updates'] == expected + int(80 * 16 / 32)
  assert again['episodes'] > result['episodes']


@pytest.mark.slow
def test_resume_with_a_different_model_names_the_bindings(tmp_path):
  # A few updates suffice (the ratio is not part of the run's identity).
  few = 'train.train_ratio = 16'
  run(tmp_path, 48, few)
  with pytest.raises(ckpt_lib.CheckpointError, match='RSSM.deter'):
    run(tmp_path, 96, few, 'RSSM.deter = 128')
  # Another seed would silently change the run's random streams.
  with pytest.raises(ckpt_lib.CheckpointError, match='--seed=0'):
    run(tmp_path, 96, few, seed=3)
  # A refused resume leaves the run's config.gin as the run wrote it.
  written = (tmp_path / 'config.gin').read_text()
  assert 'RSSM.deter = 64' in written and 'RSSM.deter = 128' not in written
  # Another experiment per run.json is refused before anything is touched.
  scores = (tmp_path / 'scores.jsonl').read_text()
  with pytest.raises(record_lib.RunRecordError, match='frames_per_step'):
    run(tmp_path, 96, few, 'train.frames_per_step = 3')
  assert (tmp_path / 'scores.jsonl').read_text() == scores
  # Evaluation may be turned on for a run that saved without it.
  result = run(tmp_path, 96, few, 'train.eval_every = 48')
  assert result['policy_steps'] == 96 and result['updates'] > 0


# An infinite actor entropy weight: every update's loss is non-finite (the
# envs' output is fine, so the run gets to train).
NON_FINITE_LOSS = 'imagination_losses.actent = 1e999'


@pytest.mark.slow
def test_non_finite_losses_skip_updates_then_stop_with_a_message(tmp_path,
                                                                 capsys):
  with pytest.raises(FloatingPointError, match='3 updates had a non-finite'):
    run(tmp_path, 400, NON_FINITE_LOSS, 'train.max_nonfinite = 3',
        'train.train_ratio = 32')
  metrics = _read(tmp_path / 'metrics.jsonl')
  skipped = [m for m in metrics if 'train/nonfinite_loss' in m]
  assert len(skipped) == 3
  assert not (tmp_path / train_lib.DONE_FILE).exists()
  assert 'WARNING: Update 1 skipped' in capsys.readouterr().err
  # The operative config names defaults the run never bound.
  operative = (tmp_path / train_lib.OPERATIVE_CONFIG).read_text()
  assert 'Agent.horizon = 333' in operative
  assert 'Agent.horizon' not in (tmp_path / 'config.gin').read_text()
  # Skipped updates leave the parameters alone: the agent is still finite.
  states = ckpt_lib.read(str(tmp_path / 'ckpt'))
  tensors = states and states['agent']['variables']
  assert tensors is None or all(
      np.isfinite(t).all() for t in tensors if t.dtype.kind == 'f')


@pytest.mark.slow
def test_a_crashed_env_worker_is_restarted_and_its_episode_logged(tmp_path):
  marker = tmp_path / 'crashed'
  result = run(tmp_path / 'run', 48,
               "train.env = 'gym:tests.sign_env:CrashOnce-v0'",
               f"train.env_kwargs = {{'marker': '{marker}'}}")
  assert marker.exists() and result['policy_steps'] == 48
  metrics = _read(tmp_path / 'run' / 'metrics.jsonl')
  lost = [m for m in metrics if 'env/lost_episode_steps' in m]
  # The env died at its 5th step: the first 4 of its episode are lost.
  assert [(m['env/lost_episode_steps'], m['env/lost_episode_worker'])
          for m in lost] == [(4, 0)]
  # The restarted env plays whole episodes (16 steps each) from there on.
  scores = _read(tmp_path / 'run' / 'scores.jsonl')
  assert scores and all(r['episode/length'] == 16 for r in scores)


@pytest.mark.slow
def test_a_run_whose_updates_were_all_skipped_does_not_end_as_done(
    tmp_path):
  # Fewer skipped updates than train.max_nonfinite: it used to exit 0.
  with pytest.raises(FloatingPointError,
                     match=r"(?s)8 of the run's 8 updates were skipped.*"
                     'did not train'):
    run(tmp_path, 48, NON_FINITE_LOSS, 'train.train_ratio = 32')
  assert not (tmp_path / train_lib.DONE_FILE).exists()
  assert ckpt_lib.read(str(tmp_path / 'ckpt'))['counters']['nonfinite'] == 8


@pytest.mark.parametrize('env, value', [('NanReward-v0', 'nan'),
                                        ('InfReward-v0', 'inf')])
def test_a_non_finite_reward_stops_the_run_naming_env_step_and_value(
    tmp_path, env, value):
  with pytest.raises(parallel.EnvOutputError) as error:
    run(tmp_path, 48, f"train.env = 'gym:tests.sign_env:{env}'")
  message = str(error.value)
  assert message.startswith(
      f"Env worker 0 (make('gym:tests.sign_env:{env}', seed=0)) returned a "
      'bad observation at episode step 1')
  assert f"'reward' = {value} is not finite" in message
  assert 'Fix the env, or wrap it' in message
  # Stopped at its last good step, checkpointed, not done; strict JSON.
  (note,) = error.value.__notes__
  assert 'stopped at policy step 0' in note and 'checkpointed' in note
  assert ckpt_lib.read(str(tmp_path / 'ckpt'))['counters']['policy_steps'] == 0
  assert not (tmp_path / train_lib.DONE_FILE).exists()
  for name in ('metrics.jsonl', 'scores.jsonl'):
    _read(tmp_path / name)  # Strict JSON.


def test_an_env_that_crashes_every_episode_stops_the_run(tmp_path):
  with pytest.raises(parallel.CrashLoopError, match=(
      r'(?s)RaiseInStep-v0.*crashed 2 times in a row without finishing an '
      r'episode \(CrashLimits.in_a_row = 2\).*simulator exploded at step 3')):
    run(tmp_path, 48, "train.env = 'gym:tests.sign_env:RaiseInStep-v0'",
        'CrashLimits.in_a_row = 2')
  assert not (tmp_path / train_lib.DONE_FILE).exists()
  metrics = _read(tmp_path / 'metrics.jsonl')
  # Both lost episodes are logged, the last one on the way out.
  assert [m['env/lost_episode_steps'] for m in metrics
          if 'env/lost_episode_steps' in m] == [2, 2]


def test_records_of_an_attempt_killed_before_its_first_checkpoint_move_aside(
    tmp_path, capsys):
  """A run killed after it logged steps but before its first checkpoint
  starts over at step 0 on the rerun; its records would repeat those steps,
  so they move to <logdir>/abandoned (fault injection found the repeat)."""
  tmp_path.mkdir(exist_ok=True)
  with open(tmp_path / 'metrics.jsonl', 'w') as f:
    for step in range(1, 6):
      f.write(json.dumps({'step': step, 'train/x': 1.0}) + '\n')
  run(tmp_path, 8)
  steps = [r['step'] for r in _read(tmp_path / 'metrics.jsonl')]
  assert len(steps) == len(set(steps)), steps
  assert len(_read(tmp_path / train_lib.ABANDONED / 'metrics.jsonl')) == 5
  err = capsys.readouterr().err
  assert 'stopped before its first checkpoint' in err and '5 in ' \
      'metrics.jsonl' in err


def test_unknown_env_id_suggests_close_names(tmp_path):
  with pytest.raises(Exception, match='CartPole-v1'):
    run(tmp_path, 10, "train.env = 'gym:CartPol-v1'")


_read = fault_injection.read_jsonl  # Strict: no NaN or Infinity tokens.


# --- A checkpoint and its replay save are one commit ----------------------

INTEGRITY = ('train.save_every_steps = 16', 'train.train_ratio = 8')


def _stored_steps(logdir):
  """Steps the run's last replay save holds (every step it was given)."""
  return replay_lib.Replay(str(logdir / 'replay'), length=9).stats()['steps']


@pytest.fixture(scope='module')
def checkpointed_run(tmp_path_factory):
  """A copy of a 48-step run with checkpoints every 16 steps (run once)."""
  original = tmp_path_factory.mktemp('checkpointed')
  gin.clear_config()
  config.parse([], RUN + list(INTEGRITY))
  train_lib.train(str(original), steps=48, seed=0)
  gin.clear_config()

  def copy(tmp_path):
    shutil.copytree(original, tmp_path / 'run')
    return tmp_path / 'run'
  return copy


@pytest.mark.slow
def test_an_unreadable_newest_checkpoint_resumes_with_its_own_replay(
    tmp_path, checkpointed_run):
  """The newest checkpoint is damaged: the previous one resumes, with the
  replay save written with it, not the newer one (a 72-step run once ended
  with 80 stored steps: 8 steps of an abandoned trajectory joined the next
  one)."""
  tmp_path = checkpointed_run(tmp_path)
  names = ckpt_lib.Checkpointer(str(tmp_path / 'ckpt')).names()
  newest = tmp_path / 'ckpt' / names[-1]
  with open(newest / 'tensors.npz', 'r+b') as f:
    f.truncate(100)
  with pytest.warns(UserWarning, match=f'unreadable checkpoint {names[-1]}'):
    result = run(tmp_path, 64, *INTEGRITY)
  assert result['policy_steps'] == 64
  assert _stored_steps(tmp_path) == 64  # Not 64 + the abandoned steps.
  assert result['updates'] > 0


@pytest.mark.slow
def test_a_replay_save_without_its_checkpoint_is_not_resumed(
    tmp_path, checkpointed_run):
  """A run died after its replay save and before its checkpoint (a disk
  full or a kill between the two): the resume takes the checkpoint's save."""
  tmp_path = checkpointed_run(tmp_path)
  replay = replay_lib.Replay(str(tmp_path / 'replay'), length=9)
  generation = ckpt_lib.read(str(tmp_path / 'ckpt'))['replay']['generation']
  chunk = replay.sample(1, online=False)
  for step in range(5):  # Steps no checkpoint knows of.
    replay.add({k: v[0, step] for k, v in chunk.items()
                if k != 'stepid'}, worker=7)
  assert replay.save(keep=[generation]) == generation + 1
  result = run(tmp_path, 64, *INTEGRITY)
  assert result['policy_steps'] == 64
  assert _stored_steps(tmp_path) == 64


@pytest.mark.slow
def test_a_deleted_replay_is_refused_then_resumed_empty_on_request(
    tmp_path, capsys, checkpointed_run):
  tmp_path = checkpointed_run(tmp_path)
  shutil.rmtree(tmp_path / 'replay')
  with pytest.raises(ckpt_lib.CheckpointError) as error, pytest.warns(
      UserWarning, match='Cannot resume from .*ckpt-.*Replay save'):
    run(tmp_path, 80, *INTEGRITY)
  message = str(error.value)
  for words in ('No checkpoint in', 'directory is missing',
                'from a backup', "train.lost_replay='empty'", '--logdir'):
    assert words in message, message
  assert not (tmp_path / 'replay').exists()  # The refusal changed nothing.
  before = ckpt_lib.read(str(tmp_path / 'ckpt'))['counters']
  capsys.readouterr()
  result = run(tmp_path, 96, *INTEGRITY, "train.lost_replay = 'empty'")
  out = capsys.readouterr().out
  assert 'Resuming with an EMPTY replay' in out and 'Lost: 48 stored steps' \
      in out, out
  assert result['policy_steps'] == 96
  assert _stored_steps(tmp_path) == 96 - 48
  # Training waited for the refill (32 + 8 steps), then kept the ratio
  # without a catch-up burst for the steps of the refill.
  assert result['updates'] == before['ratio']['updates'] + int(
      (96 - 48 - 40) * 8 / 32)


def test_lost_replay_setting_is_checked(tmp_path):
  with pytest.raises(ValueError, match="lost_replay='drop'.*'refuse', "
                     "'empty'"):
    run(tmp_path, 8, "train.lost_replay = 'drop'")


@pytest.mark.slow
def test_a_disk_full_checkpoint_write_resumes_the_previous_commit(
    tmp_path, checkpointed_run, monkeypatch):
  """The disk fills up while a checkpoint is written, after its replay
  save: the run stops with the error, and the rerun resumes the previous
  checkpoint with the replay save written with it."""
  tmp_path = checkpointed_run(tmp_path)
  real_savez = np.savez

  def full_disk(file, **arrays):
    if '00000' in arrays:  # The checkpoint's tensors (replay keys are names).
      raise OSError(28, 'No space left on device')
    return real_savez(file, **arrays)

  monkeypatch.setattr(np, 'savez', full_disk)
  with pytest.raises(OSError, match='No space left'):
    run(tmp_path, 64, *INTEGRITY)
  monkeypatch.undo()
  assert not [n for n in os.listdir(tmp_path / 'ckpt') if '.tmp' in n]
  result = run(tmp_path, 64, *INTEGRITY)
  assert result['policy_steps'] == 64
  assert _stored_steps(tmp_path) == 64
