"""The training loop: ratio accounting, end-to-end run, resume, errors."""
import json
import os
import signal
import subprocess
import sys
import time

import gin
import numpy as np
import pytest

from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf import config
from dreamer_tf import envs
from dreamer_tf import replay as replay_lib
from dreamer_tf.run import record as record_lib
from dreamer_tf.run import train as train_lib
from tests.conftest import ROOT, TINY

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
  # Open-loop reports log prediction errors in every loop iteration from
  # the first update on (policy step 42 = 40 + 32 / 16) to 120.
  reports = [m for m in metrics if 'report/openloop/vector_imagined' in m]
  assert len(reports) == 120 - 42 + 1 and all(
      np.isfinite(m['report/openloop/vector_observed']) for m in reports)
  assert os.path.exists(tmp_path / 'ckpt' / 'latest')
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
  run(tmp_path, 48)
  with pytest.raises(ckpt_lib.CheckpointError, match='RSSM.deter'):
    run(tmp_path, 96, 'RSSM.deter = 128')
  # Another seed would silently change the run's random streams.
  with pytest.raises(ckpt_lib.CheckpointError, match='--seed=0'):
    run(tmp_path, 96, seed=3)
  # A refused resume leaves the run's config.gin as the run wrote it.
  written = (tmp_path / 'config.gin').read_text()
  assert 'RSSM.deter = 64' in written and 'RSSM.deter = 128' not in written
  # Another experiment per run.json is refused before anything is touched.
  scores = (tmp_path / 'scores.jsonl').read_text()
  with pytest.raises(record_lib.RunRecordError, match='frames_per_step'):
    run(tmp_path, 96, 'train.frames_per_step = 3')
  assert (tmp_path / 'scores.jsonl').read_text() == scores
  # Evaluation may be turned on for a run that saved without it.
  assert run(tmp_path, 96, 'train.eval_every = 48')['policy_steps'] == 96


def test_non_finite_losses_skip_updates_then_stop_with_a_message(tmp_path):
  with pytest.raises(FloatingPointError, match='3 updates had a non-finite'):
    run(tmp_path, 400, "train.env = 'gym:tests.sign_env:NanReward-v0'",
        'train.max_nonfinite = 3', 'train.train_ratio = 32')
  metrics = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  skipped = [m for m in metrics if 'train/nonfinite_loss' in m]
  assert len(skipped) == 3
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


def test_unknown_env_id_suggests_close_names(tmp_path):
  with pytest.raises(Exception, match='CartPole-v1'):
    run(tmp_path, 10, "train.env = 'gym:CartPol-v1'")


# DreamerV3-XP: prioritized replay with importance weights, priorities
# from the world model and the intrinsic return, latent disagreement with
# the return-driven schedule.
XP = {'Exploration.signal': "'latent'", 'Exploration.units': '16',
      'Replay.fracs': "{'uniform': 0.5, 'priority': 0.5}",
      'Replay.importance': '0.6',
      'Priority.weights': "{'world_model': 1.0, 'intrinsic_return': 1.0}",
      'train.intrinsic_schedule': '@ReturnProgress()'}
VARIANTS = {'baseline': {}, 'xp': XP}


def _launch(logdir, steps, every, variant='baseline'):
  return [sys.executable, '-m', 'launch.train', f'--logdir={logdir}',
          '--gin_file=gin_configs/default.gin',
          '--gin_file=gin_configs/suites/debug.gin',
          f'--gin_param=train.steps={steps}',
          '--gin_param=train.train_ratio=32',
          f'--gin_param=train.save_every_steps={every}',
          f'--gin_param=train.eval_every={EVAL_EVERY}',
          '--gin_param=train.eval_episodes=2',
          '--gin_param=train.report_every=0'] + [
              f'--gin_param={k}={v}' for k, v in VARIANTS[variant].items()]


STEPS, EVERY, EVAL_EVERY = 160, 80, 40
QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')


@pytest.fixture(scope='module')
def straight_runs(tmp_path_factory):
  """variant -> the logdir of a run of STEPS policy steps that was never
  stopped (run on first use)."""
  runs = {}

  def get(variant):
    if variant not in runs:
      logdir = tmp_path_factory.mktemp(f'straight_{variant}')
      subprocess.run(_launch(logdir, STEPS, EVERY, variant), cwd=ROOT,
                     env=QUIET, check=True, capture_output=True, timeout=900)
      runs[variant] = logdir
    return runs[variant]
  return get


