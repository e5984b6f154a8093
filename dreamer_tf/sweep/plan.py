"""A sweep's plan: tasks x experiments x grid points x seeds as
`launch.train` runs.

Pure expansion of the sweep flags into `Run`s (one logdir and one full
`python -m launch.train` command each), the directory layout
<root>/<task>[/<experiment>][/<grid point>]/seed<k> and its reading back
(`method_of_logdir`), and the up-front gin validation of every distinct
config. Experiments are gin files (`dreamer_tf/sweep/experiments.py`);
`dreamer_tf.sweep.local` runs the plan; `launch/sweep.py` is the command
line.
"""
import collections
import dataclasses
import itertools
import os
import re
import shlex

import gin

from dreamer_tf import envs as envs_lib
import gin_configs

# What launch.train parses without --gin_file (launch/train.py DEFAULT_GIN).
DEFAULT_GIN = [os.path.join(os.path.dirname(gin_configs.__file__),
                            'default.gin')]


@dataclasses.dataclass(frozen=True)
class Run:
  """One run of the sweep; `argv` is the full command that trains it."""
  # logdir relative to the sweep root:
  # <task>[/<experiment>][/<grid point>]/seed<k>
  name: str
  logdir: str
  task: str
  seed: int
  bindings: tuple  # The grid point: ((binding, value), ...).
  gin_files: tuple  # Base files, then the experiment's file.
  gin_params: tuple  # All bindings of the run: --gin_param, task, grid point.
  argv: tuple
  experiment: str = ''  # Name of the run's experiment, if any.
  description: str = ''  # The experiment's description.

  @property
  def shell(self):
    """`argv` as one shell command line."""
    return ' '.join(quote(arg) for arg in self.argv)

  @property
  def method(self):
    """How plots and tables name the run: its experiment, with the grid
    point after a '/' when the sweep also has a grid ('' without an
    experiment: those runs keep the plots' --label)."""
    if not self.experiment:
      return ''
    return '/'.join(self.name.split('/')[1:-1])


# --- Expansion (pure) --------------------------------------------------------


def parse_tasks(tasks):
  """'a,b' or ['a', 'b'] -> ['a', 'b'], each a valid 'suite:task' id."""
  if isinstance(tasks, str):
    tasks = tasks.split(',')
  tasks = [t.strip() for t in tasks if t.strip()]
  if not tasks:
    raise ValueError('No tasks: pass --tasks=suite:task[,...], e.g. '
                     '--tasks=dmc:walker_walk,dmc:cheetah_run.')
  for task in tasks:
    envs_lib.parse(task)  # Clear error on a malformed id or unknown suite.
  return tasks


def parse_seeds(text):
  """'0,1,2' -> [0, 1, 2]; '0-4' -> [0, 1, 2, 3, 4] (inclusive); mixed."""
  seeds = []
  for part in str(text).split(','):
    part = part.strip()
    match = re.fullmatch(r'(\d+)(?:-(\d+))?', part)
    if not match:
      raise ValueError(f'Bad seeds {text!r}: expected e.g. 0,1,2 or 0-4.')
    first, last = int(match[1]), int(match[2] or match[1])
    if last < first:
      raise ValueError(
          f'Bad seed range {part!r} in {text!r}: {last} < {first}.')
    seeds.extend(range(first, last + 1))
  if len(set(seeds)) != len(seeds):
    raise ValueError(f'Seeds {text!r} repeat a seed.')
  return seeds


def parse_grid(specs):
  """['Binding=v1,v2', ...] -> [('Binding', ['v1', 'v2']), ...].

  Values are gin literals split at top-level commas, so tuples, lists,
  dicts and quoted strings may contain commas: `Foo.bar=(1,2),(3,4)`.
  """
  grid = []
  for spec in specs:
    name, sep, values = spec.partition('=')
    name = name.strip()
    if not sep or not name:
      raise ValueError(f'Bad --grid {spec!r}: expected Binding=v1,v2,... '
                       'e.g. --grid=train.train_ratio=256,512.')
    values = _split_top_level(values)
    if not values or any(not v for v in values):
      raise ValueError(f'Bad --grid {spec!r}: empty value.')
    if len(set(values)) != len(values):
      raise ValueError(f'Bad --grid {spec!r}: a value repeats.')
    if name in dict(grid):
      raise ValueError(f'--grid binds {name} twice; give all its values in '
                       'one flag.')
    grid.append((name, values))
  return grid


