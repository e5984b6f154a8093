"""launch/exploration.py on an experiment sweep's runs: Markdown, CSV,
success-rate, diagonal-depth and right-move figures, and a clear error for
a path without runs."""
import csv
import gzip
import io
import json
import os
import subprocess
import sys

import pytest

from dreamer_tf import replay as replay_lib
from tests.analysis import fakes
from tests.conftest import ROOT


@pytest.fixture(name='sweep')
def sweep_fixture(tmp_path):
  """deepsea:10, baseline and prioritized x seeds 0, 1 (10 frames per
  episode). Baseline: seed 0 never finds the treasure, seed 1 finds it at
  episode 3 and then always; prioritized: both find it at episode 2 and
  then always."""
  runs = fakes.plan(tmp_path / 'xp', fakes.write_experiments(tmp_path / 'g'),
                    tasks=('deepsea:10',))
  scores = [[0.0] * 6, [0.0, -0.009, 0.99, 0.99, 0.99, 0.99],
            [0.0] + [0.99] * 5, [-0.02] + [0.99] * 5]
  for r, ys in zip(runs, scores):
    fakes.write_run(r, [(10 * (i + 1), y) for i, y in enumerate(ys)])
  return str(tmp_path / 'xp')


def _launch(*args):
  return subprocess.run(
      [sys.executable, '-m', 'launch.exploration', *args], cwd=ROOT,
      capture_output=True, text=True, check=False, timeout=300)


def test_exploration_tables_and_curves(sweep, tmp_path):
  out = str(tmp_path / 'res' / 'deepsea')
  proc = _launch(f'--runs={sweep}', '--last_episodes=3', '--rate=0.5',
                 '--reps=100', f'--out={out}', '--compare_to=baseline')
  assert proc.returncode == 0, proc.stderr
  text = open(out + '.md').read()
  assert '### deepsea_10' in text
  assert '| baseline | 2 | 1/2 [' in text and '>= 4.5 (- 3)' in text
  assert '| prioritized | 2 | 2/2 [' in text and '| 2 (2 2) |' in text
  # Solved at: baseline seed 1 has 2 of its last 3 episodes at episode 4.
  assert '| >= 5 (- 4) |' in text and '| 3 (3 3) |' in text
  rows = {r['method']: r for r in csv.DictReader(io.StringIO(
      open(out + '.csv').read()))}
  assert float(rows['baseline']['solved']) == 0.5
  assert float(rows['prioritized']['final_rate']) == 1.0
  assert rows['baseline']['first_success'] == '- 3'
  assert rows['baseline']['solved_at'] == '- 4'
  # --compare_to: 2/2 against 1/2 seeds is as likely as 1/2 against 2/2.
  assert rows['prioritized']['compared_to'] == 'baseline'
  assert float(rows['prioritized']['found_p']) == 1.0
  assert rows['baseline']['found_p'] == ''  # The reference itself.
  assert '| vs baseline: p found, p solved |' in text
  assert '| 1.00, 1.00 |' in text and text.count(' | - |') == 1
  for name in ('deepsea_10.png', 'grid.png', 'grid.svg'):
    assert os.path.getsize(os.path.join(out, 'success_rate', name)) > 1000
    assert os.path.getsize(os.path.join(out, 'found', name)) > 1000
  # Right moves, last 3 episodes (0.01 / 10 each; the treasure is 10):
  # baseline 0 and 10; prioritized 10, and seed 1's -0.02 would be 20
  # moves of 10: left out, named.
  assert 'right moves per episode, last 3: mean (per seed)' in text
  assert '| 5.0 (0.0 10.0) |' in text and '| 10.0 (10.0 -) |' in text
  assert rows['baseline']['right_moves_seeds'] == '0.0 10.0'
  assert 'Right moves of ' in proc.stderr and 'prioritized/seed1' in (
      proc.stderr) and 'scores -0.02, which deterministic' in proc.stderr
  assert os.path.getsize(os.path.join(out, 'right_moves',
                                      'deepsea_10.png')) > 1000
  # Kept in a score file, they are launch.tables' scores: over frames
  # 30-60, baseline 0 and 10, prioritized 10 (seed 1 left out).
  moves = str(tmp_path / 'moves.json.gz')
  assert _launch(f'--runs={sweep}', '--reps=50', '--nodepth',
                 f'--save_right_moves={moves}').returncode == 0
  tables = subprocess.run(
      [sys.executable, '-m', 'launch.tables', f'--reference={moves}',
       '--window=30,60', '--reps=50'], cwd=ROOT, capture_output=True,
      text=True, check=False, timeout=300)
  assert tables.returncode == 0, tables.stderr
  assert '| deepsea_10 | 5.0 ± 7.1 [0.0, 10.0] (2) | 10.0 [10.0, 10.0] (1) |' in (
      tables.stdout)
  # At another cost the successes (0.99: 1 - 0.01) are no longer N right
  # moves: every run with one is left out, only baseline seed 0 counts.
  proc = _launch(f'--runs={sweep}', '--last_episodes=3', '--reps=50',
                 '--move_cost=0.02')
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr.count('UserWarning: Right moves of ') == 3
  assert '| 0.0 (0.0 -) |' in proc.stdout and '| n/a |' in proc.stdout


