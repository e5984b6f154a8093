"""launch/probe_deepsea.py: the run's env settings, the globs, and a run
of the launcher on a DeepSea run directory (JSON lines, --cells,
--probe_out, a snapshot's replay priorities)."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from dreamer_tf import replay as replay_lib
from dreamer_tf.envs import deepsea
from dreamer_tf.run import snapshots
from launch import probe_deepsea
from tests.analysis.fakes import play_deepsea as play
from tests.analysis.fakes import tally_moves as tally
from tests.conftest import ROOT
from tests.conftest import TINY
from tests.run.test_evaluate import POLICY_STEPS
from tests.run.test_evaluate import write_run

N = 5


def test_launcher_reads_the_env_settings():
  assert probe_deepsea.env_settings({}) == dict(
      mapping_seed=deepsea.MAPPING_SEED, randomize_actions=True)
  assert probe_deepsea.env_settings(
      {'mapping_seed': 7, 'randomize_actions': False}) == dict(
          mapping_seed=7, randomize_actions=False)
  with pytest.raises(ValueError, match='windy'):
    probe_deepsea.env_settings({'deterministic': False})


def test_launcher_inputs(tmp_path):
  assert probe_deepsea.deepsea_size('deepsea:14') == 14
  with pytest.raises(ValueError, match="'deepsea:<N>'"):
    probe_deepsea.deepsea_size('gym:CartPole-v1')
  with pytest.raises(ValueError, match='matches no run directory'):
    probe_deepsea.run_dirs([str(tmp_path / '*')])
  with pytest.raises(ValueError, match='--logdirs is required'):
    probe_deepsea.run_dirs([])
  # c is no run; s00045000.tmp is a snapshot copy still being written
  # (launch.snapshot writes config.gin before the checkpoint).
  for name in ('b', 'a', 'c', 's00045000.tmp'):
    (tmp_path / name).mkdir()
    if name != 'c':
      (tmp_path / name / 'config.gin').write_text('')
  assert probe_deepsea.run_dirs([str(tmp_path / '*')]) == [
      str(tmp_path / 'a'), str(tmp_path / 'b')]
  with pytest.raises(ValueError, match=r'matches only snapshot copies still '
                     r'being written \(.*s00045000.tmp\): wait'):
    probe_deepsea.run_dirs([str(tmp_path / 's*')])
  # Each glob must match: the one that does not is named.
  missing = str(tmp_path / 'z*')
  with pytest.raises(ValueError, match=re.escape(f'--logdirs={missing} matches no')):
    probe_deepsea.run_dirs([str(tmp_path / '*'), missing])


def test_launcher_prints_a_line_per_run(tmp_path):
  """Also with the novelty experiment on (--novelty_steps), and the replay
  counts of a run with an ensemble and a replay (s2)."""
  env, kwargs = f'deepsea:{N}', {'mapping_seed': 7}
  explore = ["Exploration.signal = 'latent'", 'Exploration.units = 16',
             "Exploration.target = 'embed'"]
  for name in ('s2', 's1'):
    write_run(str(tmp_path / name),
              TINY + [f"train.env = '{env}'"] + (explore if name == 's2'
                                                  else []),
              env=env, env_kwargs=kwargs, repeat=1,
              counters={'ratio': {'updates': 3}})
  replay = replay_lib.Replay(str(tmp_path / 's2' / 'replay'), chunk_size=16,
                             length=4)
  _, made, _ = play(replay, episodes=20, workers=1, size=N,  # 120 steps.
                 **kwargs)
  batch = replay.sample(8)  # Priorities 1 for 32 steps (a snapshot's).
  replay.update(dict(stepid=batch['stepid'],
                     priority=np.ones(batch['stepid'].shape[:2])))
  snapshots.save_priorities(str(tmp_path / 's2' / 'replay'), replay.save(),
                            str(tmp_path / 's2' / snapshots.PRIORITIES))
  out = tmp_path / 'probe.jsonl'
  base = [sys.executable, '-m', 'launch.probe_deepsea',
          f'--logdirs={tmp_path}/s*', '--samples=2', '--novelty_steps=2',
          '--novelty_episodes=16']
  proc = subprocess.run(
      base + ['--cells', f'--probe_out={out}', '--novelty_hold_out_from=2'],
      cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
  assert proc.returncode == 0, proc.stderr
  lines = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
  assert [l['logdir'] for l in lines] == [
      str(tmp_path / 's1'), str(tmp_path / 's2')]
  assert [json.loads(l) for l in out.read_text().splitlines()] == lines
  assert 'disagreement_replay_novelty' not in lines[0]
  assert -1.0 <= lines[1]['disagreement_replay_novelty'] <= 1.0
  # s2's saved priorities, per diagonal row (all 1: a ratio of 1 where a
  # step at (r, r) has one).
  assert 'priority_diagonal' not in lines[0]
  assert 0 < lines[1]['priority_unset'] < 1
  assert len(lines[1]['priority_diagonal']) == N
  assert {r for r in lines[1]['priority_diagonal'] if r is not None} == {1.0}
  # The replay's steps up to the checkpoint's, with the run's mapping.
  assert {(c['row'], c['col'], right): c[f'{name}_count']
          for c in lines[1]['per_cell'] if c['row'] < N - 1
          for name, right in (('right', True), ('left', False))
          if c[f'{name}_count']} == tally(made, POLICY_STEPS)
  for line in lines:
    assert (line['policy_steps'], line['updates']) == (POLICY_STEPS, 3)
    assert (line['size'], line['samples'], line['probe_seed']) == (N, 2, 0)
    assert line['cells'] == len(line['per_cell']) == N * (N + 1) // 2
    assert {(c['row'], c['col']) for c in line['per_cell']} == {
        (r, c) for r in range(N) for c in range(r + 1)}
    for key in ('reconstruct', 'imagine', 'actor_right_diagonal'):
      assert 0.0 <= line[key] <= 1.0, key
    assert line['novelty_settings'] == dict(steps=2, episodes=16, samples=2,
                                            hold_out_from=2)
    assert set(line['novelty']) == {'stoch', 'embed'}
    for result in line['novelty'].values():
      assert set(result) == {'novelty_correlation', 'held_out_ratio',
                             'held_out', 'seen', 'loss'}
  # A held-out row with no move after it is a user error, found before
  # TensorFlow loads.
  proc = subprocess.run(base + ['--novelty_hold_out_from=4'], cwd=ROOT,
                        capture_output=True, text=True, check=False,
                        timeout=300)
  assert proc.returncode == 1
  assert '--novelty_hold_out_from=4' in proc.stderr
  assert 'Traceback' not in proc.stderr
  # Priorities the replay cannot place: refused before TensorFlow loads.
  priorities = tmp_path / 's2' / snapshots.PRIORITIES
  with np.load(priorities) as f:
    arrays = dict(f)
  np.savez(priorities, **dict(arrays, chunk=arrays['chunk'] + 7))
  proc = subprocess.run(base + ['--novelty_hold_out_from=2'], cwd=ROOT,
                        capture_output=True, text=True, check=False,
                        timeout=300)
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert 'no longer holds whole' in proc.stderr
  priorities.unlink()
  proc = subprocess.run(base + ['--novelty_hold_out_from=2',
                                f'--replay={tmp_path}/none'], cwd=ROOT,
                        capture_output=True, text=True, check=False,
                        timeout=300)
  assert proc.returncode == 1
  assert f'--replay={tmp_path}/none is not a directory' in proc.stderr
  assert 'Traceback' not in proc.stderr
  # Another run's replay, and one of other env workers, are refused before
  # TensorFlow loads.
  other = tmp_path / 'other'
  write_run(str(other), TINY + [f"train.env = '{env}'"], env=env,
            env_kwargs={'mapping_seed': 8}, repeat=1)
  (tmp_path / 's2' / 'replay').rename(other / 'replay')
  two = replay_lib.Replay(str(tmp_path / 'two'), chunk_size=16, length=4)
  play(two, episodes=2, workers=2, size=N)
  two.save()
  for replay, problem in ((other / 'replay', "belongs to a run of deepsea:5 "
                           "{'mapping_seed': 8} seed 0"),
                          (tmp_path / 'two', 'holds the steps of 2 env '
                           'workers; the run steps 1 envs')):
    proc = subprocess.run(
        base + ['--novelty_hold_out_from=2', f'--replay={replay}'], cwd=ROOT,
        capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert problem in proc.stderr and 'Traceback' not in proc.stderr


def test_hold_out_row_must_leave_moves_after_it():
  probe_deepsea.check_hold_out(3, N)
  for row in (0, 4):
    with pytest.raises(ValueError, match=r'rows 1 \.\. 3.*pick one'):
      probe_deepsea.check_hold_out(row, N)
