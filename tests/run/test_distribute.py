"""The strategy of a run (dreamer_tf/run/distribute.py): every name
resolved, the errors and their fixes, launch.train's --strategy and
--cpu_replicas, and a mirrored run on 2 logical CPU devices that resumes
exactly after a SIGKILL and stays close to the default-strategy run.

TensorFlow fixes its devices once per process, so whatever splits the CPU
runs in a subprocess; the pytest process keeps its one CPU device.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.run import checkpoint as ckpt_lib
from dreamer_tf.run import distribute
from dreamer_tf.run import evaluate as eval_lib
from dreamer_tf.run import record as record_lib
from tests.conftest import ROOT
from tools import fault_injection

GPUS = len(tf.config.list_physical_devices('GPU'))
cpu_only = pytest.mark.skipif(GPUS > 0, reason='expects a machine without '
                              'GPUs')

# --- Which strategy each name gives (pure: no devices touched) -----------

# (name, cpu_replicas, gpus, cluster tasks) -> (resolved name, reason)
CHOICES = [
    (('auto', 1, 0, 1), ('default', 'auto: one device')),
    (('auto', 1, 1, 1), ('default', 'auto: one device')),
    (('auto', 1, 4, 1), ('mirrored', 'auto: 4 local GPUs')),
    (('auto', 2, 0, 1), ('mirrored', 'auto: cpu_replicas=2')),
    (('default', 1, 0, 1), ('default', 'one device')),
    (('default', 1, 4, 1), ('default', 'one device')),
    (('mirrored', 1, 2, 1), ('mirrored', '2 local GPUs')),
    (('mirrored', 3, 0, 1), ('mirrored', 'cpu_replicas=3')),
    # An explicit single-machine strategy ignores the cluster.
    (('default', 1, 0, 4), ('default', 'one device')),
    (('mirrored', 2, 0, 4), ('mirrored', 'cpu_replicas=2')),
    # A cluster: auto, or multi_worker, trains on all of its workers.
    (('auto', 1, 2, 4), ('multi_worker', 'auto: SLURM_NTASKS=4')),
    (('multi_worker', 1, 0, 4), ('multi_worker', 'SLURM_NTASKS=4')),
]


@pytest.mark.parametrize('args, expected', CHOICES)
def test_every_name_resolves_to_a_strategy(args, expected):
  name, cpu_replicas, gpus, tasks = args
  assert distribute.choose(name, cpu_replicas, gpus, tasks,
                           'SLURM_NTASKS=4') == expected


# (name, cpu_replicas, gpus, cluster tasks) -> words of the message.
REFUSED = {
    'unknown_name': (('mirrorred', 1, 0, 1), [
        "Strategy 'mirrorred' is unknown", 'auto, default, mirrored']),
    'zero_cpu_replicas': (('auto', 0, 0, 1), [
        'cpu_replicas=0', 'integer >= 1', '--cpu_replicas=2']),
    'mirrored_on_one_device': (('mirrored', 1, 0, 1), [
        '--strategy=mirrored needs several devices', 'no GPUs',
        '--cpu_replicas=N', '--strategy=default']),
    'mirrored_on_one_gpu': (('mirrored', 1, 1, 1), [
        'has 1 GPU:', '--cpu_replicas=N']),
    'cpu_replicas_with_a_gpu': (('auto', 2, 1, 1), [
        'cpu_replicas=2 splits the CPU', 'has 1 GPU(s)',
        'drop --cpu_replicas']),
    'cpu_replicas_with_default': (('default', 2, 0, 1), [
        'cpu_replicas=2 with --strategy=default', '--strategy=mirrored']),
    'multi_worker_without_a_cluster': (('multi_worker', 1, 0, 1), [
        '--strategy=multi_worker needs a cluster of several workers',
        'set TF_CONFIG on every worker', 'SLURM job step',
        '--strategy=default', '--strategy=mirrored']),
    'multi_worker_with_cpu_replicas': (('auto', 2, 0, 4), [
        '--strategy=auto found a cluster (SLURM_NTASKS=4) with '
        'cpu_replicas=2', 'drop --cpu_replicas']),
}


@pytest.mark.parametrize('case', sorted(REFUSED))
def test_what_cannot_run_is_refused_naming_the_fix(case):
  (name, cpu_replicas, gpus, tasks), words = REFUSED[case]
  with pytest.raises(distribute.StrategyError) as error:
    distribute.choose(name, cpu_replicas, gpus, tasks, 'SLURM_NTASKS=4')
  for word in words:
    assert word in str(error.value), (word, str(error.value))


def test_the_cluster_is_read_from_tf_config_then_slurm():
  tasks = distribute.cluster_tasks
  assert tasks({}) == (1, '')
  assert tasks({'TF_CONFIG': json.dumps({'cluster': {
      'chief': ['a:1'], 'worker': ['b:1', 'c:1']},
      'task': {'type': 'worker', 'index': 1}})}) == (
          3, 'TF_CONFIG names 3 tasks')
  assert tasks({'SLURM_NTASKS': '4'}) == (4, 'SLURM_NTASKS=4')
  # A job step's own task count wins over the job's.
  assert tasks({'SLURM_NTASKS': '4', 'SLURM_STEP_NUM_TASKS': '1'}) == (
      1, 'SLURM_STEP_NUM_TASKS=1')
  assert tasks({'TF_CONFIG': '{"task": {}}', 'SLURM_NTASKS': '2'}) == (
      2, 'SLURM_NTASKS=2')
  with pytest.raises(distribute.StrategyError, match='TF_CONFIG is not a '
                     'TensorFlow cluster spec.*unset TF_CONFIG'):
    tasks({'TF_CONFIG': '[1, 2]'})
  with pytest.raises(distribute.StrategyError, match=r"job\(s\) \['ps'\].*"
                     '"chief" and "worker" tasks only'):
    tasks({'TF_CONFIG': json.dumps({'cluster': {
        'worker': ['a:1'], 'ps': ['b:1']}, 'task': {'type': 'worker'}})})
  with pytest.raises(distribute.StrategyError, match='is not one of its '
                     'cluster.s jobs.*"index": i'):
    tasks({'TF_CONFIG': json.dumps({'cluster': {
        'worker': ['a:1', 'b:1']}, 'task': {'type': 'evaluator'}})})


def test_a_slurm_allocation_outside_a_job_step_names_the_fix(monkeypatch):
  for name in ('TF_CONFIG', 'SLURM_NTASKS', 'SLURM_STEP_NUM_TASKS',
               'SLURM_PROCID'):
    monkeypatch.delenv(name, raising=False)
  with pytest.raises(distribute.StrategyError, match=(
      'SLURM allocation cannot be read as a cluster.*SLURM_PROCID.*job step '
      r'\(srun\), or set TF_CONFIG')):
    distribute.resolve('auto', environ={'SLURM_NTASKS': '2'})


def test_a_resume_with_another_worker_count_is_refused():
  def distribution(workers):
    return distribute.Distribution('multi_worker', None, ('CPU:0',), '',
                                   workers=workers)
  record = record_lib.RunRecord('gym:CartPole-v1', {}, 1, 0, workers=2)
  distribute.check_workers(record, distribution(2))
  with pytest.raises(distribute.StrategyError, match=(
      'trained with 2 worker.s. and resumes with 1.*own replay shard.*'
      'Resume with 2 worker.s.')):
    distribute.check_workers(record, distribution(1))
  # A record from before workers were recorded: one worker.
  old = record_lib.RunRecord('gym:CartPole-v1', {}, 1, 0)
  distribute.check_workers(old, distribution(1))


@cpu_only
def test_default_and_auto_train_on_the_one_cpu(monkeypatch):
  for name in ('TF_CONFIG', 'SLURM_NTASKS', 'SLURM_STEP_NUM_TASKS'):
    monkeypatch.delenv(name, raising=False)
  for name in ('auto', 'default'):
    distribution = distribute.resolve(name)
    assert distribution.strategy is tf.distribute.get_strategy()
    assert (distribution.name, distribution.replicas,
            distribution.devices) == ('default', 1, ('CPU:0',))
  assert distribution.describe() == (
      'Strategy: default, 1 replica on CPU:0 (one device).')
  assert distribution.record() == dict(strategy='default', replicas=1,
                                       devices=['CPU:0'], workers=1)


# --- Splitting the CPU (subprocesses) -------------------------------------

SPLIT_FIRST = """
import json
from dreamer_tf.config_check import ConfigError
from dreamer_tf.run import distribute
out = {}
for name in ('mirrored', 'auto'):  # The second repeats the same split.
  d = distribute.resolve(name, cpu_replicas=2)
  out[name] = [d.name, d.replicas, list(d.devices), d.describe()]
