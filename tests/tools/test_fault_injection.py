"""Stopping and killing a run (`tools/fault_injection.py`): a terminal's
Ctrl-C stops it cleanly, SIGKILL at seeded random points leaves a
checkpoint that agrees with its replay save, and the resumed run ends as a
run that was never stopped. The suite stops the DreamerV3-XP variant
(`XP` below), whose resume has the most state: the ensemble, the
intrinsic critic, the schedule, the step priorities and the prioritized
selector. The tool's 20-point run is in
docs/benchmarks/fault-injection-2026-11-27.md."""
import ast
import json
import os
import signal
import subprocess
import time
import warnings

import numpy as np
import pytest

from dreamer_tf import replay as replay_lib
from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import compile_cache
from tests.conftest import ROOT
from tools import fault_injection

# 5 kill points, every kind among them (the seed is chosen for that: an
# early start-up kill, a write, two steps, another start-up kill).
KILLS, SEED = 5, 2
STEPS, EVERY = fault_injection.RUN_STEPS, fault_injection.SAVE_EVERY
EVAL_EVERY = fault_injection.EVAL_EVERY

# The debug-suite training run of tools/fault_injection.py (CartPole, tiny
# agent, a checkpoint every 16 policy steps) with DreamerV3-XP on:
# prioritized replay with importance weights, priorities from the world
# model and the intrinsic return, latent disagreement with the return-driven
# schedule: the variant whose resume has the most state.
XP = {'Exploration.signal': "'latent'", 'Exploration.units': '16',
      'Replay.fracs': "{'uniform': 0.5, 'priority': 0.5}",
      'Replay.importance': '0.6',
      'Priority.weights': "{'world_model': 1.0, 'intrinsic_return': 1.0}",
      'train.intrinsic_schedule': '@ReturnProgress()'}
# The `Replay` settings of these bindings, to read the run's replay.
XP_REPLAY_KWARGS = dict(fracs=ast.literal_eval(XP['Replay.fracs']),
                        importance=float(XP['Replay.importance']))
XP_FLAGS = [f'--gin_param={k}={v}' for k, v in XP.items()]


@pytest.fixture(scope='module')
def straight_xp_run(tmp_path_factory):
  """The logdir of the XP run that was never stopped."""
  logdir = tmp_path_factory.mktemp('straight_xp')
  fault_injection.run_to_end(fault_injection.command(logdir, extra=XP_FLAGS))
  return logdir


def test_kill_points_are_seeded_and_cover_every_kind():
  points = fault_injection.draw_kill_points(KILLS, seed=SEED)
  assert points == fault_injection.draw_kill_points(KILLS, seed=SEED)
  assert points != fault_injection.draw_kill_points(KILLS, seed=SEED + 1)
  assert {p['kind'] for p in points} == set(fault_injection.KINDS)