def test_saved_scores_give_the_same_results_without_the_runs(sweep,
                                                            tmp_path):
  """--save_scores keeps the runs' curves in one file; --reference reads
  it back to the same tables (the runs' seeds and methods included)."""
  saved = str(tmp_path / 'kept' / 'deepsea.json.gz')
  options = ['--last_episodes=3', '--rate=0.5', '--reps=100']
  first = _launch(f'--runs={sweep}', f'--save_scores={saved}', *options,
                  f'--out={tmp_path}/a')
  assert first.returncode == 0, first.stderr
  again = _launch(f'--reference={saved}', *options, f'--out={tmp_path}/b')
  assert again.returncode == 0, again.stderr
  assert open(f'{tmp_path}/b.csv').read() == open(f'{tmp_path}/a.csv').read()
  assert open(f'{tmp_path}/b.md').read() == open(f'{tmp_path}/a.md').read()
  only = str(tmp_path / 'kept' / 'baseline.json')
  assert _launch(f'--runs={sweep}', '--methods=baseline', *options,
                 f'--save_scores={only}').returncode == 0
  assert '"method":"prioritized"' not in open(only).read()


def test_exploration_without_runs_fails_clearly(tmp_path):
  proc = _launch(f'--runs={tmp_path}/none', f'--out={tmp_path}/x')
  assert proc.returncode != 0
  assert 'No run directories match' in proc.stderr
  assert 'Traceback' not in proc.stderr


def test_exploration_flag_errors(sweep, tmp_path):
  proc = _launch(f'--runs={sweep}', '--final_episodes=5')
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert 'takes --last_episodes; --final_episodes is for' in proc.stderr
  proc = _launch(f'--runs={sweep}', '--move_cost=0')
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert '--move_cost must be > 0' in proc.stderr
  proc = _launch(f'--runs={sweep}', '--rate=1.5')
  assert proc.returncode != 0
  assert 'rate' in proc.stderr and '1' in proc.stderr
  proc = _launch(f'--runs={sweep}', '--compare_to=baselin', '--nodepth')
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert ("--compare_to=baselin: Cannot compare with 'baselin' (did you "
          "mean 'baseline'?): it has no run with episodes; the methods that "
          "have: ['baseline', 'prioritized']") in proc.stderr


