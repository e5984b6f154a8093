"""The run record, `<logdir>/run.json`: what a run is, in one place.

Written by the training loop when a run starts and read by evaluation,
score loading (plots, tables) and sweep status, so none of them needs to
parse `config.gin` or know `train`'s defaults:

  env               'suite:task' id
  env_kwargs        the env constructor's keyword arguments
  frames_per_step   env frames per policy step (the action repeat)
  seed              the run's seed (agent, replay, envs)
  num_envs          training env workers
  steps, frames     the budget in policy steps and in env frames
  train_ratio       replayed steps per policy step
  strategy          the tf.distribute strategy it last trained with
                    ('default', 'mirrored', 'multi_worker';
                    `run/distribute.py`)
  replicas, devices its replica count and their devices ('CPU:0', ...;
                    a multi-worker run: the chief's)
  workers           processes it trains in (1 unless multi_worker; a
                    resume with another count is refused)
  created           UTC time the run was first started
  version           dreamer_tf version that created it

A resumed run must describe the same experiment: `write` refuses a record
whose env, env_kwargs, frames per step or seed differ from the saved one
(a new budget is allowed and recorded, and so is another strategy or
replica count: the agent's state does not depend on them). Records written
before the strategy was recorded read as strategy '' and 0 replicas, and
before workers were recorded as 1 worker. This
module needs no TensorFlow.
"""
import dataclasses
import json
import os
import re
import time

from dreamer_tf import files

FILE = 'run.json'
VERSION = '0.2.0'
# Fields a resumed run may not change (they define the experiment).
IDENTITY = ('env', 'env_kwargs', 'frames_per_step', 'seed')


class RunRecordError(ValueError):
  """A run directory without a usable record, or a resume that contradicts
  the record of the run."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """The settings that define one run (see the module docstring)."""
  env: str
  env_kwargs: dict
  frames_per_step: int
  seed: int
  num_envs: int = 1
  steps: int = 0
  train_ratio: float = 0.0
  strategy: str = ''
  replicas: int = 0
  devices: list = dataclasses.field(default_factory=list)
  workers: int = 1
  created: str = ''
  version: str = VERSION

  @property
  def frames(self):
    """The budget in env frames."""
    return self.steps * self.frames_per_step

  def to_json(self):
    return dict(dataclasses.asdict(self), frames=self.frames)


def path(logdir):
  return os.path.join(logdir, FILE)


def check(logdir, record, fields=IDENTITY):
  """Raises RunRecordError when the logdir's run.json (if any) names
  another env, env kwargs, frames per step or seed than `record`; returns
  the saved record or None. Call it before a resume touches anything."""
  old = load(logdir) if os.path.exists(path(logdir)) else None
  if old is not None:
    diff = [f'{k}: run.json {getattr(old, k)!r} vs now {getattr(record, k)!r}'
            for k in fields
            if _jsonable(getattr(old, k)) != _jsonable(getattr(record, k))]
    if diff:
      raise RunRecordError(
          f'{path(logdir)} describes another experiment than this resume:\n  '
          + '\n  '.join(diff) + '\nUse the original settings or a new '
          '--logdir.')
  return old


def write(logdir, record):
  """Writes `record` as the run's record (atomic); returns it.

  If the logdir already has one (a resume), the identity fields must match
  (`check`); its creation time is kept and the budget updated.
  """
  old = check(logdir, record)
  if old is not None:
    record = dataclasses.replace(record, created=old.created,
                                 version=old.version)
  elif not record.created:
    record = dataclasses.replace(record, created=time.strftime(
        '%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
  files.write_atomic(path(logdir), json.dumps(record.to_json(), indent=1))
  return record


def load(logdir):
  """The RunRecord of a run directory.

  Runs made before run.json existed (dreamer_tf < 0.2) are read from their
  config.gin by `legacy_record`. Raises RunRecordError when neither exists.
  """
  file = path(logdir)
  if not os.path.exists(file):
    return legacy_record(logdir)
  try:
    with open(file) as f:
      data = json.load(f)
    data.pop('frames', None)
    return RunRecord(**data)
  except (ValueError, TypeError) as e:
    raise RunRecordError(
        f'{file} is not a valid run record ({e}). It is written by '
        'launch.train when a run starts; restore it from a copy or delete '
        'it and resume the run to write it again.') from None


def legacy_record(logdir):
  """The record of a run written before run.json existed, from the
  `train.*` bindings of its config.gin (unbound ones take the defaults of
  that version: CartPole-v1, seed from the directory name or sweep.json)."""
  # pylint: disable-next=import-outside-toplevel
  from dreamer_tf import envs as envs_lib
  config = os.path.join(logdir, 'config.gin')
  if not os.path.exists(config):
    raise RunRecordError(
        f'{logdir!r} has no {FILE} and no config.gin: not a run directory '
        '(launch.train --logdir=... writes both).')
  with open(config) as f:
    text = f.read()
  env = gin_value(text, 'train.env') or envs_lib.DEFAULT
  kwargs = gin_value(text, 'train.env_kwargs') or {}
  seed = gin_value(text, 'train.seed')
  if seed is None:
    seed = _legacy_seed(logdir)
  try:
    frames_per_step = envs_lib.frames_per_step(
        env, kwargs, gin_value(text, 'train.frames_per_step'))
  except ValueError as e:
    raise RunRecordError(f'{config}: {e}') from None
  return RunRecord(
      env=env, env_kwargs=kwargs, seed=seed,
      frames_per_step=frames_per_step,
      num_envs=gin_value(text, 'train.num_envs') or 1,
      steps=gin_value(text, 'train.steps') or 0,
      train_ratio=gin_value(text, 'train.train_ratio') or 0.0,
      version='legacy')


def gin_value(text, name):
  """The Python literal bound to `name` in gin config text, or None."""
  # pylint: disable-next=import-outside-toplevel
  import ast
  text = re.sub(r'\\\n', ' ', text)
  match = re.search(rf'^{re.escape(name)}\s*=\s*(.+)$', text, re.MULTILINE)
  if not match:
    return None
  try:
    return ast.literal_eval(match.group(1).strip())
  except (ValueError, SyntaxError):
    return match.group(1).strip()


def _legacy_seed(logdir):
  """The seed of sweep.json (its `seed` or the `--seed=` of its command),
  else the trailing number of the directory name, else the name."""
  sweep = os.path.join(logdir, 'sweep.json')
  if os.path.exists(sweep):
    with open(sweep) as f:
      info = json.load(f)
    if isinstance(info, dict) and 'seed' in info:
      return info['seed']
    match = re.search(r'--seed[= ](\d+)', str(
        info.get('command', '') if isinstance(info, dict) else ''))
    if match:
      return int(match.group(1))
  name = os.path.basename(os.path.normpath(logdir))
  match = re.search(r'(\d+)$', name)
  return int(match.group(1)) if match else name


def _jsonable(value):
  return json.loads(json.dumps(value))