d = distribute.resolve('default')
out['default'] = [d.name, d.replicas, list(d.devices)]
try:
  distribute.resolve('mirrored', cpu_replicas=3)
except distribute.StrategyError as e:
  out['another_split'] = str(e)
from dreamer_tf import config, spaces
from dreamer_tf.model import agent as agent_lib
from tests.conftest import TINY
mirrored = distribute.resolve('mirrored', cpu_replicas=2).strategy
config.parse([], TINY + ['Agent.batch_size = 3'])
try:
  agent_lib.Agent(spaces.parse_obs_space('4'),
                  spaces.parse_act_space('discrete:2'), strategy=mirrored)
except ConfigError as e:
  out['batch'] = str(e)
print(json.dumps(out))
"""

OP_FIRST = """
import tensorflow as tf
from dreamer_tf.run import distribute
tf.constant(1.0) + 1.0  # TensorFlow initialises its devices here.
try:
  distribute.resolve('mirrored', cpu_replicas=2)
except distribute.StrategyError as e:
  print(e)
"""


def run_script(script):
  proc = subprocess.run([sys.executable, '-c', script], cwd=ROOT,
                        capture_output=True, text=True, timeout=300,
                        check=False, env=fault_injection.QUIET)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout.strip().splitlines()[-1]


@cpu_only
def test_cpu_replicas_split_the_cpu_once_per_process():
  out = json.loads(run_script(SPLIT_FIRST))
  devices = ['CPU:0', 'CPU:1']
  assert out['mirrored'][:3] == ['mirrored', 2, devices]
  assert out['mirrored'][3] == ('Strategy: mirrored, 2 replicas on CPU:0, '
                                'CPU:1 (cpu_replicas=2).')
  assert out['auto'][:3] == ['mirrored', 2, devices]
  assert out['default'] == ['default', 1, ['CPU:0']]
  for word in ('cpu_replicas=3 cannot split the CPU',
               'already initialised its devices', '2 logical CPU device(s)',
               'before the first TensorFlow op'):
    assert word in out['another_split'], out['another_split']
  assert out['batch'].startswith(
      'Agent.batch_size=3 is not divisible by the 2 replicas'), out['batch']
  assert 'multiple of 2' in out['batch']


@cpu_only
def test_a_split_after_the_first_op_names_the_problem_and_the_fix():
  message = run_script(OP_FIRST)
  for word in ('cpu_replicas=2 cannot split the CPU',
               '1 logical CPU device(s)', 'pass --cpu_replicas to '
               'launch.train'):
    assert word in message, message


# --- Run record and resume note ----------------------------------------------


def test_run_json_records_the_strategy_and_reads_older_records(tmp_path):
  fields = dict(env='gym:CartPole-v1', env_kwargs={}, frames_per_step=1,
                seed=0)
  record_lib.write(tmp_path, record_lib.RunRecord(
      **fields, strategy='mirrored', replicas=2, devices=['CPU:0', 'CPU:1']))
  saved = record_lib.load(tmp_path)
  assert (saved.strategy, saved.replicas, saved.devices) == (
      'mirrored', 2, ['CPU:0', 'CPU:1'])
  # Another replica count is no other experiment: the record says the new.
  record_lib.write(tmp_path, record_lib.RunRecord(
      **fields, strategy='default', replicas=1, devices=['CPU:0']))
  assert record_lib.load(tmp_path).replicas == 1
  older = tmp_path / 'older'
  older.mkdir()
  (older / 'run.json').write_text(json.dumps(dict(fields, num_envs=1)))
  assert record_lib.load(older).replicas == 0  # Unknown: no note on resume.


class _Replicas:
  """A stand-in for a Distribution: name, replica count, devices."""

  def __init__(self, name, devices):
    self.name, self.devices, self.replicas = name, devices, len(devices)


def test_a_resume_with_another_replica_count_is_allowed_with_a_note():
  previous = record_lib.RunRecord(
      env='gym:CartPole-v1', env_kwargs={}, frames_per_step=1, seed=0,
      strategy='mirrored', replicas=2, devices=['CPU:0', 'CPU:1'])
  note = distribute.resume_note(previous, _Replicas('default', ['CPU:0']))
  assert note.startswith('Note: this run was trained with 2 replica(s) '
                         '(mirrored on CPU:0, CPU:1) and resumes with 1 '
                         '(default on CPU:0).')
  assert 'an exact resume needs the original replica count' in note
  same = _Replicas('mirrored', ['CPU:0', 'CPU:1'])
  assert distribute.resume_note(previous, same) is None
  assert distribute.resume_note(None, same) is None  # A new run.
  older = record_lib.RunRecord(env='gym:CartPole-v1', env_kwargs={},
                               frames_per_step=1, seed=0)
  assert distribute.resume_note(older, same) is None  # Unknown before.


# --- launch.train's flags -----------------------------------------------------

DEBUG = ['--gin_file=gin_configs/default.gin',
         '--gin_file=gin_configs/suites/debug.gin']


def launch_train(logdir, *argv, env=None):
  return subprocess.run(
      [sys.executable, '-m', 'launch.train', f'--logdir={logdir}', *DEBUG,
       *argv], cwd=ROOT, capture_output=True, text=True, timeout=300,
      check=False, env=dict(fault_injection.QUIET, **(env or {})))


# case: (argv, extra environment, words of the one-line message)
LAUNCH_ERRORS = {
    # The flag overrides the binding (here: towards an error).
    'flag_over_binding': (
        ["--gin_param=train.strategy='default'", '--strategy=multi_worker'],
        {}, ['launch.train: --strategy=multi_worker needs a cluster']),
    'two_counts': (
        ['--cpu_replicas=1,2'], {},
        ['launch.train: --cpu_replicas=1,2: launch.train takes one count']),
    'slurm_allocation_outside_a_step': (
        [], {'SLURM_NTASKS': '2'},
        ['launch.train: The SLURM allocation cannot be read as a cluster',
         'job step (srun)']),
    'indivisible_batch': (  # Agent.batch_size = 4 in debug.gin.
        ['--strategy=mirrored', '--cpu_replicas=3'], {},
        ['launch.train: Agent.batch_size=4 is not divisible by the 3 '
         'replicas']),
}


@cpu_only
@pytest.mark.parametrize('case', sorted(LAUNCH_ERRORS))
def test_launch_train_refuses_a_strategy_in_one_line(tmp_path, case):
  argv, env, words = LAUNCH_ERRORS[case]
  proc = launch_train(tmp_path / 'run', *argv, env=env)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  for word in words:
    assert word in proc.stderr, (word, proc.stderr[-3000:])


@cpu_only
@pytest.mark.slow
def test_a_run_resumes_with_another_replica_count_and_says_so(tmp_path):
  """Before its first update (no compile): 8 policy steps on one device,
  then 8 more on 2 replicas."""
  logdir = tmp_path / 'run'
  first = launch_train(logdir, '--gin_param=train.steps=8',
                       '--strategy=default')
  assert first.returncode == 0, first.stderr[-3000:]
  assert 'Strategy: default, 1 replica on CPU:0' in first.stdout
  second = launch_train(logdir, '--gin_param=train.steps=16',
                        '--strategy=mirrored', '--cpu_replicas=2')
  assert second.returncode == 0, second.stderr[-3000:]
  assert 'Resuming from' in second.stdout
  assert ('Note: this run was trained with 1 replica(s) (default on CPU:0) '
          'and resumes with 2 (mirrored on CPU:0, CPU:1).') in second.stdout
  record = record_lib.load(logdir)
  assert (record.strategy, record.replicas) == ('mirrored', 2)
  assert "train.strategy = 'mirrored'" in (logdir / 'config.gin').read_text()


# --- A mirrored run end to end ------------------------------------------------

# The debug-suite run of tools/fault_injection.py at train ratio 8: training
# starts at policy step 40 (32 sequences in replay), then one update every
# 4 steps, 6 in all; checkpoints every 16 steps. Without XLA, as the
# mirrored-vs-single update test (tests/model/test_placement.py): the one
# XLA program of a single replica and the split programs of several fuse,
# hence round, differently, which flips categorical samples that tie to an
# ulp and makes the runs incomparable.
STEPS, SAVE_EVERY, KILL_AFTER = 64, 16, 48
MIRRORED = ['--strategy=mirrored', '--cpu_replicas=2']


def run_argv(logdir, *strategy):
  return fault_injection.command(
      logdir, steps=STEPS, save_every=SAVE_EVERY, extra=[
          '--gin_param=train.train_ratio=8',
          '--gin_param=Agent.jit_compile=False', *strategy])


def start(argv):
  return subprocess.Popen(argv, cwd=ROOT, env=fault_injection.QUIET,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def finish(proc):
  out, err = proc.communicate(timeout=900)
  assert proc.returncode == 0, err[-3000:]
  return out


def agent_groups(agent):
  """The agent's state by group, as tests/model/mirrored_update.py has it."""
  optimizer = list(agent.optimizer.variables)
  groups = dict(
      params=agent.trainable_variables, slow_critic=agent.slow_variables,
      retnorm=[v for r in agent.retnorms.values() for v in r.weights],
      optimizer_nu=[v for v in optimizer if 'nu' in v.name],
      optimizer_mu=[v for v in optimizer if 'mu' in v.name])
  return {k: [np.array(v.numpy()) for v in vs] for k, vs in groups.items()}