def test_a_run_without_episodes_yet_is_left_out_and_named(tmp_path):
  runs = fakes.plan(tmp_path / 'xp', fakes.write_experiments(tmp_path / 'g'),
                    tasks=('deepsea:10',))
  # baseline: one seed without episodes; prioritized: both (just started).
  for r, ys in zip(runs, [[0.0, 0.99], [], [], []]):
    fakes.write_run(r, [(10 * (i + 1), y) for i, y in enumerate(ys)])
  out = str(tmp_path / 'res')
  proc = _launch(f'--runs={tmp_path / "xp"}', '--reps=50', f'--out={out}')
  assert proc.returncode == 0, proc.stderr
  assert '| baseline | 1 | 1/1 [' in proc.stdout
  assert '| prioritized |' not in proc.stdout
  assert ('Left out, no episode yet: baseline (seeds 1), prioritized (seeds '
          '0 1).') in proc.stdout
  rows = {r['method']: r for r in csv.DictReader(open(out + '.csv'))}
  assert rows['prioritized']['seeds'] == '0'
  assert rows['prioritized']['without_episodes'] == '0 1'


def test_finished_only_keeps_unfinished_runs_out_of_a_score_file(
    sweep, tmp_path):
  """While a sweep runs, --finished_only keeps a partial run out of the
  tables and the saved scores, and says which it left out."""
  done = os.path.join(sweep, 'deepsea_10', 'baseline', 'seed1', 'done.json')
  with open(done, 'w') as f:
    f.write('{}')
  saved = str(tmp_path / 'final.json.gz')
  proc = _launch(f'--runs={sweep}', '--finished_only', '--reps=50',
                 f'--save_scores={saved}', f'--out={tmp_path}/f')
  assert proc.returncode == 0, proc.stderr
  assert 'Left out 3 unfinished run(s)' in proc.stderr
  assert '| baseline | 1 | 1/1 [' in proc.stdout
  assert '| prioritized |' not in proc.stdout
  text = gzip.decompress(open(saved, 'rb').read()).decode()
  assert text.count('"method"') == 1 and '"seed":1' in text


