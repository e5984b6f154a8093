"""Which `tf.distribute` strategy a run trains with, on one machine.

  distribution = distribute.resolve('auto', cpu_replicas=1)
  agent = Agent(obs_space, act_space, strategy=distribution.strategy)
  print(distribution.describe())  # Strategy: mirrored, 2 replicas on ...

Names (`train.strategy`, launch.train `--strategy`):

  auto          the default: several workers in the cluster (`TF_CONFIG`,
                or a SLURM job step with more than one task) -> multi_worker;
                several local GPUs, or `cpu_replicas` > 1 -> mirrored; else
                default
  default       one device: the first GPU if there is one, else the CPU
  mirrored      `MirroredStrategy`, one replica per local GPU, or per
                logical CPU device with `cpu_replicas` = N >= 2
  multi_worker  `MultiWorkerMirroredStrategy` over the workers of a cluster
                (one process per machine, every GPU of it, or its CPU),
                from `TF_CONFIG` or a SLURM job step
                (`SlurmClusterResolver`); run/workers.py coordinates them

`cpu_replicas` = N >= 2 splits the CPU into N logical devices
(`tf.config.set_logical_device_configuration`) so that `mirrored` runs N
replicas on a machine without GPUs: for testing the multi-replica update,
not for speed (the replicas share the cores: the size1m vector update
is 1.70x slower on 2 replicas than on 1, docs/benchmarks/
vector-update-probes-2026-11-28.json). TensorFlow fixes its devices
when it first uses them, so the split must come before any TensorFlow op in
the process (`resolve` is the first thing `train` does, and launch.train
runs no op before it); afterwards the split can only be repeated
identically, and asking for another count raises `StrategyError`.

Every replica trains an equal share of the global batch (`Agent.batch_size`
must be divisible by the replica count; the Agent refuses otherwise), and
the update with R replicas computes what the one-device update computes up
to float32 summation order (dreamer_tf/model/placement.py,
tests/model/test_placement.py). The agent's state is the same set of
tensors whatever the strategy (`Agent.get_state` reads one replica; all
replicas hold the same values), so a checkpoint written with any strategy
restores with any other: evaluation and export load it on one device, and a
run may resume with another replica count. Such a resume continues the same
algorithm but is no longer bit-equal to a run that never stopped (the
summation order changed, and over many updates rounding differences grow),
so `resume_note` says so on the console. Measured on a debug-suite run
(tests/run/test_distribute.py): after 6 updates the 2-replica parameters
are within 3e-8 (relative, per tensor) of the one-device run's, and those
that start at zero, which hold nothing but their LaProp steps, within 4e-5.

With `multi_worker` every worker runs the same command (its own
`TF_CONFIG` task, or its SLURM task) and its own env driver and replay,
and samples its share of the global batch; the update's collectives (the
gathered return percentiles, the finiteness vote, the gradient all-reduce)
span the workers. `Distribution.worker` is this process's rank (the chief
is 0) and `workers` their count. Collectives wait at most
`collective_timeout` seconds for a worker that hangs; a worker that dies is
noticed at the next collective (run/workers.py names it).

Errors name the problem and the fix (`StrategyError`, a `ConfigError`:
launch.train prints them as one line). This module imports TensorFlow
inside functions only, so launchers can import it for the names (flags)
before TensorFlow is loaded.
"""
import dataclasses
import json
import os

from dreamer_tf.config_check import ConfigError

STRATEGIES = ('auto', 'default', 'mirrored', 'multi_worker')
SINGLE_MACHINE_FIX = (
    'To train on this machine only, pass --strategy=default (one device) '
    'or --strategy=mirrored (its GPUs, or --cpu_replicas=N logical CPU '
    'devices) (gin: train.strategy).')


class StrategyError(ConfigError):
  """A strategy that cannot run here: an unknown name, a replica count the
  devices cannot give, a cluster that cannot be used, or a resume with
  another worker count. The message names the problem and the fix."""

# TF_CONFIG jobs a multi-worker run takes part in (a parameter server or an
# evaluator job is another training architecture).
WORKER_JOBS = ('chief', 'worker')
# SlurmClusterResolver's GPU slices per node on a node without GPUs.
NOTIONAL_GPUS = 1024


