"""Speed and memory of the full train step (JSON to stdout).

  python -m launch.benchmark                       # the 8 standard cases
  python -m launch.benchmark --cases=vector1m --precisions=float32 --xla=on
  python -m launch.benchmark --cases=vector1m --cpu_replicas=1,2  # per replica count
  python -m launch.benchmark --loop=default,dmc_proprio_repeat2 --loop_updates=40
  # Side by side with the official code (issue 14; ../shared/bench/README.md
  # builds its environment in $VENV and unpacks its tree in $SRC):
  python -m launch.benchmark --official_python=$VENV/bin/python \
      --official_src=$SRC --cases=vector5d1m,vector5d12m,image1m,image12m

For every case x precision x XLA setting x replica count a fresh
subprocess builds the agent
at the paper's batch (16 x 64, replay context 1), runs one update to compile
it, then times `--updates` updates on a fixed random batch and reports
updates/s, seconds per update, compile seconds and the peak RSS of that
process. The official JAX code on this machine kind (batch 16x64, f32)
takes 0.62 s (24-d vector, 6 actions, size1m), 0.77 s (5-d vector, 1
action, size1m: DMC cartpole; measured on a day ~25% slower), 4.3 s
(vector, size12m), 5.0 s (image, size1m) and 20 s (image, size12m) per
update; `speedup_vs_official` is relative to those.

With XLA on, the case runs twice, in two processes sharing a fresh XLA
compile cache (dreamer_tf/run/compile_cache.py): `compile_seconds` is the
first (trace + compile), `cached_compile_seconds` the second (trace +
loading the compiled update), what a resumed or repeated run pays;
`--nocached_compile` skips the second. `trace_seconds` is the part of the
first that traces the update into a graph (`traced_ops` ops, function
bodies included; one device only): the part no cache saves.
`rss_phases` is the process's resident memory and peak (GiB) after each
phase (import, build, trace, first update, timed updates, malloc_trim);
`cached_peak_rss_gib` and `cached_rss_phases` are the second process's
(docs/benchmarks/rss-phases-2026-11-28.json: where vector5d1m's goes).

With `--official_src` and `--official_python`, each case is measured side
by side: first the official update (launch/official.py: seconds per update,
first and cached compile, peak RSS), then ours in every `--precisions` x
`--xla` setting; one row per case names the setting our `auto` picks, the
fastest one measured and whether they agree, the speed-up official/ours of
the `auto` setting and its compile and RSS ratios ours/official, and a
Markdown table goes to stderr.

`--cpu_replicas=1,2` measures each case once per replica count: N >= 2
splits the CPU into N logical devices and trains with the mirrored
strategy (dreamer_tf/run/distribute.py), 1 with the default strategy.
The replicas share the machine's cores, so on a CPU this checks that the
multi-replica update runs and what it costs, not a speed-up; each result
names its `strategy`, `replicas` and `devices`.

`--loop=SUITE,...` measures the training loop instead: for each suite
(`default` for gin_configs/default.gin, or a name in gin_configs/suites/,
or a .gin path; `--gin_file` and `--gin_param` apply after each) it runs `launch.train`
in a fresh logdir, lets the first update compile, then measures
`--loop_updates` more updates and stops the run with SIGINT. From the
run's log windows after the first update it reports updates/s, env
frames/s, the seconds per update inside the update and
`outside_update_share`, the share of wall time the loop spends outside the
agent's update (env steps, acting, replay, evaluation, checkpoints,
logging; `time/update_share` in metrics.jsonl).
"""
import itertools
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from dreamer_tf.analysis import metrics as metrics_lib
from dreamer_tf.analysis import results as results_lib
from dreamer_tf.run import memory
from launch import common_flags  # --batch_size, --compile_cache, ...
from launch import errors
from launch import official