def max_rel(pairs):
  """Per tensor max |a - b| / max |a|, the largest (mirrored_update.py)."""
  return max(float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))
             for a, b in pairs)


@cpu_only
@pytest.mark.slow
def test_a_mirrored_run_resumes_exactly_and_matches_the_default_strategy(
    tmp_path):
  """`launch.train --strategy=mirrored --cpu_replicas=2`, killed with
  SIGKILL after a checkpoint with updates and resumed, ends as the same
  run never stopped; its agent is close to the default-strategy run's and
  restores, evaluates and exports on one device."""
  straight, stopped, single = (tmp_path / n for n in (
      'straight', 'stopped', 'default'))
  # Tracing is mostly single-threaded Python: the runs share the 2 cores.
  runs = [start(run_argv(straight, *MIRRORED)),
          start(run_argv(single, '--strategy=default'))]
  kill = fault_injection.kill_at(
      stopped, dict(kind='step', step=KILL_AFTER + 1, delay=0.0),
      run_argv(stopped, *MIRRORED))
  straight_out, single_out = (finish(p) for p in runs)
  assert kill['killed'], kill
  counters = ckpt_lib.read(str(stopped / 'ckpt'))['counters']
  assert counters['policy_steps'] == KILL_AFTER
  assert counters['ratio']['updates'] > 0, 'killed before training started'
  resumed = fault_injection.run_to_end(run_argv(stopped, *MIRRORED))
  assert 'Resuming from' in resumed.stdout
  assert 'Note:' not in resumed.stdout  # Same replica count: exact.
  for out in (straight_out, resumed.stdout):
    assert ('Strategy: mirrored, 2 replicas on CPU:0, CPU:1 '
            '(cpu_replicas=2).') in out
  assert 'Strategy: default, 1 replica on CPU:0' in single_out
  record = record_lib.load(straight)
  assert (record.strategy, record.replicas, record.devices) == (
      'mirrored', 2, ['CPU:0', 'CPU:1'])
  assert record_lib.load(single).replicas == 1

  # Every checkpoint tensor, counters, replay, scores and logged steps.
  assert not fault_injection.compare(straight, stopped)

  # On one device (this process): the mirrored checkpoint restores as is.
  mirrored_agent, states = eval_lib.restore_agent(str(straight))
  assert mirrored_agent.strategy.num_replicas_in_sync == 1
  for value, saved in zip(mirrored_agent.get_state(),
                          states['agent']['variables']):
    np.testing.assert_array_equal(value, saved)
  single_agent, single_states = eval_lib.restore_agent(str(single))
  assert (states['counters']['ratio'] ==
          single_states['counters']['ratio'])
  assert states['counters']['ratio']['updates'] == 6

  # Against the default strategy, with the tolerances of the
  # mirrored-vs-single update test (tests/model/test_placement.py). There
  # each compared update starts from the initial state; here 6 follow
  # each other, and a parameter that starts at zero (biases, zero-init
  # output layers) holds nothing but its LaProp steps, which carry the
  # momentum's rounding (g / sqrt(nu) magnifies the all-reduce's
  # summation order for near-zero gradient entries): those are held to
  # the momentum's tolerance, 1e-3 (measured 3.6e-5), all others to 1e-5
  # (measured 3e-8).
  a, b = agent_groups(single_agent), agent_groups(mirrored_agent)
  zero_init = [not np.any(v) for v in agent_groups(
      _fresh_agent(single_agent))['params']]
  params = list(zip(a['params'], b['params']))
  assert max_rel(p for p, z in zip(params, zero_init) if not z) < 1e-5
  assert max_rel(p for p, z in zip(params, zero_init) if z) < 1e-3
  for group in ('slow_critic', 'retnorm'):
    assert max_rel(zip(a[group], b[group])) < 1e-5, group
  assert max_rel(zip(a['optimizer_nu'], b['optimizer_nu'])) < 1e-4
  assert max_rel(zip(a['optimizer_mu'], b['optimizer_mu'])) < 1e-3

  # Evaluation and export of the mirrored run, on one device.
  summary = eval_lib.evaluate(str(straight), episodes=1, video=False,
                              outdir=str(tmp_path / 'eval'))
  assert summary['episodes'] == 1
  from dreamer_tf.run import export  # pylint: disable=import-outside-toplevel
  export.export_run(str(straight), str(tmp_path / 'exported'))
  assert (tmp_path / 'exported' / 'saved_model.pb').exists()


def _fresh_agent(agent):
  """A newly initialised agent like `agent` (same config and seed)."""
  from dreamer_tf.model import agent as agent_lib  # pylint: disable=import-outside-toplevel
  return agent_lib.Agent(agent.obs_space, agent.act_space, seed=agent.seed)