@dataclasses.dataclass(frozen=True)
class Distribution:
  """The strategy a run trains with, resolved from its name.

  name: 'default' or 'mirrored' (what `auto` chose, or what was asked);
  strategy: the `tf.distribute.Strategy` to pass to `Agent(strategy=...)`;
  devices: its replicas' devices, short names ('CPU:0', 'GPU:1');
  reason: why this strategy (for the console line).
  """
  name: str
  strategy: object
  devices: tuple
  reason: str
  worker: int = 0  # This process's rank among the workers (chief: 0).
  workers: int = 1

  @property
  def replicas(self):
    return self.strategy.num_replicas_in_sync

  @property
  def is_chief(self):
    return self.worker == 0

  def describe(self):
    """One console line: name, replica count, devices and why."""
    noun = 'replica' if self.replicas == 1 else 'replicas'
    where = ', '.join(self.devices)
    if self.workers > 1:
      where = (f'{self.workers} workers; this is worker {self.worker}'
               f'{" (chief)" if self.is_chief else ""} on {where}')
    return (f'Strategy: {self.name}, {self.replicas} {noun} on {where} '
            f'({self.reason}).')

  def record(self):
    """The run record's fields (`run/record.py`): strategy, replicas,
    devices (this worker's), workers."""
    return dict(strategy=self.name, replicas=self.replicas,
                devices=list(self.devices), workers=self.workers)


def check(name, cpu_replicas):
  """StrategyError for an unknown strategy name or a replica count below 1.
  Needs no TensorFlow: launchers call it while they read their flags."""
  if name not in STRATEGIES:
    raise StrategyError(
        f'Strategy {name!r} is unknown: use one of {", ".join(STRATEGIES)} '
        '(--strategy, gin train.strategy).')
  if isinstance(cpu_replicas, bool) or not isinstance(cpu_replicas, int) or (
      cpu_replicas < 1):
    raise StrategyError(
        f'cpu_replicas={cpu_replicas!r}: the number of logical CPU devices '
        'is an integer >= 1 (1: the CPU is not split). Pass e.g. '
        '--cpu_replicas=2 (gin: train.cpu_replicas).')


def cluster_tasks(environ):
  """(tasks, where that was read) of the cluster this process is part of.

  `TF_CONFIG` (TensorFlow's cluster spec: its chief, worker and ps tasks)
  first, else a SLURM job step's task count (`SLURM_STEP_NUM_TASKS`, or
  `SLURM_NTASKS` outside a step); (1, '') when neither describes a
  cluster. A malformed TF_CONFIG raises StrategyError.
  """
  text = environ.get('TF_CONFIG', '').strip()
  if text:
    try:
      spec = json.loads(text)
      cluster = spec.get('cluster', {})
      jobs = {job: len(cluster[job]) for job in cluster}
      task = spec.get('task', {})
    except (ValueError, AttributeError, TypeError) as e:
      raise StrategyError(
          f'TF_CONFIG is not a TensorFlow cluster spec ({e}): it must be '
          'JSON like {"cluster": {"worker": ["host:port", ...]}, "task": '
          '{"type": "worker", "index": 0}}. Fix it, or unset TF_CONFIG to '
          'train on this machine.') from None
    others = sorted(set(jobs) - set(WORKER_JOBS))
    if others:
      raise StrategyError(
          f'TF_CONFIG names the job(s) {others}: a multi-worker run has '
          '"chief" and "worker" tasks only (every one trains). Remove '
          'them, or unset TF_CONFIG to train on this machine.')
    tasks = sum(jobs.values())
    if tasks and task.get('type') not in jobs:
      raise StrategyError(
          f'TF_CONFIG\'s task {task} is not one of its cluster\'s jobs '
          f'{sorted(jobs)}: set "task": {{"type": "worker", "index": i}} '
          'on worker i.')
    if tasks:
      return tasks, f'TF_CONFIG names {tasks} tasks'
  for variable in ('SLURM_STEP_NUM_TASKS', 'SLURM_NTASKS'):
    value = environ.get(variable, '').strip()
    if value.isdigit():
      return int(value), f'{variable}={value}'
  return 1, ''


