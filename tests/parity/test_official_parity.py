"""One update of ours vs the official DreamerV3 (JAX) on identical inputs.

Needs the official code (danijar/dreamerv3 e3f0224; $DREAMERV3_OFFICIAL,
default /work/scratch/official) and a Python with JAX for it
($DREAMERV3_PYTHON, default /work/scratch/venv/bin/python); skipped
otherwise. tools/parity/official_dump.py runs one official update on a
small fixed reacher_easy-shaped batch (B=2, T=8, perturbed heads, one warm
update first) and records every intermediate; tools/parity/compare.py
loads its parameters into our agent, teacher-forces the official samples
and compares stage by stage. Each test below checks one stage, so a
failure names where the two implementations part. ~1-2 min in all.
"""
import os
import subprocess

import numpy as np
import pytest

from tests.conftest import ROOT

OFFICIAL = os.environ.get('DREAMERV3_OFFICIAL', '/work/scratch/official')
PYTHON = os.environ.get('DREAMERV3_PYTHON', '/work/scratch/venv/bin/python')

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def rows(tmp_path_factory):
  if not os.path.exists(os.path.join(OFFICIAL, 'dreamerv3', 'agent.py')):
    pytest.skip(f'official DreamerV3 code not found at {OFFICIAL} '
                '(set DREAMERV3_OFFICIAL)')
  if not os.path.exists(PYTHON):
    pytest.skip(f'no Python with JAX for the official code at {PYTHON} '
                '(set DREAMERV3_PYTHON)')
  out = str(tmp_path_factory.mktemp('parity') / 'official.npz')
  cmd = [PYTHON, os.path.join(ROOT, 'tools/parity/official_dump.py'),
         '--official', OFFICIAL, '--out', out, '--batch_size', '2',
         '--batch_length', '8', '--warm_steps', '1']
  done = subprocess.run(cmd, capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=OFFICIAL))
  assert done.returncode == 0, done.stderr[-3000:]
  from tools.parity import compare  # pylint: disable=import-outside-toplevel
  result, _ = compare.run(out)
  import gin
  gin.clear_config()
  return result


def _bad(rows, *stages):
  selected = [r for r in rows if r['stage'] in stages]
  assert selected, f'no rows for {stages}'
  return [(r['stage'], r['quantity'], r['max_abs'], r['max_rel'])
          for r in selected if not r['ok']]


def test_harness_recomposition_equals_update_py(rows):
  assert not _bad(rows, 'self-check (recomposition vs update.py)')


def test_world_model_posteriors_priors_and_losses(rows):
  assert not _bad(rows, 'world model', 'world-model losses')


def test_imagination_returns_and_advantages(rows):
  assert not _bad(rows, 'imagination')
  adv = [r for r in rows if r['quantity'] == 'imag/adv'][0]
  assert adv['mean_official'] != 0.0  # the perturbed heads give real returns


def test_actor_critic_and_replay_value_losses(rows):
  assert not _bad(rows, 'actor and critic', 'replay value',
                  'loss terms (means) and total')


def test_gradients_per_tensor_and_per_module(rows):
  assert not _bad(rows, 'gradients (per tensor)',
                  'gradient norms (per module)')


def test_optimizer_step_slow_critic_and_return_normaliser(rows):
  assert not _bad(rows, 'optimizer step on official grads',
                  'optimizer step on our grads', 'return normaliser')
