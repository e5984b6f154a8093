"""Which `tf.distribute` strategy a run trains with, on one machine.

  distribution = distribute.resolve('auto', cpu_replicas=1)
  agent = Agent(obs_space, act_space, strategy=distribution.strategy)
  print(distribution.describe())  # Strategy: mirrored, 2 replicas on ...

Names (`train.strategy`, launch.train `--strategy`):

  auto          the default: several workers in the cluster (`TF_CONFIG`,
                or a SLURM job step with more than one task) -> multi_worker
                (refused, below); several local GPUs, or `cpu_replicas` > 1
                -> mirrored; else default
  default       one device: the first GPU if there is one, else the CPU
  mirrored      `MirroredStrategy`, one replica per local GPU, or per
                logical CPU device with `cpu_replicas` = N >= 2
  multi_worker  `MultiWorkerMirroredStrategy` over several machines: not
                supported yet (`StrategyError` says how to train on one
                machine instead)

`cpu_replicas` = N >= 2 splits the CPU into N logical devices
(`tf.config.set_logical_device_configuration`) so that `mirrored` runs N
replicas on a machine without GPUs: for testing the multi-replica update,
not for speed (the replicas share the cores). TensorFlow fixes its devices
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

Multi-worker training needs more than a strategy: every worker would run
its own env driver and replay and sample its share of the global batch,
the host-side steps of the multi-replica update (the gathered return
percentiles, the finiteness check) would span workers, and one chief
would write checkpoints and logs. Until that exists it is refused.

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
  devices cannot give, or multi-worker training (not supported yet). The
  message names the problem and the fix."""


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

  @property
  def replicas(self):
    return self.strategy.num_replicas_in_sync

  def describe(self):
    """One console line: name, replica count, devices and why."""
    noun = 'replica' if self.replicas == 1 else 'replicas'
    return (f'Strategy: {self.name}, {self.replicas} {noun} on '
            f'{", ".join(self.devices)} ({self.reason}).')

  def record(self):
    """The run record's fields (`run/record.py`): strategy, replicas,
    devices."""
    return dict(strategy=self.name, replicas=self.replicas,
                devices=list(self.devices))


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
      cluster = json.loads(text).get('cluster', {})
      tasks = sum(len(cluster.get(job, ()))
                  for job in ('chief', 'worker', 'ps'))
    except (ValueError, AttributeError, TypeError) as e:
      raise StrategyError(
          f'TF_CONFIG is not a TensorFlow cluster spec ({e}): it must be '
          'JSON like {"cluster": {"worker": ["host:port", ...]}, "task": '
          '{...}}. Fix it, or unset TF_CONFIG to train on this machine.'
      ) from None
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
    raise StrategyError(
        f'{where}: multi-worker training (MultiWorkerMirroredStrategy over '
        f'several machines) is not supported yet. {SINGLE_MACHINE_FIX}')
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


def resolve(name='auto', cpu_replicas=1, environ=None):
  """The Distribution for a strategy name on this machine.

  environ: the environment to read the cluster from (default os.environ).
  With cpu_replicas >= 2 (and no GPU) this splits the CPU first
  (`split_cpu`). Raises StrategyError (module docstring).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tasks, cluster = cluster_tasks(os.environ if environ is None else environ)
  gpus = len(tf.config.list_physical_devices('GPU'))
  resolved, reason = choose(name, cpu_replicas, gpus, tasks, cluster)
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