def choose(name, cpu_replicas, gpus, tasks=1, cluster=''):
  """(resolved name, reason) for a strategy name on this machine.

  gpus: local GPUs; tasks, cluster: `cluster_tasks`. Pure: the decision of
  `resolve` without TensorFlow. Raises StrategyError for what cannot run
  (module docstring).
  """
  check(name, cpu_replicas)
  if name == 'multi_worker' or (name == 'auto' and tasks > 1):
    where = ('--strategy=multi_worker' if name == 'multi_worker' else
             f'--strategy=auto found a cluster ({cluster})')
    if tasks < 2:
      raise StrategyError(
          f'{where} needs a cluster of several workers, and this process '
          'is in none: set TF_CONFIG on every worker (README "Many GPUs '
          'and machines"), or run it as a SLURM job step with several '
          f'tasks (srun). {SINGLE_MACHINE_FIX}')
    if cpu_replicas > 1:
      raise StrategyError(
          f'{where} with cpu_replicas={cpu_replicas}: each worker of a '
          'multi-worker run trains on its GPUs, or on its CPU as one '
          'device; drop --cpu_replicas (gin train.cpu_replicas).')
    return 'multi_worker', (f'auto: {cluster}' if name == 'auto' else
                            cluster)
  if cpu_replicas > 1 and gpus:
    raise StrategyError(
        f'cpu_replicas={cpu_replicas} splits the CPU into logical devices '
        f'for testing on machines without GPUs, but this one has {gpus} '
        'GPU(s): drop --cpu_replicas (gin train.cpu_replicas); '
        '--strategy=mirrored (or auto) trains on the GPUs.')
  if cpu_replicas > 1 and name == 'default':
    raise StrategyError(
        f'cpu_replicas={cpu_replicas} with --strategy=default: the default '
        'strategy trains on one device. Pass --strategy=mirrored (or auto) '
        'to train on the split CPU, or drop --cpu_replicas.')
  if name == 'mirrored' and cpu_replicas == 1 and gpus < 2:
    raise StrategyError(
        '--strategy=mirrored needs several devices, and this machine has '
        f'{gpus or "no"} GPU{"" if gpus == 1 else "s"}: add --cpu_replicas=N '
        '(N >= 2) to split the CPU into N logical devices (for testing: '
        'they share the cores), or pass --strategy=default (one device).')
  if cpu_replicas > 1:
    resolved, reason = 'mirrored', f'cpu_replicas={cpu_replicas}'
  elif gpus > 1 and name != 'default':
    resolved, reason = 'mirrored', f'{gpus} local GPUs'
  else:
    resolved, reason = 'default', 'one device'
  return resolved, (f'auto: {reason}' if name == 'auto' else reason)


def split_cpu(replicas):
  """Splits the CPU into `replicas` logical devices; returns their names.

  Must run before TensorFlow initialises its devices (any op, or listing
  logical devices, does); repeating the same split later is fine, another
  count raises StrategyError.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  cpu = tf.config.list_physical_devices('CPU')[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
  except RuntimeError as e:
    have = len(tf.config.list_logical_devices('CPU'))
    raise StrategyError(
        f'cpu_replicas={replicas} cannot split the CPU: TensorFlow already '
        f'initialised its devices in this process ({have} logical CPU '
        f'device(s); {e}). The split must come before the first TensorFlow '
        'op: pass --cpu_replicas to launch.train (which applies it first), '
        'or call dreamer_tf.run.distribute.resolve before anything else '
        'uses TensorFlow in the process.') from None
  return [d.name for d in tf.config.list_logical_devices('CPU')]


def resolve(name='auto', cpu_replicas=1, environ=None,
            collective_timeout=3600.0, slurm_port_base=8888):
  """The Distribution for a strategy name on this machine.

  environ: the environment to read the cluster from (default os.environ).
  With cpu_replicas >= 2 (and no GPU) this splits the CPU first
  (`split_cpu`). collective_timeout: seconds a multi-worker collective
  waits for the other workers (longer than the chief's evaluations and the
  first compile). slurm_port_base: the port of a SLURM node's first task
  (its next tasks take the next ports). Raises StrategyError (module
  docstring).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  environ = os.environ if environ is None else environ
  tasks, cluster = cluster_tasks(environ)
  gpus = len(tf.config.list_physical_devices('GPU'))
  resolved, reason = choose(name, cpu_replicas, gpus, tasks, cluster)
  if resolved == 'multi_worker':
    return _multi_worker(environ, reason, collective_timeout, gpus,
                         slurm_port_base)
  if resolved == 'default':
    kind = 'GPU' if gpus else 'CPU'
    devices = [tf.config.list_logical_devices(kind)[0].name]
    strategy = tf.distribute.get_strategy()
  else:
    devices = (split_cpu(cpu_replicas) if cpu_replicas > 1 else
               [d.name for d in tf.config.list_logical_devices('GPU')])
    strategy = tf.distribute.MirroredStrategy(devices)
  return Distribution(resolved, strategy,
                      tuple(_short_name(d) for d in devices), reason)