def _replay(logdir, variant):
  """The run's replay as it would be loaded for training."""
  kwargs = {}
  if variant == 'xp':
    kwargs = dict(fracs=dict(uniform=0.5, priority=0.5), importance=0.6)
  return replay_lib.Replay(str(logdir / 'replay'), length=9, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize('stop, variant', [
    ('sigkill', 'baseline'), ('ctrl_c', 'baseline'), ('sigkill', 'xp')])
def test_exact_resume_after_an_interruption(tmp_path, straight_runs, stop,
                                            variant):
  """Stop a run after its first checkpoint, by kill -9 of the trainer or
  by a terminal's Ctrl-C (SIGINT to the whole process group, env workers
  included); rerun the command: same result as never stopping, and no
  replay step written before the stop is lost. Once with DreamerV3-XP on:
  the ensemble, the intrinsic critic, the schedule's state, the step
  priorities and the prioritized selector resume exactly too."""
  straight_run = straight_runs(variant)
  stopped = tmp_path / 'stopped'
  proc = subprocess.Popen(_launch(stopped, STEPS, EVERY, variant), cwd=ROOT,
                          env=QUIET, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  latest = stopped / 'ckpt' / 'latest'
  deadline = time.time() + 600
  while not latest.exists() and time.time() < deadline:
    assert proc.poll() is None, 'the run ended before its first checkpoint'
    time.sleep(0.02)
  if stop == 'sigkill':
    # Let it log past the checkpoint (at step EVERY): the resume must drop
    # those records, as it writes them again.
    while not _logged_steps(stopped) or _logged_steps(stopped)[-1] <= EVERY:
      assert proc.poll() is None, 'the run ended before it could be killed'
      time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
  else:
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    # A clean stop: exit 0, the counters printed, a final checkpoint at
    # exactly those counters, and no process of the run left behind.
    assert proc.returncode == 0, err[-3000:]
    printed = json.loads(out.strip().splitlines()[-1])
    state = ckpt_lib.read(str(stopped / 'ckpt'))['counters']
    assert state['policy_steps'] == printed['policy_steps']
    assert state['ratio']['updates'] == printed['updates']
    deadline = time.time() + 10  # (multiprocessing's tracker exits last)
    while _alive_in_group(proc.pid) and time.time() < deadline:
      time.sleep(0.1)
    assert not _alive_in_group(proc.pid)
  state = ckpt_lib.read(str(stopped / 'ckpt'))['counters']
  assert state['policy_steps'] < STEPS, 'stopped too late to test a resume'
  items_at_stop = _replay(stopped, variant).stats()['inserts']
  subprocess.run(_launch(stopped, STEPS, EVERY, variant), cwd=ROOT,
                 env=QUIET, check=True, capture_output=True, timeout=900)
  a_tensors, a_meta = ckpt_lib.Checkpointer(
      str(straight_run / 'ckpt')).load()
  b_tensors, b_meta = ckpt_lib.Checkpointer(str(stopped / 'ckpt')).load()
  a_state, b_state = a_meta['parts']['counters'], b_meta['parts']['counters']
  assert a_state['policy_steps'] == b_state['policy_steps'] == STEPS
  assert a_state['ratio'] == b_state['ratio']
  assert a_state['ratio']['updates'] > 0
  # Agent (params, slow critic, return stats, optimizer) and the live loop
  # state are identical; pickled env bytes (of training and evaluation
  # envs) may differ in layout only.
  names = a_meta['tensor_names']
  assert names == b_meta['tensor_names']
  assert 'eval_envs/env/0' in names
  for name, x, y in zip(names, a_tensors, b_tensors):
    if not name.split('/')[1] == 'env':
      np.testing.assert_array_equal(x, y, err_msg=name)
  if variant == 'xp':
    assert a_state['schedule'] == b_state['schedule']
    assert a_state['schedule']['fast'] is not None  # Saw episodes.
  replay_a, replay_b = (_replay(d, variant)
                        for d in (straight_run, stopped))
  assert replay_b.stats()['inserts'] == replay_a.stats()['inserts'] >= (
      items_at_stop)
  # Step priorities, selector state and RNG: the next draws are the same.
  for _ in range(3):
    batch_a, batch_b = replay_a.sample(8), replay_b.sample(8)
    assert set(batch_a) == set(batch_b)
    assert ('weight' in batch_a) == (variant == 'xp')
    for key in batch_a:
      np.testing.assert_array_equal(batch_a[key], batch_b[key], err_msg=key)
  # The logs read as if never stopped: the same training and evaluation
  # episodes (evaluation has its own RNG and its envs are checkpointed),
  # and each metrics step once.
  assert _read(stopped / 'scores.jsonl') == _read(straight_run / 'scores.jsonl')
  evals = [r['step'] for r in _read(stopped / 'scores.jsonl')
           if r['kind'] == 'eval']
  assert evals == [step for step in range(EVAL_EVERY, STEPS + 1, EVAL_EVERY)
                   for _ in range(2)]
  assert _logged_steps(stopped) == _logged_steps(straight_run)


def _read(path):
  """The records of a JSONL file."""
  with open(path) as f:
    return [json.loads(line) for line in f]


def _logged_steps(logdir):
  """Steps of the complete lines of <logdir>/metrics.jsonl."""
  try:
    with open(logdir / 'metrics.jsonl') as f:
      lines = f.read().split('\n')[:-1]  # The last may be torn.
  except FileNotFoundError:
    return []
  return [json.loads(line)['step'] for line in lines]


def _alive_in_group(pgid):
  """Pids of live (not zombie) processes in process group `pgid`."""
  pids = []
  for name in os.listdir('/proc'):
    try:
      with open(f'/proc/{name}/stat') as f:
        # pid (comm) state ppid pgrp ...; comm may contain spaces.
        fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
      continue
    if int(fields[2]) == pgid and fields[0] != 'Z':
      pids.append(int(name))
  return pids
