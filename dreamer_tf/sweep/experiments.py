"""Named experiments: a gin file each, and which one a run belongs to.

An experiment is a gin file applied on top of a sweep's base config:
`gin_configs/xp/<name>.gin` is the experiment `<name>`, and any other
`.gin` file may be named by its path (its name is then the file name
without `.gin`). Its description is the first paragraph of the comment
block that opens the file (the `#` lines up to the first empty `#` line or
the first binding), joined into one line.

`launch.sweep --experiments=a,b` runs every experiment on every task and
seed (`dreamer_tf/sweep/plan.py` lays the runs out as
<root>/<task>/<experiment>/seed<k>) and records the experiment of each run
in its <logdir>/sweep.json (`dreamer_tf/sweep/status.py`); `of_run` reads it
back for the results, tables and plots.
"""
import dataclasses
import glob
import os
import re

from dreamer_tf.envs.base import suggest
from dreamer_tf.sweep import plan as sweep_plan
from dreamer_tf.sweep import status as sweep_status
import gin_configs

# Where named experiments live.
DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(
    gin_configs.__file__)), 'xp')
# An experiment name is a directory level of the sweep and a method name.
_NAME = re.compile(r'[A-Za-z0-9_.+-]+')


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One named experiment: its gin file and the file's description."""
  name: str
  path: str
  description: str = ''


def known(directory=DIRECTORY):
  """{name: path} of the experiments in `directory` (its .gin files)."""
  paths = sorted(glob.glob(os.path.join(directory, '*.gin')))
  return {os.path.basename(p)[:-len('.gin')]: p for p in paths}


def describe(path):
  """The description of a gin file: the first paragraph of its leading
  comment block as one line ('' when the file opens with no comment)."""
  lines = []
  with open(path) as f:
    for line in f:
      line = line.strip()
      if not line.startswith('#'):
        break
      text = line.lstrip('#').strip()
      if not text:
        if lines:
          break
        continue
      lines.append(text)
  return ' '.join(lines)


def resolve(names, directory=DIRECTORY):
  """Experiments of `names` ('a,b' or a list): each a name of a .gin file
  in `directory` or the path of a .gin file.

  Raises ValueError before anything runs: no names, an unknown name (with
  the known ones and the closest match), a missing file, a name that cannot
  be a directory, or two experiments of the same name.
  """
  if isinstance(names, str):
    names = names.split(',')
  names = [n.strip() for n in names if n.strip()]
  if not names:
    raise ValueError('No experiments: pass --experiments=name[,...] (gin '
                     f'files of {directory}) or paths of .gin files.')
  available = known(directory)
  experiments = {}
  for name in names:
    if name.endswith('.gin') or os.sep in name or '/' in name:
      if not os.path.isfile(name):
        raise ValueError(f'Experiment file {name!r} does not exist.')
      path = name
      label = re.sub(r'\.gin$', '', os.path.basename(name))
    elif name in available:
      path, label = available[name], name
    else:
      listing = ', '.join(sorted(available)) or 'none yet'
      raise ValueError(
          f'Unknown experiment {name!r}{suggest(name, available)}. The '
          f'experiments are the .gin files of {directory}: {listing}; or '
          'pass the path of a .gin file.')
    if not _NAME.fullmatch(label):
      raise ValueError(
          f'Experiment name {label!r} (from {path}) is not usable as a '
          'directory name: use letters, digits and _ . + - only.')
    if label in experiments:
      raise ValueError(
          f'Two experiments are named {label!r} ({experiments[label].path} '
          f'and {path}); their runs would share directories.')
    experiments[label] = Experiment(label, path, describe(path))
  return list(experiments.values())


def of_run(logdir, task=None, directory=DIRECTORY):
  """(experiment, description, method) of the run in `logdir`, or
  ('', '', '') for a run no experiment sweep made.

  Read from <logdir>/sweep.json, which the sweep writes when it starts a
  run. A run started from a `launch.sweep --mode=print` line has none; its
  experiment is then read from the sweep's directory layout (the level
  after the directory of `task`, its env id, see plan.method_of_logdir)
  and its description from `directory`/<experiment>.gin when that exists.
  """
  record = sweep_status.read_record(logdir)
  if record.get('experiment'):
    return (record['experiment'], record.get('description', ''),
            record.get('method') or record['experiment'])
  if not task:
    return '', '', ''
  experiment, method = sweep_plan.method_of_logdir(logdir, task)
  if not experiment:
    return '', '', ''
  path = known(directory).get(experiment)
  return experiment, describe(path) if path else '', method

