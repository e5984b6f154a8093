"""launch/official.py: the official harness run twice on one compile cache,
the side-by-side rows, their errors; launch.benchmark's side-by-side mode."""
import json
import os
import subprocess
import sys

import pytest

from launch import official
from tests.conftest import ROOT

# Stands in for ../shared/bench/official_update.py: writes the result keys
# the harness writes, and what it was asked (flags, the compile cache).
FAKE_HARNESS = r'''
import json, os, sys
args = sys.argv[1:]
out = args[args.index('--out') + 1]
cache = os.environ['JAX_COMPILATION_CACHE_DIR']
os.makedirs(cache, exist_ok=True)
cached = os.listdir(cache) != []
open(os.path.join(cache, 'entry'), 'w').write('x')
if os.environ.get('FAKE_FAIL'):
  sys.exit('jaxlib: no such backend')
if os.environ.get('FAKE_NO_OUT'):
  print('done'); sys.exit(0)
result = dict(args=args, cache=cache, cached=cached, jax_version='0.4.33',
              n_params=688004, train_lower_s=3.0,
              train_compile_s=0.5 if cached else 12.0,
              peak_rss_mb=900.0 if cached else 1024.0)
if '--flops_only' not in args:
  result['train_s_per_update'] = dict(median=0.75, min=0.7, max=0.9, n=3)
json.dump(result, open(out, 'w'))
with open(os.environ['FAKE_LOG'], 'a') as f:
  f.write(json.dumps(result) + '\n')
'''


@pytest.fixture(name='fake')
def fixture_fake(tmp_path, monkeypatch):
  harness = tmp_path / 'official_update.py'
  harness.write_text(FAKE_HARNESS)
  src = tmp_path / 'src'
  (src / 'dreamerv3').mkdir(parents=True)
  (src / 'dreamerv3' / 'agent.py').write_text('')
  log = tmp_path / 'calls.jsonl'
  monkeypatch.setenv('FAKE_LOG', str(log))
  return dict(python=sys.executable, src=str(src), harness=str(harness),
              log=log)


def test_measure_runs_the_harness_twice_on_one_fresh_compile_cache(fake):
  result = official.measure('vector5d12m', fake['python'], fake['src'],
                            fake['harness'], repeats=3, repeat_seconds=15)
  first, again = [json.loads(l) for l in fake['log'].read_text().splitlines()]
  assert first['cache'] == again['cache']
  assert not first['cached'] and again['cached']
  assert '--flops_only' in again['args'] and '--flops_only' not in first['args']
  for flag, value in (('--task', 'vec'), ('--size', 'size12m'),
                      ('--dtype', 'float32'), ('--repeats', '3'),
                      ('--target_repeat_s', '15'), ('--src', fake['src'])):
    assert first['args'][first['args'].index(flag) + 1] == value
  assert not os.path.exists(first['cache'])  # Removed afterwards.
  assert result == dict(
      dtype='float32', jax_version='0.4.33', params=688004,
      seconds_per_update=0.75, seconds_min=0.7, seconds_max=0.9,
      compile_seconds=15.0, cached_compile_seconds=3.5, peak_rss_gib=1.0)


def test_a_failing_harness_and_unknown_cases_are_named(fake, monkeypatch):
  monkeypatch.setenv('FAKE_FAIL', '1')
  with pytest.raises(official.OfficialError,
                     match=r'failed \(exit 1\).*no such backend.*'
                     r'command: .*official_update.py'):
    official.measure('image1m', fake['python'], fake['src'], fake['harness'])
  monkeypatch.delenv('FAKE_FAIL')
  monkeypatch.setenv('FAKE_NO_OUT', '1')
  with pytest.raises(official.OfficialError,
                     match=r'failed \(exit 0 but wrote no .*\.json\)'):
    official.measure('image1m', fake['python'], fake['src'], fake['harness'])
  with pytest.raises(official.OfficialError, match=r"no case 'vector1m'"):
    official.measure('vector1m', fake['python'], fake['src'], fake['harness'])


def test_check_paths_names_the_missing_piece(fake, tmp_path):
  official.check_paths(fake['python'], fake['src'], fake['harness'])
  with pytest.raises(official.OfficialError, match='--official_python'):
    official.check_paths('', fake['src'], fake['harness'])
  with pytest.raises(official.OfficialError,
                     match='--official_harness.*official_update.py'):
    official.check_paths(fake['python'], fake['src'], str(tmp_path / 'no'))
  with pytest.raises(official.OfficialError, match='no dreamerv3/agent.py'):
    official.check_paths(fake['python'], str(tmp_path), fake['harness'])


def _ours(precision, xla, seconds, auto=('float32', True)):
  return dict(case='vector5d1m', precision=precision, xla=xla,
              auto_precision=auto[0], auto_xla=auto[1],
              seconds_per_update=seconds, compile_seconds=20.0,
              cached_compile_seconds=5.0 if xla else None, peak_rss_gib=2.0)


