"""Runs a sweep: every task x experiment x grid point x seed as one
`launch.train` run.

  # 2 tasks x 2 train ratios x 3 seeds = 12 runs, 2 at a time on this machine:
  python -m launch.sweep --root=runs/sweep1 \
      --gin_file=gin_configs/suites/dmc_proprio.gin \
      --tasks=dmc:walker_walk,dmc:cheetah_run --seeds=0-2 \
      --grid=train.train_ratio=256,512 --parallel=2
  # Beside other work (a run started from another shell): the sweep's runs
  # take only the CPU it leaves.
  python -m launch.sweep <same flags> --nice=19

  # The same sweep on a cluster: one shell-quoted `python -m launch.train ...`
  # line per run (all runs, so that line i is always run i) ...
  python -m launch.sweep <same flags> --mode=print > runs.txt
  # ... or a job array (sbatch --array=0-11) whose task i runs run i only:
  python -m launch.sweep <same flags> --array_index=$SLURM_ARRAY_TASK_ID
  # Each run on 4 machines (a job of 4 nodes per line): `srun --ntasks=4
  # python -m launch.train ... --strategy=multi_worker`
  python -m launch.sweep <same flags> --mode=print --workers=4 > runs.txt

  # done / running / partial / failed / pending, read from disk:
  python -m launch.sweep --root=runs/sweep1 --mode=status

  # Named experiments (gin_configs/xp/<name>.gin, or paths of .gin files)
  # over tasks x seeds: runs/xp1/deepsea_10/baseline/seed0, ...
  python -m launch.sweep --root=runs/xp1 --experiments=baseline,prioritized \
      --tasks=deepsea:10 --seeds=0-2

Run directories are <root>/<task>/<experiment>/<grid point>/seed<k>, e.g.
runs/sweep1/dmc_walker_walk/train_ratio=256/seed0 (no experiment level
without --experiments, no grid level without --grid). An experiment's gin
file comes after the base files (--gin_file, default gin_configs/default.gin)
and before the --gin_param bindings; with --grid too, every experiment runs
every grid point. Each run's sweep.json records its experiment, the
experiment's description (the first paragraph of the file's leading
comment) and its method name (the experiment, `/<grid point>` with a grid),
which `launch.results`, `launch.tables` and `launch.plot` read (runs
started from --mode=print lines have no sweep.json: those read the
experiment from the directory layout instead).

Rerunning a sweep skips finished runs (<logdir>/done.json), resumes started
ones from their checkpoint (the same command resumes) and starts the rest.
Every experiment name and the gin config of every run are checked before
anything starts (an unknown experiment fails listing the known ones).

Each run's output goes to <logdir>/sweep.log (appended on every attempt) and
its last attempt to <logdir>/sweep.json; <root>/index.json and index.md list
all runs with their status. Ctrl-C (or SIGTERM) stops the running runs
cleanly: they get SIGINT, write a final checkpoint and exit; a second Ctrl-C
or --stop_timeout kills them.

--snapshot_every=S copies each running run's newest checkpoint every S
seconds to <logdir>/snapshots (and once more after the run ends or is
stopped), as launch.snapshot does beside one run; --snapshot_priorities
adds the replay's step priorities (launch.probe_deepsea reads both). S
below the runs' train.save_every keeps every checkpoint.
"""
import sys

from absl import app
from absl import flags

from dreamer_tf.sweep import experiments as sweep_experiments
from dreamer_tf.sweep import local as sweep_local
from dreamer_tf.sweep import plan as sweep_plan
from dreamer_tf.sweep import status as sweep_status
from launch import common_flags  # noqa: F401  (--gin_file, --root, ...)
from launch import errors

flags.DEFINE_string('seeds', '0', 'Seeds: 0,1,2 or an inclusive range 0-4 '
                    '(or both: 0-2,7).')
flags.DEFINE_multi_string('grid', [],
                          'Binding=v1,v2,...: values to sweep; several --grid '
                          'flags sweep their cartesian product. Example: '
                          "--grid=train.train_ratio=256,512 --grid=\"Agent."
                          "precision='float32','bfloat16'\".")
flags.DEFINE_list('experiments', [],
                  'Named experiments: gin files of gin_configs/xp/ by name '
                  '(e.g. baseline,prioritized) or paths of .gin files.')
flags.DEFINE_integer('parallel', 1, 'Local runs at once.', lower_bound=1)
flags.DEFINE_enum('mode', 'local', ['local', 'print', 'status'],
                  'local: run; print: one launch.train command per run; '
                  'status: the table of runs from disk.')
flags.DEFINE_integer('array_index', None,
                     'Only run (or print) run i, 0-based, e.g. '
                     '$SLURM_ARRAY_TASK_ID.')
flags.DEFINE_integer(
    'workers', 1, 'Workers per run (--mode=print): each line runs its '
    'launch.train on that many SLURM tasks, `srun --ntasks=N ... '
    '--strategy=multi_worker` (README "Many GPUs and machines"). Local '
    'sweeps train each run in one process.', lower_bound=1)