def expand(tasks, seeds, grid, gin_files, gin_params, root, python='python',
           experiments=()):
  """The runs of a sweep, tasks x experiments x grid points x seeds, in
  that nesting.

  tasks: 'suite:task' ids; seeds: ints; grid: mapping or (binding, values)
  pairs; gin_files/gin_params: passed to every run. experiments:
  `experiments.Experiment`s (name, gin file); each run of one gets its file
  after the base files, which are `gin_files` or, when none are given,
  the default config launch.train would use (DEFAULT_GIN), so that an
  experiment modifies the same config a plain run has. `python` is the
  command's interpreter. Raises ValueError on unknown suites, bindings the
  sweep sets itself (train.env, train.seed) or also sweeps, and runs whose
  directory names clash.
  """
  tasks = parse_tasks(tasks)
  seeds = [int(s) for s in seeds]
  if not seeds:
    raise ValueError('No seeds.')
  grid = [(name, [str(v) for v in values]) for name, values in
          (grid.items() if isinstance(grid, dict) else grid)]
  gin_files, gin_params = tuple(gin_files), tuple(gin_params)
  fixed = {_binding_name(p) for p in gin_params}
  swept = [name for name, _ in grid]
  for name, use in (('train.env', '--tasks'), ('train.seed', '--seeds')):
    if name in fixed or name in swept:
      flag = '--gin_param' if name in fixed else '--grid'
      raise ValueError(f'{flag} binds {name}; the sweep sets it from {use}.')
  for name in swept:
    if name in fixed:
      raise ValueError(f'{name} is both swept (--grid) and fixed '
                       '(--gin_param); the grid would override it.')
  labels = _short_labels([name for name, _ in grid])
  points = list(itertools.product(*[
      [(name, value) for value in values] for name, values in grid]))
  runs, names = [], {}
  for task, experiment, point, seed in itertools.product(
      tasks, list(experiments) or [None], points, seeds):
    parts = [task_directory(task)]
    files = gin_files
    if experiment:
      parts.append(experiment.name)
      files = (gin_files or tuple(DEFAULT_GIN)) + (experiment.path,)
    if point:
      parts.append(','.join(f'{labels[n]}={_slug(v)}' for n, v in point))
    parts.append(f'seed{seed}')
    name = '/'.join(parts)
    key = (task, experiment.name, point, seed) if experiment else (
        task, point, seed)
    if name in names:
      raise ValueError(
          f'Runs {names[name]} and {key} would share the '
          f'directory {name!r}; make the grid values distinguishable.')
    names[name] = key
    logdir = os.path.join(root, *parts)
    params = gin_params + (f'train.env={_gin_string(task)}',) + tuple(
        f'{n}={v}' for n, v in point)
    argv = [python, '-m', 'launch.train', f'--logdir={logdir}',
            f'--seed={seed}']
    argv += [f'--gin_file={f}' for f in files]
    argv += [f'--gin_param={p}' for p in params]
    runs.append(Run(name, logdir, task, seed, tuple(point), files, params,
                    tuple(argv), experiment.name if experiment else '',
                    experiment.description if experiment else ''))
  return runs


def task_directory(task):
  """The directory level of a task: 'dmc:walker_walk' -> 'dmc_walker_walk'."""
  return _slug(task.replace(':', '_').replace('/', '_'))


def method_of_logdir(logdir, task):
  """(experiment, method) of a run directory laid out as `expand` names
  runs, <...>/<task>/<experiment>[/<grid point>]/seed<k>, given the run's
  task (env id); ('', '') when the path has no experiment level.

  The experiment is the level after the task's directory; grid points
  always hold '=' and experiment names never do, so a grid-only sweep
  (<task>/<grid point>/seed<k>) has none. The method is the levels between
  the task's directory and the seed's, as `Run.method`.
  """
  parts = os.path.normpath(os.path.abspath(logdir)).split(os.sep)
  home = task_directory(task)
  if home not in parts[:-1]:
    return '', ''
  start = len(parts) - 1 - parts[::-1].index(home)
  between = parts[start + 1:-1]
  if not re.fullmatch(r'seed\d+', parts[-1]) or not between or (
      '=' in between[0]):
    return '', ''
  return between[0], '/'.join(between)


def quote(arg):
  """Shell-quotes one argument, readably: bare, "double" or 'single'."""
  if re.fullmatch(r'[\w@%+=:,./-]+', arg):
    return arg
  if not re.search(r'["$`\\!]', arg):
    return f'"{arg}"'
  return shlex.quote(arg)


def _split_top_level(text):
  """Splits at commas outside brackets and quotes."""
  parts, depth, quote_char, current = [], 0, None, []
  for char in text:
    if quote_char:
      quote_char = None if char == quote_char else quote_char
    elif char in '\'"':
      quote_char = char
    elif char in '([{':
      depth += 1
    elif char in ')]}':
      depth -= 1
    elif char == ',' and depth == 0:
      parts.append(''.join(current).strip())
      current = []
      continue
    current.append(char)
  parts.append(''.join(current).strip())
  return parts


def _binding_name(binding):
  return binding.partition('=')[0].strip()


def _gin_string(text):
  return "'" + text.replace('\\', '\\\\').replace("'", "\\'") + "'"


def _short_labels(names):
  """Binding -> its parameter name ('train.train_ratio' -> 'train_ratio'),
  or the whole binding where two swept bindings share a parameter name."""
  short = {n: n.rsplit('.', 1)[-1].rsplit('/', 1)[-1] for n in names}
  counts = collections.Counter(short.values())
  return {n: s if counts[s] == 1 else n.replace('/', '_')
          for n, s in short.items()}


def _slug(value):
  """A value as a file name part: quotes dropped, odd characters -> '_'."""
  value = value.strip().strip('\'"')
  value = re.sub(r'[^\w.+=-]+', '_', value).strip('_')
  return value or '_'

# --- Validation --------------------------------------------------------------


def validate(runs):
  """Parses every distinct gin config of `runs` once; ValueError on typos.

  Leaves gin cleared. Errors are those of `dreamer_tf.config.parse` (which
  name the closest valid binding), with the run that showed them.
  """
  # pylint: disable=import-outside-toplevel  (they load TensorFlow)
  from dreamer_tf import config
  seen = set()
  for run in runs:
    key = (run.gin_files, run.gin_params)
    if key in seen:
      continue
    seen.add(key)
    gin.clear_config()
    try:
      config.parse(list(run.gin_files) or DEFAULT_GIN, run.gin_params)
      # The seed checks launch.train makes (e.g. a gin file binding
      # train.seed, an Agent.seed binding) fail here, before any run starts.
      config.resolve_seed(run.seed, True)
    except ValueError as e:
      raise ValueError(f'{e}\n(in the config of run {run.name})') from e
    finally:
      gin.clear_config()
