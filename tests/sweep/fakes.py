"""Sweep test fixtures: runs whose command is a tiny `python -c` script
(FAKE) that writes done.json, fails or waits for SIGINT, so no training
runs."""
import dataclasses
import os
import sys

from dreamer_tf.sweep import plan as sweep_plan

# argv[1]: logdir; argv[2]: ok (write done.json) | fail | exit0 (no done) |
# wait (until SIGINT, then exit cleanly) | slow (2 s, then ok; writes
# 'copied' to calls.txt if <logdir>/snapshots exists by then). Every call
# is counted in calls.txt. A checkpoint left in <logdir>/next (a
# ckpt-<n> directory, `hold_newest_checkpoint`) is put in place when the
# run ends (ok, slow, and wait's SIGINT), as a run saves its last.
FAKE = r"""
import json, os, signal, sys, time
logdir, action = sys.argv[1], sys.argv[2]

def publish():
  held = os.path.join(logdir, 'next')
  if os.path.isdir(held):
    name, = os.listdir(held)
    os.replace(os.path.join(held, name), os.path.join(logdir, 'ckpt', name))
    with open(os.path.join(logdir, 'ckpt', 'latest'), 'w') as f:
      f.write(name)

with open(os.path.join(logdir, 'calls.txt'), 'a') as f:
  f.write(action + '\n')
print('fake run', logdir, action)
if action == 'fail':
  print('Traceback: something broke', file=sys.stderr)
  sys.exit(3)
if action == 'wait':
  signal.signal(signal.SIGINT, lambda *a: (
      publish(), open(os.path.join(logdir, 'stopped'), 'w').close(),
      sys.exit(0)))
  open(os.path.join(logdir, 'ready'), 'w').close()
  time.sleep(60)
  sys.exit(5)
if action == 'slow':
  time.sleep(2)
  if os.path.isdir(os.path.join(logdir, 'snapshots')):
    with open(os.path.join(logdir, 'calls.txt'), 'a') as f:
      f.write('copied\n')
if action in ('ok', 'slow'):
  publish()
  with open(os.path.join(logdir, 'done.json'), 'w') as f:
    json.dump({'policy_steps': 1}, f)
"""


def fake(runs, action='ok', **overrides):
  """Runs whose command is FAKE with `action` (per run name in overrides)."""
  return [dataclasses.replace(run, argv=(
      sys.executable, '-c', FAKE, run.logdir,
      overrides.get(run.name, action))) for run in runs]


def calls(run):
  path = os.path.join(run.logdir, 'calls.txt')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return f.read().split()


def make_runs(root, seeds=(0, 1), grid=None, gin_params=()):
  return sweep_plan.expand(['dmc:walker_walk', 'gym:CartPole-v1'], list(seeds),
                      grid or {}, ['gin_configs/suites/dmc_proprio.gin'],
                      list(gin_params), str(root))


def hold_newest_checkpoint(logdir):
  """Moves the newest checkpoint of `logdir` to <logdir>/next (and points
  ckpt/latest at the one before), for the FAKE run to put back when it
  ends. Returns its name."""
  ckpt = os.path.join(logdir, 'ckpt')
  names = sorted(n for n in os.listdir(ckpt) if n.startswith('ckpt-'))
  os.makedirs(os.path.join(logdir, 'next'))
  os.replace(os.path.join(ckpt, names[-1]),
             os.path.join(logdir, 'next', names[-1]))
  with open(os.path.join(ckpt, 'latest'), 'w') as f:
    f.write(names[-2])
  return names[-1]