def _multi_worker(environ, reason, collective_timeout, gpus, port_base):
  """The multi-worker Distribution of this process's cluster."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  resolvers = tf.distribute.cluster_resolver
  if environ.get('TF_CONFIG', '').strip():
    resolver = resolvers.TFConfigClusterResolver()
  else:
    # SLURM's step variables (rank, nodes, tasks per node). The resolver
    # lists a node's tasks along its GPU slices (zip of the two), which
    # would list no task on a node without GPUs: there it gets one notional
    # slice per task. It sets no CUDA_VISIBLE_DEVICES (auto_set_gpu off): a
    # task's GPUs must be chosen before TensorFlow loads (srun
    # --gpus-per-task), which by now it has; the strategy gets the GPUs
    # TensorFlow sees.
    try:
      slurm = resolvers.SlurmClusterResolver(
          port_base=port_base, gpus_per_node=gpus or NOTIONAL_GPUS,
          gpus_per_task=None if gpus else 1, auto_set_gpu=False)
      spec = slurm.cluster_spec()
      # Its cluster, with the devices TensorFlow sees.
      resolver = resolvers.SimpleClusterResolver(
          spec, task_type=slurm.task_type, task_id=slurm.task_id,
          num_accelerators={'GPU': gpus}, rpc_layer='grpc')
    except (RuntimeError, ValueError, LookupError, OSError) as e:
      raise StrategyError(
          f'The SLURM allocation cannot be read as a cluster ({e}). Run '
          'launch.train as a job step (srun), or set '
          'TF_CONFIG on every worker instead.') from None
  options = tf.distribute.experimental.CommunicationOptions(
      timeout_seconds=collective_timeout)
  strategy = tf.distribute.MultiWorkerMirroredStrategy(
      cluster_resolver=resolver, communication_options=options)
  spec = resolver.cluster_spec().as_dict()
  # Ranks: the chief (if the cluster names one) first, then the workers.
  offset = len(spec.get('chief', ())) if resolver.task_type == 'worker' else 0
  workers = sum(len(spec.get(job, ())) for job in WORKER_JOBS)
  devices = tuple(_short_name(d) for d in strategy.extended.worker_devices)
  return Distribution('multi_worker', strategy, devices, reason,
                      worker=offset + int(resolver.task_id), workers=workers)


def check_workers(previous, distribution):
  """StrategyError when a run resumes with another worker count than it
  was trained with (`previous`: the run record, or None): every worker
  resumes its own replay shard and env states."""
  before = getattr(previous, 'workers', 1) or 1
  if before != distribution.workers:
    raise StrategyError(
        f'This run was trained with {before} worker(s) and resumes with '
        f'{distribution.workers}: every worker resumes its own replay shard '
        'and env states, so the worker count cannot change. Resume with '
        f'{before} worker(s) (the same cluster), or start a new --logdir.')


def resume_note(previous, distribution):
  """A console note when a run resumes with another replica count than it
  was trained with (`previous`: the run record, or None), else None.

  Allowed: the agent's state does not depend on the replica count, and the
  update computes the same up to float32 summation order (module
  docstring); only bit-exactness with a run that never stopped is lost.
  """
  before = getattr(previous, 'replicas', 0)
  if not before or before == distribution.replicas:
    return None
  return (
      f'Note: this run was trained with {before} replica(s) '
      f'({previous.strategy} on {", ".join(previous.devices)}) and resumes '
      f'with {distribution.replicas} ({distribution.name} on '
      f'{", ".join(distribution.devices)}). The update is the same up to '
      'float32 summation order, so training continues as it would have, '
      'but not bit-for-bit: an exact resume needs the original replica '
      'count.')


def _short_name(device):
  """'/job:localhost/replica:0/task:0/device:CPU:1' -> 'CPU:1'."""
  return device.rsplit('device:', 1)[-1]
