"""Fault injection: kill a training run with SIGKILL at seeded random points,
resume it each time, and compare it with a run that was never stopped.

  python -m tools.fault_injection --kills=20 --seed=0 \
      --out=docs/benchmarks/fault-injection-2026-11-27.json

The run is `launch.train` on the debug suite (a tiny agent on CartPole,
`RUN_STEPS` policy steps, a checkpoint every `SAVE_EVERY` steps and at exit,
evaluation every `EVAL_EVERY` steps). Kill points are drawn from a seeded
generator, each one of:

  write    SIGKILL as soon as a checkpoint or replay write is seen in
           progress (a `ckpt-*.tmp` directory or a replay `.tmp-*` file;
           the directories are polled every ~2 ms), i.e. between the
           replay save and the checkpoint it belongs to, or inside either;
  step     SIGKILL a random 0-300 ms after the run logged a random policy
           step (anywhere in collecting, training, logging, saving);
  start    SIGKILL a random 0-20 s after the process started (also during
           start-up, resume and the first compile).

After every kill the tool checks the invariant that matters for a resume:
the checkpoint a resume would restore and the replay save it names are
intact and agree (the save holds exactly the steps the checkpoint's
counters say were collected), and then reruns the same command. Once the
budget is spent, `compare` checks that parameters, optimizer state, slow
critic, counters, the replay's contents and next draws, `scores.jsonl` and
the logged metric steps equal those of the run that was never stopped.

`tests/tools/test_fault_injection.py` runs 5 kill points of this tool;
`tests/run/test_train.py` uses `compare` for its exact-resume tests.
"""
import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

from dreamer_tf import replay as replay_lib
from dreamer_tf.run import checkpoint as ckpt_lib

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUN_STEPS, SAVE_EVERY, EVAL_EVERY = 160, 16, 40
KINDS = ('write', 'step', 'start')
QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
SEQUENCE_LENGTH = 9  # The debug suite's batch_length 8 + 1 context step.
CONTEXT = 1  # Agent.replay_context: the replay's `context`.


def command(logdir, steps=RUN_STEPS, save_every=SAVE_EVERY, extra=()):
  """argv of the debug-suite training run in `logdir`."""
  return [sys.executable, '-m', 'launch.train', f'--logdir={logdir}',
          '--gin_file=gin_configs/default.gin',
          '--gin_file=gin_configs/suites/debug.gin',
          f'--gin_param=train.steps={steps}',
          '--gin_param=train.train_ratio=32',
          f'--gin_param=train.save_every_steps={save_every}',
          f'--gin_param=train.eval_every={EVAL_EVERY}',
          '--gin_param=train.eval_episodes=2',
          '--gin_param=train.report_every=0', *extra]


def run_to_end(argv, timeout=900):
  """Runs argv to its end; raises with its stderr tail if it fails."""
  proc = subprocess.run(argv, cwd=ROOT, env=QUIET, capture_output=True,
                        text=True, timeout=timeout, check=False)
  if proc.returncode:
    raise RuntimeError(f'{" ".join(argv)} exited {proc.returncode}:\n'
                       f'{proc.stderr[-3000:]}')
  return proc


def draw_kill_points(count, seed):
  """`count` kill points [{kind, ...}] from a seeded generator."""
  rng = np.random.default_rng(seed)
  points = []
  for _ in range(count):
    kind = KINDS[rng.integers(len(KINDS))]
    point = dict(kind=kind)
    if kind == 'step':
      point.update(step=int(rng.integers(1, RUN_STEPS)),
                   delay=float(rng.uniform(0, 0.3)))
    elif kind == 'start':
      point.update(delay=float(rng.uniform(0, 20)))
    points.append(point)
  return points


def _temp_files(logdir):
  """Names of the checkpoint and replay writes in progress (or left by a
  killed run until the next save cleans them up)."""
  names = set()
  for sub, marker in (('ckpt', '.tmp'), ('replay', '.tmp-')):
    try:
      names |= {f'{sub}/{n}' for n in os.listdir(logdir / sub) if marker in n}
    except FileNotFoundError:
      pass
  return names


