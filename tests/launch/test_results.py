"""launch/results.py: the results CSV of a sweep from the command line, and
its failure messages (the rows themselves: tests/analysis/test_results.py)."""
import csv
import os
import subprocess
import sys

from launch import results
from tests.analysis import fakes
from tests.conftest import ROOT


def _launch(*args):
  return subprocess.run(
      [sys.executable, '-m', 'launch.results', *args], capture_output=True,
      text=True, cwd=ROOT, timeout=120, check=False)


def test_cli_writes_one_row_per_run(tmp_path):
  runs = fakes.plan(tmp_path / 'xp1', fakes.write_experiments(tmp_path / 'xp'))
  for i, run in enumerate(runs):
    fakes.write_run(run, [(10, float(i)), (20, 2.0 * i)],
                    [{'step': 20, 'train/loss/policy': 0.5 * i}],
                    done_frames=20 if i < 3 else None)
  out = tmp_path / 'results' / 'xp1'
  proc = _launch(f'--root={tmp_path / "xp1"}', '--metrics=loss/policy',
                 f'--out={out}', '--final_episodes=1')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == f'{out}.csv: 4 runs (3 done, 1 partial).'
  with open(f'{out}.csv') as f:
    rows = list(csv.DictReader(f))
  assert [(r['method'], r['seed'], r['final_score'], r['best_score'],
           r['loss/policy'], r['status']) for r in rows] == [
               ('baseline', '0', '0.0', '0.0', '0.0', 'done'),
               ('baseline', '1', '2.0', '2.0', '0.5', 'done'),
               ('prioritized', '0', '4.0', '4.0', '1.0', 'done'),
               ('prioritized', '1', '6.0', '6.0', '1.5', 'partial')]
  # Default output: <root>/results.csv.
  path, rows = results.write(str(tmp_path / 'xp1'))
  assert path == os.path.join(tmp_path, 'xp1', 'results.csv') and len(
      rows) == 4


def test_cli_failures_are_one_line_messages(tmp_path):
  os.makedirs(tmp_path / 'empty')
  for args, message in (
      ([], 'launch.results: --root is required'),
      ([f'--root={tmp_path / "empty"}'], 'launch.results: No runs under'),
      ([f'--root={tmp_path / "none"}'], 'launch.results: No sweep root')):
    proc = _launch(*args)
    assert proc.returncode != 0
    assert proc.stderr.startswith(message), proc.stderr[-2000:]
  run, = fakes.plan(tmp_path / 'xp1', fakes.write_experiments(tmp_path / 'xp'),
                    names=['baseline'], seeds=[0])
  fakes.write_run(run, [(10, 1.0)], [{'step': 10, 'train/loss/policy': 1.0}])
  proc = _launch(f'--root={tmp_path / "xp1"}', '--metrics=loss/polcy')
  assert proc.returncode != 0
  assert proc.stderr.startswith(
      "launch.results: No run logs the metric 'loss/polcy' (did you mean "
      "'train/loss/policy'?)"), proc.stderr
