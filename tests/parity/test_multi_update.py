"""The multi-update comparison's machinery (tools/parity/README.md), briefly.

Needs the official code ($DREAMERV3_OFFICIAL, default
/work/scratch/official), its Python ($DREAMERV3_PYTHON, default
/work/scratch/venv/bin/python) and the A/B run's official checkpoint and
replay (runs/ab/, not in the repository); skipped otherwise (CI). Two
official updates from snapshot f025280 (official_train.py, without the
ahead-of-time compile), two of ours from the dumped state without XLA
(ours_train.py): the batches follow the official replay's layout, ours
takes the whole official state, and the first updates' metrics agree up to
sampling noise. ~1-2 min.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

OFFICIAL = os.environ.get('DREAMERV3_OFFICIAL', '/work/scratch/official')
PYTHON = os.environ.get('DREAMERV3_PYTHON', '/work/scratch/venv/bin/python')
RUN = os.path.join(ROOT, 'runs/ab/official-reacher_easy-0')
SNAPSHOT = os.path.join(ROOT, 'runs/ab/snapshots/official-reacher_easy-0/'
                        'f025280')

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def out(tmp_path_factory):
  for path, what in ((os.path.join(OFFICIAL, 'dreamerv3', 'agent.py'),
                      'official DreamerV3 code'),
                     (PYTHON, 'a Python with JAX for the official code'),
                     (os.path.join(SNAPSHOT, 'agent.pkl'),
                      'the official A/B checkpoint'),
                     (os.path.join(RUN, 'replay'), 'the official replay')):
    if not os.path.exists(path):
      pytest.skip(f'{what} not found at {path}')
  out = str(tmp_path_factory.mktemp('multi'))
  cmd = [PYTHON, '-m', 'tools.parity.official_train',
         '--official', OFFICIAL, '--run', RUN, '--snapshot', SNAPSHOT,
         '--out', out, '--num_updates', '2', '--precompile', '0',
         '--final_state', '0']
  done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                        env=dict(os.environ, PYTHONPATH=OFFICIAL))
  assert done.returncode == 0, done.stderr[-3000:]
  cmd = [sys.executable, '-m', 'tools.parity.ours_train', '--out', out,
         '--num_updates', '2', '--gin_param', 'Agent.jit_compile = False']
  done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert done.returncode == 0, done.stderr[-3000:]
  return out


def _rows(path):
  return [json.loads(line) for line in open(path)]


def test_batches_follow_the_official_replay_layout(out):
  from tools.parity import replay_batches
  reader = replay_batches.Reader(os.path.join(out, 'index.npz'))
  # The items and the replay the official run logged at the snapshot.
  logged = [json.loads(line) for line in open(os.path.join(
      RUN, 'metrics.jsonl'))]
  logged = [r for r in logged if r['step'] == 25280 and 'replay/items' in r]
  assert int(np.load(os.path.join(out, 'index.npz'))['items']) == int(
      logged[0]['replay/items'])
  data = reader.batch(0)  # Also checks the SHA-1 the index was made with.
  assert data['is_first'].shape == (16, 65)
  assert data['is_first'][:, 0].all() and not data['consec'].any()
  following = np.roll(data['is_first'], -1, 1)
  following[:, -1] = False
  assert not (following & ~data['is_last']).any()
  # stepid = chunk uuid (16 bytes) + big-endian index: every step follows
  # its predecessor in the same chunk or starts the successor chunk.
  stepid = data['stepid']
  index = stepid[..., 16:].astype(np.int64) @ (256 ** np.arange(3, -1, -1))
  same = (stepid[:, 1:, :16] == stepid[:, :-1, :16]).all(-1)
  assert np.where(same, index[:, 1:] == index[:, :-1] + 1,
                  index[:, 1:] == 0).all()


def test_ours_trains_from_the_whole_official_state(out):
  ours = _rows(os.path.join(out, 'ours.jsonl'))
  assert [r['update'] for r in ours] == [0, 1]
  assert [r['opt/updates'] for r in ours] == [5298.0, 5299.0]


def test_first_updates_agree_up_to_sampling_noise(out):
  official = _rows(os.path.join(out, 'official.jsonl'))
  ours = _rows(os.path.join(out, 'ours.jsonl'))
  assert [r['update'] for r in official] == [0, 1]
  bad = []
  for theirs, mine in zip(official, ours):
    for key in ('S', 'lo', 'hi', 'val', 'slowval', 'tar', 'ret', 'rew',
                'con', 'weight', 'ent/action', 'adv', 'loss/rew',
                'loss/con', 'loss/dyn', 'loss/value', 'loss/policy',
                'opt/loss', 'lr'):
      if abs(mine[key] - theirs[key]) > 0.05 * abs(theirs[key]) + 1e-6:
        bad.append((theirs['update'], key, theirs[key], mine[key]))
  assert not bad