CASES = {
    # name: (size preset, observation space, action space)
    'vector5d1m': ('size1m', '5', 'continuous:1'),  # DMC cartpole's spaces.
    'vector5d12m': ('size12m', '5', 'continuous:1'),
    'vector1m': ('size1m', '24', 'continuous:6'),
    'vector12m': ('size12m', '24', 'continuous:6'),
    # 6 actions as the official harness (../shared/bench); before
    # 2026-11-28 the image cases had 18 (each result names its spaces).
    'image1m': ('size1m', '64x64x3', 'discrete:6'),
    'image12m': ('size12m', '64x64x3', 'discrete:6'),
}
# Official seconds per update measured on earlier days (side by side, the
# same run's measurement replaces them); vector5d12m: the 2026-11-28 one.
OFFICIAL_SECONDS = {'vector5d1m': 0.772, 'vector5d12m': 4.16, 'vector1m': 0.62,
                    'vector12m': 4.3, 'image1m': 5.0, 'image12m': 20.0}

flags.DEFINE_list('cases', ['vector1m', 'image12m'], f'Of {sorted(CASES)}.')
flags.DEFINE_list('precisions', ['float32', 'bfloat16'], 'Compute dtypes.')
flags.DEFINE_list('xla', ['on', 'off'], 'jit_compile settings.')
flags.DEFINE_integer('updates', 5, 'Timed updates per case.')
flags.DEFINE_integer('batch_length', 64, 'Trained steps per sequence.')
flags.DEFINE_string('child', '', 'Internal: run one case as '
                    'case:precision:xla:replicas.')
flags.DEFINE_string('output', '', 'Also write the JSON list to this file.')
flags.DEFINE_list('loop', [], 'Measure the training loop of these suites '
                  'instead of the update (see the module docstring).')
flags.DEFINE_integer('loop_updates', 40, 'Updates measured per --loop suite '
                     '(after the first, which compiles).')
flags.DEFINE_string('official_src', '', 'Side by side: the unpacked '
                    'official danijar/dreamerv3 tree; times its update on '
                    'each case before ours (launch/official.py).')
flags.DEFINE_string('official_python', '', 'Side by side: the python of the '
                    'official code\'s environment (../shared/bench/README.md).')
flags.DEFINE_string('official_harness', os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))), 'shared', 'bench', 'official_update.py'),
                    'Side by side: the official timing harness.')
flags.DEFINE_bool('cached_compile', True, 'With XLA on, also measure the '
                  'compile of a second process that finds the first one\'s '
                  'update in the XLA compile cache.')
FLAGS = flags.FLAGS