def test_diagonal_depths_from_the_replays_and_kept_in_a_file(tmp_path):
  """Runs that hold their replay add the deepest diagonal row per seed (in
  the seeds' order, - without a replay) and its figure; a replay that does
  not match its run's scores is left out, named; --save_depths keeps the
  depths, --depth_reference reads them back to the same tables without
  the runs; the episodes that reached each row are counted per seed."""
  runs = fakes.plan(tmp_path / 'xp', fakes.write_experiments(tmp_path / 'g'),
                    tasks=('deepsea:10',))
  deepest, episode_depths = {}, {}
  for run in runs:  # baseline 0, 1, prioritized 0, 1.
    replay = replay_lib.Replay(os.path.join(run.logdir, 'replay'),
                               chunk_size=32, length=4)
    _, _, ended = fakes.play_deepsea(replay, episodes=30, workers=2,
                                     seed=run.seed, size=10)
    if (run.experiment, run.seed) != ('prioritized', 0):  # No replay there.
      replay.save()
    # prioritized 1: its scores log other episodes than its replay holds.
    shift = 1 if (run.experiment, run.seed) == ('prioritized', 1) else 0
    fakes.write_run(run, [(steps + shift, 0.0) for steps, _ in ended],
                    num_envs=2)
    deepest[run.experiment, run.seed] = max(d for _, d in ended)
    episode_depths[run.experiment, run.seed] = [d for _, d in ended]
  root, out = str(tmp_path / 'xp'), str(tmp_path / 'a')
  saved = str(tmp_path / 'depths.json.gz')
  proc = _launch(f'--runs={root}', '--reps=50', f'--out={out}',
                 f'--save_depths={saved}')
  assert proc.returncode == 0, proc.stderr
  assert 'Diagonal depths of ' in proc.stderr and 'prioritized/seed1' in (
      proc.stderr) and 'do not match' in proc.stderr
  rows = {r['method']: r for r in csv.DictReader(open(out + '.csv'))}
  b0, b1 = deepest['baseline', 0], deepest['baseline', 1]
  assert rows['baseline']['deepest'] == f'{b0} {b1}'
  assert float(rows['baseline']['median_deepest']) == (b0 + b1) / 2
  assert rows['prioritized']['deepest'] == ''  # Neither seed has depths.
  text = open(out + '.md').read()
  assert 'deepest diagonal row (of 9): median (per seed)' in text
  assert f'| {(b0 + b1) / 2:g} ({b0} {b1}) |' in text
  # Episodes that reached at least row r, rows N // 2 - 1 = 4 to 9.
  def reached(seed, row, first=None):
    return sum(d >= row for d in episode_depths['baseline', seed][:first])
  assert [k for k in rows['baseline'] if k.startswith('reached')] == [
      'reached_episodes'] + [f'reached_row{row}' for row in range(4, 10)]
  for row in range(4, 10):
    assert rows['baseline'][f'reached_row{row}'] == (
        f'{reached(0, row)} {reached(1, row)}')
    assert rows['prioritized'][f'reached_row{row}'] == ''
  assert '| row 4 | row 5 | row 6 | row 7 | row 8 | row 9 |' in text
  total = reached(0, 4) + reached(1, 4)
  assert total > 0 and reached(0, 2, 12) + reached(1, 2, 12) > 0  # Not 0s.
  n0, n1 = (len(episode_depths['baseline', s]) for s in (0, 1))
  assert rows['baseline']['reached_episodes'] == f'{n0} {n1}'
  assert (f'| baseline | 2 | {n0} {n1} | {total} ({reached(0, 4)} '
          f'{reached(1, 4)}) |') in text
  proc = _launch(f'--runs={root}', '--reps=50', '--reach_rows=7,2',
                 '--reach_episodes=12')
  assert proc.returncode == 0, proc.stderr
  assert ('| row 2 | row 7 |' in proc.stdout
          and 'the first 12 episodes of each seed' in proc.stdout)
  assert (f'| baseline | 2 | 12 12 | {reached(0, 2, 12) + reached(1, 2, 12)} '
          f'({reached(0, 2, 12)} {reached(1, 2, 12)}) |') in proc.stdout
  for bad, why in [('--reach_rows=10', 'row 10 is not a diagonal row of '
                    'deepsea_10 (0 to 9). With several DeepSea sizes pick '
                    'rows below the smallest N'),
                   ('--reach_rows=x', "--reach_rows='x': use whole diagonal"),
                   ('--reach_episodes=0', 'reach_episodes')]:
    proc = _launch(f'--runs={root}', '--reps=50', bad)
    assert proc.returncode != 0 and why in proc.stderr, proc.stderr
    assert 'Traceback' not in proc.stderr
  assert os.path.getsize(os.path.join(out, 'diagonal_depth',
                                      'deepsea_10.png')) > 1000
  # The same tables from the two score files, without the runs.
  scores_file = str(tmp_path / 'scores.json.gz')
  assert _launch(f'--runs={root}', '--reps=50', '--nodepth',
                 f'--save_scores={scores_file}').returncode == 0
  again = _launch(f'--reference={scores_file}', f'--depth_reference={saved}',
                  '--reps=50', f'--out={tmp_path}/b')
  assert again.returncode == 0, again.stderr
  assert open(f'{tmp_path}/b.csv').read() == open(out + '.csv').read()
  assert open(f'{tmp_path}/b.md').read() == text
  # Depths of a seed the scores leave out are left out too.
  assert b0 != b1  # Else the check below could not fail.
  proc = _launch(f'--runs={runs[0].logdir}', f'--depth_reference={saved}',
                 '--reps=50', f'--out={tmp_path}/seed0')
  assert proc.returncode == 0, proc.stderr
  rows = {r['method']: r
          for r in csv.DictReader(open(f'{tmp_path}/seed0.csv'))}
  assert rows['baseline']['deepest'] == f'{b0}'
  assert float(rows['baseline']['median_deepest']) == b0
  # A seed without depths in a method that has some: '-'.
  fakes.write_run(runs[1], [(1, 0.0)], num_envs=2)  # baseline 1: mismatch.
  proc = _launch(f'--runs={root}', '--reps=50', f'--out={tmp_path}/c')
  rows = {r['method']: r for r in csv.DictReader(open(f'{tmp_path}/c.csv'))}
  assert rows['baseline']['deepest'] == f'{b0} -'
  assert rows['baseline']['reached_row4'] == f'{reached(0, 4)} -'
  assert rows['baseline']['reached_episodes'] == f'{n0} -'
  assert f'| baseline | 2 | {n0} - | {reached(0, 4)} ({reached(0, 4)} -) |' in (
      open(f'{tmp_path}/c.md').read())
  proc = _launch(f'--runs={root}', '--nodepth', '--reps=50')
  assert proc.returncode == 0 and 'deepest diagonal row' not in proc.stdout
  proc = _launch(f'--runs={root}', '--nodepth', f'--save_depths={saved}')
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert '--nodepth leaves out the diagonal depths' in proc.stderr
  proc = _launch(f'--runs={root}', '--nodepth', '--reach_rows=3')
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert ('--nodepth leaves out the diagonal depths, which --reach_rows '
          'and --reach_episodes count: drop it.') in proc.stderr