OFFICIAL = dict(seconds_per_update=0.8, compile_seconds=16.0,
                cached_compile_seconds=4.0, peak_rss_gib=0.8)


def test_side_by_side_rates_the_setting_auto_picks_and_finds_the_fastest():
  ours = [_ours('float32', True, 0.5), _ours('float32', False, 0.6),
          _ours('bfloat16', False, 0.4), dict(precision='bfloat16', xla=True,
                                              error=['OOM'])]
  row = official.side_by_side('vector5d1m', OFFICIAL, ours)
  assert row['ours_auto']['precision'] == 'float32' and row['ours_auto']['xla']
  assert row['ours_fastest']['precision'] == 'bfloat16'
  assert row['auto_is_fastest'] is False
  assert row['speedup'] == 1.6
  assert row['compile_ratio'] == 1.25
  assert row['cached_compile_ratio'] == 1.25
  assert row['rss_ratio'] == 2.5
  table = official.markdown([row])
  assert '| vector5d1m | 0.8 | 0.5 (float32+XLA) | **1.6x** | 0.4 (bfloat16)' \
      in table
  mine = official.side_by_side(
      'vector5d1m', OFFICIAL, [_ours('bfloat16', False, 0.4,
                                     auto=('bfloat16', False))])
  assert mine['auto_is_fastest'] is True and 'cached_compile_ratio' not in mine


def test_side_by_side_says_when_the_auto_setting_was_not_measured():
  row = official.side_by_side('vector5d1m', OFFICIAL,
                              [_ours('float32', False, 0.6)])
  assert 'ours_auto' not in row
  assert "auto picks (float32, xla=True) was not measured" in row['error']
  assert 'was not measured' in official.markdown([row])
  assert 'no setting of ours ran' in official.side_by_side(
      'vector5d1m', OFFICIAL, [dict(error=['x'])])['error']


def _benchmark(*flags):
  return subprocess.run(
      [sys.executable, '-m', 'launch.benchmark', *flags], cwd=ROOT,
      capture_output=True, text=True, check=False, timeout=600)


def test_benchmark_side_by_side_refuses_cases_without_a_counterpart(fake):
  proc = _benchmark(f'--official_python={fake["python"]}',
                    f'--official_src={fake["src"]}',
                    f'--official_harness={fake["harness"]}',
                    '--cases=vector1m')
  assert proc.returncode != 0
  assert "['vector1m'] have no official counterpart" in proc.stderr
  proc = _benchmark('--official_python=/nowhere/python',
                    f'--official_src={fake["src"]}', '--cases=vector5d1m')
  assert proc.returncode != 0
  assert "--official_python='/nowhere/python' does not exist" in proc.stderr


def test_benchmark_side_by_side_measures_the_official_side_then_ours(fake):
  """Plumbing (no XLA): one case, our float32 update without XLA, which is
  not what `auto` picks for vectors: the row says so and keeps ours."""
  proc = _benchmark(f'--official_python={fake["python"]}',
                    f'--official_src={fake["src"]}',
                    f'--official_harness={fake["harness"]}',
                    '--cases=vector5d1m', '--precisions=float32', '--xla=off',
                    '--updates=1')
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = json.loads(proc.stdout)
  assert len(rows) == 1 and rows[0]['case'] == 'vector5d1m'
  assert rows[0]['official']['seconds_per_update'] == 0.75
  assert 'auto picks (float32, xla=True) was not measured' in rows[0]['error']
  [ours] = rows[0]['ours_all']
  assert ours['action_space'] == 'continuous:1' and ours['obs_space'] == '5'
  assert ours['auto_precision'] == 'float32' and ours['auto_xla'] is True
  assert ours['seconds_per_update'] > 0
  # The trace is measured on its own, and is part of the first update.
  assert ours['traced_ops'] > 1000
  assert 0 < ours['trace_seconds'] < ours['compile_seconds'] + ours[
      'seconds_per_update']
  # The same run's official time, not launch.benchmark's constant (0.772).
  assert ours['official_seconds_per_update'] == 0.75
  assert ours['speedup_vs_official'] == round(
      0.75 / ours['seconds_per_update'], 2)
  assert '| vector5d1m | 0.75 |' in proc.stderr


def test_benchmark_side_by_side_keeps_going_when_the_official_side_fails(
    fake, monkeypatch):
  monkeypatch.setenv('FAKE_FAIL', '1')
  proc = _benchmark(f'--official_python={fake["python"]}',
                    f'--official_src={fake["src"]}',
                    f'--official_harness={fake["harness"]}',
                    '--cases=vector5d1m', '--precisions=float32', '--xla=off')
  assert proc.returncode == 0, proc.stderr[-2000:]
  [row] = json.loads(proc.stdout)
  assert row['case'] == 'vector5d1m' and 'ours_all' not in row
  assert 'official side: The official harness failed' in row['error']
  assert 'no such backend' in row['error']
  assert '| vector5d1m | official side:' in proc.stderr