@pytest.mark.slow
def test_a_run_stopped_by_ctrl_c_then_killed_at_random_points_ends_as_an_uninterrupted_one(  # noqa: E501
    tmp_path, straight_xp_run):
  """Ctrl-C after the run's third checkpoint, then SIGKILL at 5 seeded
  points of the resumed runs, then a run to the end: the agent (params,
  slow critics, return statistics, optimizers, ensemble), the live loop
  state, the counters and schedule, the replay contents, priorities and
  next draws, scores.jsonl and the logged steps equal the straight run's,
  and after every kill the checkpoint a resume takes holds exactly the
  steps of its replay save."""
  straight = straight_xp_run
  compiled = _compile_cache_entries()
  faulted = tmp_path / 'faulted'
  _stop_with_ctrl_c(faulted)
  # The same command as the straight run, in a fresh logdir, loaded every
  # function the straight run compiled from the XLA compile cache (the
  # first update and evaluation ran before the stop): no new entry.
  assert _compile_cache_entries() == compiled
  assert not fault_injection.check_resumable(faulted, XP_REPLAY_KWARGS)

  report = fault_injection.inject(
      tmp_path, fault_injection.draw_kill_points(KILLS, seed=SEED),
      straight=straight, extra=XP_FLAGS,
      replay_kwargs=XP_REPLAY_KWARGS)
  assert report['killed'] == KILLS, report['kills']
  assert report['during_writes'] >= 1, report['kills']
  assert not report['resume_problems'], report['resume_problems']
  assert not report['differences'], report['differences']
  assert report['equal']

  meta = ckpt_lib.Checkpointer(str(faulted / 'ckpt')).load()[1]
  counters = meta['parts']['counters']
  assert counters['ratio']['updates'] > 0
  assert 'eval_envs/env/0' in meta['tensor_names']
  # Evaluation has its own RNG and its envs are checkpointed: the same
  # evaluation episodes as never stopping.
  evals = [r['step'] for r in fault_injection.read_jsonl(
      faulted / 'scores.jsonl') if r['kind'] == 'eval']
  assert evals == [step for step in range(EVAL_EVERY, STEPS + 1, EVAL_EVERY)
                   for _ in range(2)]
  # The compared state is the XP state: the schedule saw episodes and the
  # replay draws prioritized batches with importance weights.
  assert counters['schedule']['fast'] is not None
  with warnings.catch_warnings():  # Its item priorities were saved with
    warnings.simplefilter('error')  # the agent's context step left out.
    replay = replay_lib.Replay(
        str(faulted / 'replay'), length=fault_injection.SEQUENCE_LENGTH,
        context=fault_injection.CONTEXT, **XP_REPLAY_KWARGS)
  assert 'weight' in replay.sample(8)
  # compare() read the priorities themselves (step by step, item by
  # item), and training had written them: most steps are no longer new.
  steps = np.concatenate(list(replay.priorities()['steps'].values()))
  assert np.isfinite(steps).mean() > 0.5


def test_compare_reads_step_and_item_priorities():
  base = dict(steps={0: np.array([1.0, np.inf], np.float32),
                     1: np.array([2.0], np.float32)},
              items=np.array([0.5, 0.0]))
  same = dict(steps={c: p.copy() for c, p in base['steps'].items()},
              items=base['items'].copy())
  assert not fault_injection._priority_differences(base, same)
  same['steps'][1][0] = np.nextafter(np.float32(2), np.float32(3))
  same['items'][1] = 1e-300
  assert fault_injection._priority_differences(base, same) == [
      'step priorities of chunk 1 differ', 'item priorities differ']
  assert fault_injection._priority_differences(
      base, dict(base, items=None)) == ['item priorities differ']


def _stop_with_ctrl_c(logdir):
  """Starts the XP run in `logdir` and stops it past its third checkpoint
  (training has started) by a terminal's Ctrl-C: SIGINT to the whole
  process group, env workers included. Asserts a clean stop: exit 0, the
  counters printed, a final checkpoint at exactly those counters, and no
  process of the run left behind."""
  proc = subprocess.Popen(fault_injection.command(logdir, extra=XP_FLAGS),
                          cwd=ROOT,
                          env=fault_injection.QUIET, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  steps = fault_injection.logged_steps
  while not steps(logdir) or steps(logdir)[-1] <= 3 * EVERY:
    assert proc.poll() is None, 'the run ended before it could be stopped'
    time.sleep(0.02)
  os.killpg(proc.pid, signal.SIGINT)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  printed = json.loads(out.strip().splitlines()[-1])
  state = ckpt_lib.read(str(logdir / 'ckpt'))['counters']
  assert state['policy_steps'] == printed['policy_steps']
  assert state['ratio']['updates'] == printed['updates']
  deadline = time.time() + 10  # (multiprocessing's tracker exits last)
  while _alive_in_group(proc.pid) and time.time() < deadline:
    time.sleep(0.1)
  assert not _alive_in_group(proc.pid)
  assert state['policy_steps'] < STEPS, 'stopped too late to test a resume'


def _compile_cache_entries():
  """Files in the launchers' XLA compile cache (tests/conftest.py)."""
  path = compile_cache.version_directory(os.environ[compile_cache.ENV_VAR])
  return {file for _, _, file in compile_cache.entries(path)}


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