flags.DEFINE_integer('nice', 0, 'Lower the local runs\' CPU priority by this '
                     '(0-19; 19: they take only what other work leaves, '
                     'e.g. beside a training run started elsewhere).',
                     lower_bound=0, upper_bound=19)
flags.DEFINE_float('stop_timeout', 120.0,
                   'Seconds an interrupted run may take to save and exit '
                   'before it is killed.')
flags.DEFINE_float('snapshot_every', 0.0, 'Seconds between copies of each '
                   'running run\'s newest checkpoint to <logdir>/snapshots '
                   '(as launch.snapshot beside one run; once more when it '
                   'ends); 0: none.', lower_bound=0.0)
flags.DEFINE_bool('snapshot_priorities', False, 'With --snapshot_every, the '
                  'copies also keep the replay\'s step priorities '
                  '(launch.snapshot --priorities).')
FLAGS = flags.FLAGS


def sweep(tasks, seeds, grid, gin_files, gin_params, root, mode='local',
          parallel=1, array_index=None, stop_timeout=120.0, out=None,
          experiments=(), experiments_dir=sweep_experiments.DIRECTORY,
          workers=1, nice=0, snapshot_every=0.0, snapshot_priorities=False):
  """Expands, validates and runs (or prints) a sweep; returns exit status.

  tasks, seeds, grid and experiments as the flags (strings, or parsed
  lists); experiment names are looked up in `experiments_dir`. Nothing is
  written or started before every experiment is found and every run's
  config is valid. snapshot_every (seconds, 0 off) and snapshot_priorities:
  checkpoint copies of the local runs (dreamer_tf/sweep/local.py).
  """
  out = out or sys.stdout
  if snapshot_priorities and not snapshot_every:
    raise ValueError('--snapshot_priorities needs --snapshot_every (seconds '
                     'between checkpoint copies, e.g. 300).')
  if snapshot_every and mode != 'local':
    raise ValueError(
        f'--snapshot_every is for --mode=local: the sweep copies the '
        f'checkpoints of the runs it starts. With --mode={mode} run '
        'launch.snapshot beside each run instead.')
  if mode not in ('local', 'print', 'status'):
    raise ValueError(f'Unknown mode {mode!r}: local, print or status.')
  if not root:
    raise ValueError('--root is required.')
  if workers > 1 and mode != 'print':
    raise ValueError(
        f'--workers={workers} is for --mode=print: a multi-worker run needs '
        'a cluster (srun on a SLURM allocation, or TF_CONFIG per worker). '
        'A local sweep trains each run in one process: drop --workers.')
  if mode == 'status' and not tasks:
    runs = sweep_status.load_index(root)
  else:
    if isinstance(seeds, str):
      seeds = sweep_plan.parse_seeds(seeds)
    if isinstance(grid, (list, tuple)) and all(isinstance(g, str)
                                               for g in grid):
      grid = sweep_plan.parse_grid(grid)
    if experiments:
      experiments = sweep_experiments.resolve(experiments, experiments_dir)
    runs = sweep_plan.expand(
        tasks, seeds, grid, gin_files, gin_params, root,
        python=sys.executable if mode == 'local' else 'python',
        experiments=experiments)
    if mode != 'status':
      sweep_plan.validate(runs)
  selected = runs
  if array_index is not None:
    if not 0 <= array_index < len(runs):
      raise ValueError(f'--array_index={array_index} is out of range: the '
                       f'sweep has {len(runs)} runs (0-{len(runs) - 1}).')
    selected = [runs[array_index]]
  if mode == 'print':
    for run in selected:
      if workers > 1:  # One launch.train per SLURM task, as one cluster.
        print(f'srun --ntasks={workers} {run.shell} '
              '--strategy=multi_worker', file=out)
      else:
        print(run.shell, file=out)
    print(f'# {len(runs)} runs: a job array of indices 0-{len(runs) - 1}',
          file=sys.stderr)
    return 0
  if mode == 'status':
    print(sweep_status.status_table(runs), file=out)
    return 0
  return sweep_local.run_local(
      selected, parallel, root=root, index_runs=runs, out=out,
      stop_timeout=stop_timeout, nice=nice,
      snapshot_every=snapshot_every or None,
      snapshot_priorities=snapshot_priorities)


@errors.exits_on_user_error('launch.sweep')
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # A sweep checks its flags, experiments and every run's config before it
  # starts anything: its ValueErrors are about those (launch/errors.py).
  with errors.user_input():
    return sweep(FLAGS.tasks, FLAGS.seeds, FLAGS.grid, FLAGS.gin_file or [],
                 FLAGS.gin_param, FLAGS.root, FLAGS.mode, FLAGS.parallel,
                 FLAGS.array_index, FLAGS.stop_timeout,
                 experiments=FLAGS.experiments, workers=FLAGS.workers,
                 nice=FLAGS.nice, snapshot_every=FLAGS.snapshot_every,
                 snapshot_priorities=FLAGS.snapshot_priorities)


if __name__ == '__main__':
  app.run(main)