def test_right_moves_need_deepsea_runs(tmp_path):
  runs = fakes.plan(tmp_path / 'xp', fakes.write_experiments(tmp_path / 'g'))
  for r in runs:  # dmc:walker_walk.
    fakes.write_run(r, [(10, 500.0)])
  proc = _launch(f'--runs={tmp_path / "xp"}', '--reps=50',
                 f'--save_right_moves={tmp_path}/m.json')
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert '--save_right_moves: no DeepSea run whose scores give' in proc.stderr
  proc = _launch(f'--runs={tmp_path / "xp"}', '--reps=50')
  assert proc.returncode == 0, proc.stderr
  assert 'right moves' not in proc.stdout
  # No DeepSea run, so no depths to count episodes by.
  proc = _launch(f'--runs={tmp_path / "xp"}', '--reps=50', '--reach_rows=3')
  assert proc.returncode != 0 and 'Traceback' not in proc.stderr
  assert ('no run gave depths: they need DeepSea runs that hold their '
          'replay, or --depth_reference.') in proc.stderr


def test_right_moves_use_each_runs_own_cost(tmp_path):
  """Each run's env_kwargs give its move cost (bsuite's 0.01 without one);
  a windy run is left out, named; --move_cost overrides them all."""
  runs = fakes.plan(tmp_path / 'xp', fakes.write_experiments(tmp_path / 'g'),
                    tasks=('deepsea:10',))
  # baseline 0: cost 0.02 (0.002 a move); baseline 1: 0.01; prioritized 0:
  # windy; prioritized 1: 0.01.
  kwargs = [{'unscaled_move_cost': 0.02}, {}, {'deterministic': False}, {}]
  scores = [[-0.006, 0.98], [-0.003, 0.99], [0.3, -0.5], [0.0, -0.001]]
  for run, env_kwargs, ys in zip(runs, kwargs, scores):
    fakes.write_run(run, [(10 * (i + 1), y) for i, y in enumerate(ys)])
    record = os.path.join(run.logdir, 'run.json')
    with open(record) as f:
      data = json.load(f)
    with open(record, 'w') as f:
      json.dump(dict(data, env_kwargs=env_kwargs), f)
  root = str(tmp_path / 'xp')
  proc = _launch(f'--runs={root}', '--last_episodes=2', '--reps=50')
  assert proc.returncode == 0, proc.stderr
  assert '| 6.5 (6.5 6.5) |' in proc.stdout
  assert '| 0.5 (- 0.5) |' in proc.stdout
  assert proc.stderr.count('UserWarning: Right moves of ') == 1
  assert 'prioritized/seed0 left out: it ran the windy variant' in proc.stderr
  proc = _launch(f'--runs={root}', '--last_episodes=2', '--reps=50',
                 '--move_cost=0.01')
  assert proc.returncode == 0, proc.stderr
  assert 'baseline/seed0 left out: Episode 2 of baseline seed 0' in (
      proc.stderr)
  assert '| 6.5 (- 6.5) |' in proc.stdout