def run_case(case, precision, xla, updates, batch_size, batch_length,
             replicas=1):
  """Builds the agent for one case and measures it in this process (on
  `replicas` logical CPU devices: call it before any TensorFlow op).
  `rss_phases` is the process's resident memory and its peak so far (GiB)
  after each phase: TensorFlow imported, the agent built, the update
  traced, the first update (XLA's compile), the timed updates, and after
  giving freed heap memory back (run/memory.py)."""
  phases = {'start': memory.usage()}
  import tensorflow  # pylint: disable=import-outside-toplevel,unused-import
  phases['import_tensorflow'] = memory.usage()
  from dreamer_tf.run import distribute  # pylint: disable=import-outside-toplevel
  distribution = distribute.resolve('auto', cpu_replicas=replicas)
  import numpy as np  # pylint: disable=import-outside-toplevel
  from dreamer_tf.model import agent as agent_lib  # pylint: disable=import-outside-toplevel
  from dreamer_tf.model.batches import random_batch  # pylint: disable=import-outside-toplevel
  from dreamer_tf import config  # pylint: disable=import-outside-toplevel
  from dreamer_tf import spaces  # pylint: disable=import-outside-toplevel
  size, obs, act = CASES[case]
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  config.parse([os.path.join(root, 'gin_configs', 'sizes', f'{size}.gin')], [
      f"Agent.precision = '{precision}'",
      f'Agent.jit_compile = {xla == "on"}',
      f'Agent.batch_size = {batch_size}',
      f'Agent.batch_length = {batch_length}'])
  agent = agent_lib.Agent(spaces.parse_obs_space(obs),
                          spaces.parse_act_space(act),
                          strategy=distribution.strategy)
  phases['agent_built'] = memory.usage()
  auto_precision, auto_xla = agent_lib.resolve_auto(
      agent.obs_space, 'auto', 'auto')
  data = random_batch(agent, np.random.default_rng(0))
  start = time.perf_counter()
  traced_ops = agent.trace_update(data)
  trace_seconds = time.perf_counter() - start
  phases['traced'] = memory.usage()
  metrics, _ = agent.train(data)
  float(metrics['opt/loss'])
  compile_seconds = time.perf_counter() - start
  phases['first_update'] = memory.usage()
  times = []
  for _ in range(updates):
    start = time.perf_counter()
    metrics, _ = agent.train(data)
    float(metrics['opt/loss'])  # Wait for the step to finish.
    times.append(time.perf_counter() - start)
  seconds = float(np.median(times))
  phases['updates'] = memory.usage()
  memory.release_free_memory()
  phases['trimmed'] = memory.usage()
  return dict(
      case=case, size=size, obs_space=obs, action_space=act,
      precision=precision, xla=xla == 'on',
      auto_precision=auto_precision, auto_xla=auto_xla,
      batch=[batch_size, batch_length], strategy=distribution.name,
      replicas=distribution.replicas, devices=list(distribution.devices),
      params=agent.parameter_counts()['total'],
      seconds_per_update=round(seconds, 4),
      updates_per_second=round(1 / seconds, 3),
      seconds_min=round(min(times), 4), seconds_max=round(max(times), 4),
      compile_seconds=round(compile_seconds - seconds, 2),
      # Of which tracing the update into a graph (the rest: XLA's compile
      # or the compile cache's load, and the first run's allocations).
      trace_seconds=round(trace_seconds, 2), traced_ops=traced_ops,
      peak_rss_gib=round(resource.getrusage(
          resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
      rss_phases=phases,
      official_seconds_per_update=OFFICIAL_SECONDS[case],
      speedup_vs_official=round(OFFICIAL_SECONDS[case] / seconds, 2),
      loss_finite=bool(np.isfinite(float(metrics['opt/loss']))))


def suite_gin(name):
  """The gin file of a --loop suite name (see the module docstring)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  if name.endswith('.gin'):
    path = name
  elif name == 'default':
    path = os.path.join(root, 'gin_configs', 'default.gin')
  else:
    path = os.path.join(root, 'gin_configs', 'suites', f'{name}.gin')
  if not os.path.isfile(path):
    suites = sorted(f[:-4] for f in os.listdir(
        os.path.join(root, 'gin_configs', 'suites')) if f.endswith('.gin'))
    raise app.UsageError(
        f'--loop={name}: no gin file {path}. Use default, a .gin path or '
        f'one of {suites}.')
  return path


def measure_loop(suite, updates, gin_params=(), gin_files=(),
                 log_every=5, timeout=3600):
  """Runs launch.train on `suite` (then `gin_files`, then `gin_params`)
  until `updates` updates after the first (which compiles) are logged,
  stops it with SIGINT and returns the loop's rates and its share of wall
  time outside the agent's update."""
  with tempfile.TemporaryDirectory() as tmp:
    logdir = os.path.join(tmp, 'run')
    cmd = [sys.executable, '-m', 'launch.train', f'--logdir={logdir}',
           f'--gin_file={suite_gin(suite)}',
           *[f'--gin_file={f}' for f in gin_files],
           f'--gin_param=train.log_every={log_every}',
           *[f'--gin_param={p}' for p in gin_params]]
    # The console output goes to a file: a pipe nobody reads would fill
    # and block the run.
    with open(os.path.join(tmp, 'console.txt'), 'w+') as console:
      proc = subprocess.Popen(cmd, stdout=console, stderr=subprocess.STDOUT,
                              start_new_session=True)
      deadline = time.time() + timeout
      try:
        while True:
          windows = _loop_windows(logdir)
          measured = sum(w['updates'] for w in windows)
          if measured >= updates:
            break
          if proc.poll() is not None:
            console.seek(0)
            last = console.read().replace('\r', '\n').strip()
            return dict(suite=suite, error=(
                f'the run ended (exit {proc.returncode}) after {measured} '
                f'measured updates: {last.splitlines()[-1:]}'))
          if time.time() > deadline:
            return dict(suite=suite, error=f'{measured} of {updates} '
                        f'updates measured within {timeout} s')
          time.sleep(1.0)
      finally:
        if proc.poll() is None:
          os.killpg(proc.pid, signal.SIGINT)
          try:
            proc.wait(timeout=600)
          except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    bindings = results_lib.read_config(logdir)
  seconds = sum(w['seconds'] for w in windows)
  update_seconds = sum(w['update_seconds'] for w in windows)
  count = sum(w['updates'] for w in windows)
  return dict(
      suite=suite, gin_params=list(gin_params),
      env=bindings.get('train.env'),
      num_envs=bindings.get('train.num_envs'),
      train_ratio=bindings.get('train.train_ratio'),
      updates_measured=count, seconds_measured=round(seconds, 2),
      updates_per_second=round(count / seconds, 3),
      frames_per_second=round(sum(w['frames'] for w in windows) / seconds, 2),
      seconds_per_update_inside=round(update_seconds / count, 4),
      outside_update_share=round(1 - update_seconds / seconds, 4))


def _loop_windows(logdir):
  """Log windows of a run's metrics.jsonl after the one holding the first
  update: {seconds, update_seconds, updates, frames} each. (A last line the
  run is still writing is left out.)"""
  records = [r for r in metrics_lib.read(logdir)
             if 'time/window_seconds' in r]
  windows = []
  for before, record in zip(records, records[1:]):
    if before['counters/updates'] < 1:
      continue  # The first update (tracing, compiling) is in `before`.
    seconds = record['time/window_seconds']
    windows.append(dict(
        seconds=seconds, update_seconds=record['time/update_share'] * seconds,
        updates=int(record['counters/updates'] - before['counters/updates']),
        frames=int(record['counters/frames'] - before['counters/frames'])))
  return windows


@errors.exits_on_user_error('launch.benchmark')
def main(argv):
  del argv
  if FLAGS.output:
    _check_output(FLAGS.output)
  if FLAGS.loop:
    results = []
    for suite in FLAGS.loop:
      result = measure_loop(suite, FLAGS.loop_updates, FLAGS.gin_param,
                            FLAGS.gin_file or ())
      results.append(result)
      print(json.dumps(result), file=sys.stderr, flush=True)
    _emit(results)
    return
  if FLAGS.child:
    common_flags.enable_compile_cache()  # --compile_cache (or none: '').
    case, precision, xla, replicas = FLAGS.child.split(':')
    print('RESULT ' + json.dumps(run_case(
        case, precision, xla, FLAGS.updates, FLAGS.batch_size or 16,
        FLAGS.batch_length, int(replicas))), flush=True)
    return
  unknown = set(FLAGS.cases) - set(CASES)
  if unknown:
    raise app.UsageError(f'Unknown cases {sorted(unknown)}; use {sorted(CASES)}.')
  if FLAGS.official_src or FLAGS.official_python:
    _side_by_side()
    return
  results = []
  for case in FLAGS.cases:
    results.extend(_measure_ours(case))
  _emit(results)


def _measure_ours(case):
  """Our results of `case`, one per precision x XLA x replica count."""
  replica_counts = [int(n) for n in FLAGS.cpu_replicas or ['1']]
  results = []
  for precision, xla, replicas in itertools.product(
      FLAGS.precisions, FLAGS.xla, replica_counts):
    cmd = [sys.executable, '-m', 'launch.benchmark',
           f'--child={case}:{precision}:{xla}:{replicas}',
           f'--updates={FLAGS.updates}',
           f'--batch_size={FLAGS.batch_size or 16}',
           f'--batch_length={FLAGS.batch_length}']
    with tempfile.TemporaryDirectory() as cache:
      cmd.append(f'--compile_cache={cache}' if xla == 'on' else
                 '--compile_cache=')
      result = _run_child(cmd, dict(case=case, precision=precision,
                                    xla=xla == 'on', replicas=replicas))
      if xla == 'on' and FLAGS.cached_compile and 'error' not in result:
        again = _run_child(cmd, {})
        result['cached_compile_seconds'] = again.get('compile_seconds')
        result['cached_peak_rss_gib'] = again.get('peak_rss_gib')
        result['cached_rss_phases'] = again.get('rss_phases')
    results.append(result)
    print(json.dumps(result), file=sys.stderr, flush=True)
  return results


def _side_by_side():
  """Per case, the official update (launch/official.py), then ours in
  every --precisions x --xla setting, one after the other: one row each
  (official, the setting `auto` picks, the fastest of ours, ratios), and
  a Markdown table on stderr."""
  try:
    official.check_paths(FLAGS.official_python, FLAGS.official_src,
                         FLAGS.official_harness)
  except official.OfficialError as e:
    raise app.UsageError(str(e)) from e
  missing = set(FLAGS.cases) - set(official.HARNESS_CASES)
  if missing:
    raise app.UsageError(
        f'--cases {sorted(missing)} have no official counterpart; side by '
        f'side use {sorted(official.HARNESS_CASES)}.')
  if (FLAGS.cpu_replicas or ['1']) != ['1']:
    raise app.UsageError('Side by side measures one device; leave '
                         '--cpu_replicas unset.')
  rows = []
  for case in FLAGS.cases:
    try:
      theirs = official.measure(case, FLAGS.official_python,
                                FLAGS.official_src, FLAGS.official_harness)
    except official.OfficialError as e:
      # The other cases still run; the row says what failed.
      rows.append(dict(case=case, error=f'official side: {e}'))
      print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
      continue
    print(json.dumps(dict(case=case, official=theirs)), file=sys.stderr,
          flush=True)
    ours = _measure_ours(case)
    for result in ours:  # The measured official time, not the constant.
      if 'seconds_per_update' in result:
        result['official_seconds_per_update'] = theirs['seconds_per_update']
        result['speedup_vs_official'] = round(
            theirs['seconds_per_update'] / result['seconds_per_update'], 2)
    row = official.side_by_side(case, theirs, ours)
    row['ours_all'] = ours
    rows.append(row)
  print(official.markdown(rows), file=sys.stderr, flush=True)
  _emit(rows)


def _check_output(path):
  """A user error now, not after the measurements, if --output cannot be
  written."""
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise errors.UserError(
        f'--output={path}: the directory {directory} does not exist; create '
        'it first (the file is written when the measurements end).')
  if not os.access(directory, os.W_OK) or os.path.isdir(path):
    raise errors.UserError(
        f'--output={path}: cannot write a file there (not writable, or a '
        'directory); name a writable file.')


def _emit(results):
  """Prints the JSON list (and writes it to --output)."""
  text = json.dumps(results, indent=2)
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      f.write(text + '\n')
  print(text)


def _run_child(cmd, describe):
  """The result dict of one child process, or `describe` + its error."""
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
  if proc.returncode or not lines:
    return dict(describe, error=proc.stderr.strip().splitlines()[-1:])
  return json.loads(lines[-1][len('RESULT '):])


if __name__ == '__main__':
  app.run(main)
