"""Workers of a multi-worker run: votes, the common checkpoint, a lost
worker's message, and two `launch.train` workers on 127.0.0.1."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import evaluate
from dreamer_tf.run import workers
from dreamer_tf import replay as replay_lib
from tests.conftest import ROOT, free_ports, tf_config
from tests.tools.test_fault_injection import XP_FLAGS
from tools import fault_injection


def test_solo_decides_alone():
  solo = workers.Solo()
  assert solo.agree(stop=1, save=0) == (True, False)
  assert solo.all_ready(True) and not solo.all_ready(False)
  assert solo.votes(iteration=3, updates_due=0)
  assert solo.common([16, 48, 32]) == 48 and solo.common([]) is None
  assert solo.mean_and_max(0.25, 3) == (0.25, 3.0)


class FakeCluster(workers.Cluster):
  """A Cluster whose all-gather returns the given rows (one per worker)."""

  def __init__(self, rows, worker=0):
    strategy = types.SimpleNamespace(num_replicas_in_sync=len(rows))
    super().__init__(types.SimpleNamespace(
        strategy=strategy, worker=worker, workers=len(rows),
        is_chief=worker == 0))
    self.rows = rows
    self.sent = None

  def gather(self, values, dtype=np.int64):
    self.sent = list(values)
    return np.array([row[:len(values)] for row in self.rows], dtype)


def test_any_workers_stop_or_save_is_everyones():
  assert FakeCluster([[0, 0], [1, 0]]).agree(False, False) == (True, False)
  assert FakeCluster([[0, 1], [0, 0]]).agree(False, False) == (False, True)
  assert not FakeCluster([[1], [0]]).all_ready(True)
  assert FakeCluster([[1], [1]]).all_ready(True)


def test_every_worker_gets_the_mean_and_the_max_of_all():
  cluster = FakeCluster([[0.1, 2.0], [0.4, 1e-3], [0.25, 0.5]], worker=1)
  mean, largest = cluster.mean_and_max(0.4, 1e-3)
  assert cluster.sent == [0.4, 1e-3]  # One exchange for both.
  assert mean == pytest.approx(0.25)
  assert largest == 2.0


def test_votes_at_every_update_and_every_few_iterations():
  cluster = FakeCluster([[0], [0]])
  assert cluster.votes(iteration=5, updates_due=2)
  assert cluster.votes(iteration=workers.VOTE_EVERY * 3, updates_due=0)
  assert not cluster.votes(iteration=5, updates_due=0)


def pad(positions):
  return positions + [-1] * (workers.POSITIONS - len(positions))


def test_the_common_checkpoint_is_the_newest_every_worker_has():
  cluster = FakeCluster([pad([16, 32, 48]), pad([32, 48, 64])])
  assert cluster.common([16, 32, 48]) == 48
  assert cluster.sent == pad([16, 32, 48])
  assert FakeCluster([pad([]), pad([])]).common([]) is None
  with pytest.raises(ckpt_lib.CheckpointError,
                     match=r'no checkpoint in common.*worker 0: \[16\]; '
                     r'worker 1: none.*Restore the missing'):
    FakeCluster([pad([16]), pad([])]).common([16])


def test_a_lost_worker_is_named_with_the_fix():
  cluster = FakeCluster([[0], [0]], worker=0)
  text = ('Graph execution error:\n\nCollective ops is aborted by: recvmsg:'
          'Connection reset by peer\nAdditional GRPC error information from '
          'remote target /job:worker/replica:0/task:1 while calling ...')
  message = cluster.describe_loss(RuntimeError(text))
  assert message.startswith('Worker /job:worker/task:1 of this 2-worker run '
                            'stopped responding (worker 0 saw: Collective '
                            'ops is aborted by: recvmsg:Connection reset')
  assert 'rerun the same command on all of them' in message
  # The op that failed names this worker's own device too (seen in a run
  # on a loaded machine): only the unreachable peer is named.
  text = ('{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_'
          'device_/job:worker/replica:0/task:0/device:CPU:0}} Collective ops '
          'is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC '
          'error information from remote target /job:worker/replica:0/task:1 '
          'while calling /tensorflow.WorkerService/RecvBuf:')
  assert cluster.describe_loss(RuntimeError(text)).startswith(
      'Worker /job:worker/task:1 of this 2-worker run stopped responding')
  # Without a remote target, every task the error names but this one.
  cluster.task = ('worker', '0')
  assert cluster.describe_loss(RuntimeError(
      'failed on /job:worker/replica:0/task:1/device:CPU:0 from '
      '/job:worker/replica:0/task:0/device:CPU:0')).startswith(
          'Worker /job:worker/task:1 of')
  assert cluster.describe_loss(RuntimeError(
      'on /job:worker/replica:0/task:0/device:CPU:0')).startswith(
          'Another worker of')


# --- Two launch.train workers on 127.0.0.1 -------------------------------

STEPS, EVERY = 96, 16


def consecutive_free_ports():
  """A port p on 127.0.0.1 such that p and p + 1 were free a moment ago."""
  for _ in range(50):
    (base,) = free_ports(1)
    try:
      with socket.socket() as sock:
        sock.bind(('127.0.0.1', base + 1))
      return base
    except OSError:
      continue
  pytest.skip('no two consecutive free ports')


def start_workers(logdir, steps=STEPS, slurm=False, flags=()):
  """Starts worker 0 and 1 of the debug-suite run in `logdir`: with their
  TF_CONFIG and --strategy=multi_worker, or (slurm) as the 2 tasks of a
  SLURM job step on this node with the default --strategy=auto; `flags`
  go to both."""
  extra = ['--gin_param=Agent.jit_compile=False', *flags]
  if slurm:
    base = consecutive_free_ports()
    extra.append(f'--gin_param=train.slurm_port_base={base}')
    envs = [dict(SLURM_PROCID=str(i), SLURM_STEP_NUM_TASKS='2',
                 SLURM_STEP_NODELIST='localhost',
                 SLURM_STEP_TASKS_PER_NODE='2') for i in range(2)]
  else:
    extra.append('--strategy=multi_worker')
    ports = free_ports(2)
    envs = [dict(TF_CONFIG=tf_config(ports, i)) for i in range(2)]
  argv = fault_injection.command(logdir, steps=steps, save_every=EVERY,
                                 extra=extra)
  return [subprocess.Popen(
      argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True, start_new_session=True,
      env=dict(fault_injection.QUIET, **env)) for env in envs]


def finish(procs, timeout=900):
  """[(returncode, stdout, stderr)] of the workers, killing stragglers."""
  results = []
  try:
    for proc in procs:
      out, err = proc.communicate(timeout=timeout)
      results.append((proc.returncode, out, err))
  finally:
    for proc in procs:
      if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
  return results


def agent_tensors(directory):
  tensors, meta = ckpt_lib.Checkpointer(str(directory / 'ckpt')).load()
  return {name: t for name, t in zip(meta['tensor_names'], tensors)
          if name.startswith('agent/')}, meta['parts']['counters']


def wait_for_training(logdir, procs):
  """Until the chief logged a step after training started (step 40)."""
  while not fault_injection.logged_steps(logdir) or (
      fault_injection.logged_steps(logdir)[-1] <= 48):
    assert all(p.poll() is None for p in procs), finish(procs)
    time.sleep(0.05)


@pytest.mark.slow
def test_two_workers_stop_together_on_sigterm_and_resume_to_the_budget(
    tmp_path):
  """With DreamerV3-XP on (prioritized replay with importance weights, a
  returns-driven intrinsic weight), so the workers also exchange the
  weight and the importance max at every update (one
  Cluster.mean_and_max) without falling out of step."""
  logdir = tmp_path / 'run'
  procs = start_workers(logdir, flags=XP_FLAGS)
  wait_for_training(logdir, procs)
  os.killpg(procs[1].pid, signal.SIGTERM)  # Worker 1 only.
  results = finish(procs)
  for code, out, err in results:
    assert code == 0, err[-3000:]
  printed = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in results]
  assert printed[0]['policy_steps'] == printed[1]['policy_steps'] < STEPS
  assert printed[0]['updates'] == printed[1]['updates'] > 0
  assert 'this is worker 1 on CPU:0' in results[1][1]
  # Both checkpointed the same update, with identical agents.
  worker = logdir / 'worker-1'
  (chief_agent, chief_counters), (agent, counters) = (
      agent_tensors(logdir), agent_tensors(worker))
  assert chief_counters['policy_steps'] == counters['policy_steps'] == (
      printed[0]['policy_steps'])
  assert chief_counters['ratio'] == counters['ratio']
  assert chief_agent.keys() == agent.keys()
  for name in chief_agent:
    np.testing.assert_array_equal(chief_agent[name], agent[name], name)
  # Each worker's replay shard holds its own envs' steps: half the run's.
  shards = [replay_lib.Replay(str(d / 'replay'), length=9)
            for d in (logdir, worker)]
  for shard in shards:
    assert shard.stats()['steps'] == printed[0]['policy_steps'] // 2
  assert not np.array_equal(shards[0].sample(4, online=False)['vector'],
                            shards[1].sample(4, online=False)['vector'])
  # Chief-only run logs; the worker logs into its own directory. Only the
  # chief evaluates.
  assert (logdir / 'metrics.jsonl').exists()
  assert json.load(open(logdir / 'run.json'))['workers'] == 2
  evals = [r for r in fault_injection.read_jsonl(worker / 'scores.jsonl')
           if r['kind'] == 'eval']
  assert not evals
  # The same command on both workers resumes and trains to the budget.
  results = finish(start_workers(logdir, flags=XP_FLAGS))
  for code, out, err in results:
    assert code == 0, err[-3000:]
    assert 'Resuming from' in out
  assert (logdir / 'done.json').exists() and (worker / 'done.json').exists()
  (chief_agent, chief_counters), (agent, counters) = (
      agent_tensors(logdir), agent_tensors(worker))
  assert chief_counters['policy_steps'] == counters['policy_steps'] == STEPS
  # Each worker's schedule saw its own episodes, and both logged the same
  # weight at every update. (In this short run both schedules stay at 1:
  # test_loop.py checks that the weight is the workers' mean.)
  assert chief_counters['schedule'] != counters['schedule']
  weights = [[(r['step'], r['explore/intrinsic_weight'])
              for r in fault_injection.read_jsonl(d / 'metrics.jsonl')
              if 'explore/intrinsic_weight' in r] for d in (logdir, worker)]
  assert weights[0] and weights[0] == weights[1]
  for name in chief_agent:
    np.testing.assert_array_equal(chief_agent[name], agent[name], name)
  # Evaluation loads the chief's checkpoint on one device.
  summary = evaluate.evaluate(str(logdir), episodes=1, video=False,
                              outdir=str(tmp_path / 'eval'))
  assert summary['episodes'] == 1 and summary['policy_steps'] == STEPS


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_with_a_message_naming_it(tmp_path):
  """As the two tasks of a SLURM job step (SlurmClusterResolver, auto)."""
  logdir = tmp_path / 'run'
  procs = start_workers(logdir, steps=400, slurm=True)
  wait_for_training(logdir, procs)
  os.killpg(procs[1].pid, signal.SIGKILL)
  start = time.time()
  (code, out, err), _ = finish(procs, timeout=300)
  assert ('Strategy: multi_worker, 2 replicas on 2 workers; this is worker 0 '
          '(chief) on CPU:0 (auto: SLURM_STEP_NUM_TASKS=2)') in out
  assert code == 1
  assert time.time() - start < 120
  message = err.strip().splitlines()[-1]
  assert message.startswith('launch.train: Worker /job:worker/task:1 of this '
                            '2-worker run stopped responding'), err[-3000:]
  assert 'Traceback' not in err
  # A rerun with one worker is refused: the run has two.
  proc = subprocess.run(
      fault_injection.command(logdir, steps=400, save_every=EVERY),
      cwd=ROOT, env=fault_injection.QUIET, capture_output=True, text=True,
      timeout=300, check=False)
  assert proc.returncode == 1
  assert 'trained with 2 worker(s) and resumes with 1' in proc.stderr
