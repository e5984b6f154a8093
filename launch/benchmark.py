"""Speed and memory of the full train step (JSON to stdout).

  python -m launch.benchmark                       # the 8 standard cases
  python -m launch.benchmark --cases=vector1m --precisions=float32 --xla=on
  python -m launch.benchmark --cases=vector1m --cpu_replicas=1,2  # per replica count

For every case x precision x XLA setting x replica count a fresh
subprocess builds the agent
at the paper's batch (16 x 64, replay context 1), runs one update to compile
it, then times `--updates` updates on a fixed random batch and reports
updates/s, seconds per update, compile seconds and the peak RSS of that
process. The official JAX code on this machine kind (batch 16x64, f32)
takes 0.62 s (vector, size1m), 4.3 s (vector, size12m), 5.0 s (image,
size1m) and 20 s (image, size12m) per update; `speedup_vs_official` is
relative to those.

With XLA on, the case runs twice, in two processes sharing a fresh XLA
compile cache (dreamer_tf/run/compile_cache.py): `compile_seconds` is the
first (trace + compile), `cached_compile_seconds` the second (trace +
loading the compiled update), what a resumed or repeated run pays;
`--nocached_compile` skips the second.

`--cpu_replicas=1,2` measures each case once per replica count: N >= 2
splits the CPU into N logical devices and trains with the mirrored
strategy (dreamer_tf/run/distribute.py), 1 with the default strategy.
The replicas share the machine's cores, so on a CPU this checks that the
multi-replica update runs and what it costs, not a speed-up; each result
names its `strategy`, `replicas` and `devices`.
"""
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from launch import common_flags  # --batch_size, --compile_cache, ...

CASES = {
    # name: (size preset, observation space, action space)
    'vector1m': ('size1m', '24', 'continuous:6'),
    'vector12m': ('size12m', '24', 'continuous:6'),
    'image1m': ('size1m', '64x64x3', 'discrete:18'),
    'image12m': ('size12m', '64x64x3', 'discrete:18'),
}
OFFICIAL_SECONDS = {'vector1m': 0.62, 'vector12m': 4.3, 'image1m': 5.0,
                    'image12m': 20.0}

flags.DEFINE_list('cases', ['vector1m', 'image12m'], f'Of {sorted(CASES)}.')
flags.DEFINE_list('precisions', ['float32', 'bfloat16'], 'Compute dtypes.')
flags.DEFINE_list('xla', ['on', 'off'], 'jit_compile settings.')
flags.DEFINE_integer('updates', 5, 'Timed updates per case.')
flags.DEFINE_integer('batch_length', 64, 'Trained steps per sequence.')
flags.DEFINE_string('child', '', 'Internal: run one case as '
                    'case:precision:xla:replicas.')
flags.DEFINE_string('output', '', 'Also write the JSON list to this file.')
flags.DEFINE_bool('cached_compile', True, 'With XLA on, also measure the '
                  'compile of a second process that finds the first one\'s '
                  'update in the XLA compile cache.')
FLAGS = flags.FLAGS


def run_case(case, precision, xla, updates, batch_size, batch_length,
             replicas=1):
  """Builds the agent for one case and measures it in this process (on
  `replicas` logical CPU devices: call it before any TensorFlow op)."""
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
  data = random_batch(agent, np.random.default_rng(0))
  start = time.perf_counter()
  metrics, _ = agent.train(data)
  float(metrics['opt/loss'])
  compile_seconds = time.perf_counter() - start
  times = []
  for _ in range(updates):
    start = time.perf_counter()
    metrics, _ = agent.train(data)
    float(metrics['opt/loss'])  # Wait for the step to finish.
    times.append(time.perf_counter() - start)
  seconds = float(np.median(times))
  return dict(
      case=case, size=size, obs_space=obs, action_space=act,
      precision=precision, xla=xla == 'on',
      batch=[batch_size, batch_length], strategy=distribution.name,
      replicas=distribution.replicas, devices=list(distribution.devices),
      params=agent.parameter_counts()['total'],
      seconds_per_update=round(seconds, 4),
      updates_per_second=round(1 / seconds, 3),
      seconds_min=round(min(times), 4), seconds_max=round(max(times), 4),
      compile_seconds=round(compile_seconds - seconds, 2),
      peak_rss_gib=round(resource.getrusage(
          resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
      official_seconds_per_update=OFFICIAL_SECONDS[case],
      speedup_vs_official=round(OFFICIAL_SECONDS[case] / seconds, 2),
      loss_finite=bool(np.isfinite(float(metrics['opt/loss']))))


def main(argv):
  del argv
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
  replica_counts = [int(n) for n in FLAGS.cpu_replicas or ['1']]
  results = []
  for case, precision, xla, replicas in itertools.product(
      FLAGS.cases, FLAGS.precisions, FLAGS.xla, replica_counts):
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
    results.append(result)
    print(json.dumps(result), file=sys.stderr, flush=True)
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