def logged_steps(logdir):
  """Steps of the complete lines of <logdir>/metrics.jsonl."""
  try:
    with open(logdir / 'metrics.jsonl') as f:
      lines = f.read().split('\n')[:-1]  # The last may be torn.
  except FileNotFoundError:
    return []
  return [json.loads(line)['step'] for line in lines]


def kill_at(logdir, point, argv, timeout=900):
  """Starts argv and SIGKILLs it at `point`. Returns what happened:
  {killed: bool (False: the run ended first), seconds, writing: a write
  was in progress at the kill}."""
  stale = _temp_files(logdir)  # Left by the previous kill.
  writing = lambda: bool(_temp_files(logdir) - stale)
  start = time.time()
  proc = subprocess.Popen(argv, cwd=ROOT, env=QUIET,
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
  try:
    deadline = start + timeout
    while proc.poll() is None and time.time() < deadline:
      if point['kind'] == 'write' and writing():
        break
      if point['kind'] == 'start' and time.time() - start >= point['delay']:
        break
      if point['kind'] == 'step':
        steps = logged_steps(logdir)
        if steps and steps[-1] >= point['step']:
          time.sleep(point['delay'])
          break
      time.sleep(0.002 if point['kind'] == 'write' else 0.02)
    in_write = writing()
    killed = proc.poll() is None
    if killed:
      os.killpg(proc.pid, signal.SIGKILL)  # The trainer and its env workers.
    proc.wait()
    return dict(killed=killed, writing=killed and in_write,
                seconds=round(time.time() - start, 2))
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()


def check_resumable(logdir, replay_kwargs=None):
  """Problems (strings) with what a resume of `logdir` would restore: the
  newest checkpoint whose replay save is intact must exist once a
  checkpoint exists, and its save must hold exactly the steps the
  checkpoint's counters collected (no step before the checkpoint lost, none
  after it mixed in). replay_kwargs: the run's `Replay` settings."""
  ckpt_dir = logdir / 'ckpt'
  if not ckpt_dir.exists() or not ckpt_lib.Checkpointer(
      str(ckpt_dir)).names():
    return []
  problems = []
  for path, tensors, state in ckpt_lib.Checkpointer(
      str(ckpt_dir)).readable():
    parts = ckpt_lib.unpack(tensors, state, str(ckpt_dir))
    replay = replay_lib.Replay(str(logdir / 'replay'),
                               length=SEQUENCE_LENGTH, context=CONTEXT,
                               restore=False,
                               **(replay_kwargs or {}))
    try:
      replay.load(parts['replay']['generation'])
    except replay_lib.ReplayCorruptError as e:
      problems.append(f'{os.path.basename(path)}: {e}')
      continue
    stored = replay.stats()['steps']
    collected = parts['counters']['policy_steps']
    if stored != collected:
      problems.append(f'{os.path.basename(path)}: its replay save holds '
                      f'{stored} steps, its counters collected {collected}')
    return problems  # The checkpoint a resume takes is consistent.
  return problems + ['no checkpoint has an intact replay save']


def read_jsonl(path):
  """The records of a JSONL file, refusing NaN / Infinity tokens (not JSON;
  the logger writes non-finite values as strings)."""
  def refuse(token):
    raise ValueError(f'{token} in {path}: not JSON')
  with open(path) as f:
    return [json.loads(line, parse_constant=refuse) for line in f]


def compare(straight, resumed, replay_kwargs=None):
  """Differences (strings) between two finished runs' logdirs: agent state
  and live loop state (pickled env bytes may differ in layout only),
  counters, replay contents, step and item priorities (bit for bit) and
  next draws, scores.jsonl, logged steps."""
  diffs = []
  a_tensors, a_meta = ckpt_lib.Checkpointer(str(straight / 'ckpt')).load()
  b_tensors, b_meta = ckpt_lib.Checkpointer(str(resumed / 'ckpt')).load()
  a_counters = a_meta['parts']['counters']
  b_counters = b_meta['parts']['counters']
  for key in ('policy_steps', 'episodes', 'ratio', 'schedule'):
    if a_counters.get(key) != b_counters.get(key):
      diffs.append(f'counters {key}: {a_counters.get(key)} vs '
                   f'{b_counters.get(key)}')
  if a_meta['tensor_names'] != b_meta['tensor_names']:
    diffs.append('different checkpoint tensors')
  else:
    for name, x, y in zip(a_meta['tensor_names'], a_tensors, b_tensors):
      if name.split('/')[1] != 'env' and not np.array_equal(x, y):
        diffs.append(f'tensor {name} differs')
  replays = [replay_lib.Replay(str(d / 'replay'), length=SEQUENCE_LENGTH,
                               context=CONTEXT,
                               **(replay_kwargs or {}))
             for d in (straight, resumed)]
  if replays[0].stats()['inserts'] != replays[1].stats()['inserts']:
    diffs.append(f'replay inserts {replays[0].stats()["inserts"]} vs '
                 f'{replays[1].stats()["inserts"]}')
  diffs += _priority_differences(*(r.priorities() for r in replays))
  for _ in range(3):
    batch_a, batch_b = replays[0].sample(8), replays[1].sample(8)
    for key in sorted(set(batch_a) | set(batch_b)):
      if key not in batch_a or key not in batch_b or not np.array_equal(
          batch_a[key], batch_b[key]):
        diffs.append(f'replay draw {key} differs')
  if read_jsonl(straight / 'scores.jsonl') != read_jsonl(
      resumed / 'scores.jsonl'):
    diffs.append('scores.jsonl differs')
  if logged_steps(straight) != logged_steps(resumed):
    diffs.append('metrics.jsonl steps differ')
  return diffs


def _priority_differences(a, b):
  """Differences between two `Replay.priorities()`: the stored step
  priorities chunk by chunk and the selector's item priorities, bit for
  bit."""
  diffs = []
  if sorted(a['steps']) != sorted(b['steps']):
    diffs.append('replay chunks with priorities differ')
  else:
    diffs += [f'step priorities of chunk {c} differ' for c in a['steps']
              if not np.array_equal(a['steps'][c], b['steps'][c])]
  if (a['items'] is None) != (b['items'] is None) or (
      a['items'] is not None and not np.array_equal(a['items'], b['items'])):
    diffs.append('item priorities differ')
  return diffs


def inject(root, kill_points, straight=None, extra=(), replay_kwargs=None):
  """Runs the faulted run in <root>/faulted (and the straight one in
  <root>/straight unless given); returns the report dict. extra: more
  flags for both runs; replay_kwargs: the `Replay` settings they make."""
  root = pathlib.Path(root)
  if straight is None:
    straight = root / 'straight'
    run_to_end(command(straight, extra=extra))
  faulted = root / 'faulted'
  argv = command(faulted, extra=extra)
  kills = []
  for point in kill_points:
    if (faulted / 'done.json').exists():
      kills.append(dict(point, killed=False, note='run already finished'))
      continue
    outcome = kill_at(faulted, point, argv)
    outcome['problems'] = check_resumable(faulted, replay_kwargs)
    kills.append(dict(point, **outcome))
  start = time.time()
  run_to_end(argv)
  diffs = compare(straight, faulted, replay_kwargs)
  return dict(
      steps=RUN_STEPS, save_every_steps=SAVE_EVERY, kills=kills,
      killed=sum(k['killed'] for k in kills),
      during_writes=sum(k.get('writing', False) for k in kills),
      resume_problems=[p for k in kills for p in k.get('problems', [])],
      final_run_seconds=round(time.time() - start, 1), differences=diffs,
      equal=not diffs and not any(k.get('problems') for k in kills))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--kills', type=int, default=20)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--root', default='runs/fault_injection',
                      help='Where the two runs go (emptied first).')
  parser.add_argument('--out', help='Also write the JSON report here.')
  args = parser.parse_args()
  root = pathlib.Path(args.root)
  if root.exists() and any(root.iterdir()):
    sys.exit(f'tools.fault_injection: {root} is not empty; pass a new '
             '--root or delete it.')
  report = dict(seed=args.seed, **inject(
      root, draw_kill_points(args.kills, args.seed)))
  text = json.dumps(report, indent=1)
  print(text)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text + '\n')
  sys.exit(0 if report['equal'] else 1)


if __name__ == '__main__':
  main()
