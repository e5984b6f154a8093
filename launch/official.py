"""The official DreamerV3 (JAX) update, timed beside ours by
`launch.benchmark --official_src=...` (issue 14's side-by-side table).

The official side is timed by the harness in `../shared/bench/` (its
README builds the official code's environment; this project never ships
or needs that code). For one case the harness runs twice in two processes
sharing a fresh JAX persistent compile cache, as our XLA cases do:

* the first process lowers and compiles the update (`compile_seconds` =
  trace + compile), then times it (`seconds_per_update`, the median of
  `repeats` repeats of about `repeat_seconds` each, after one warm-up
  update) and reports its peak RSS;
* the second stops after lowering and compiling, which now loads the
  update from the cache (`cached_compile_seconds`): what a resumed run of
  the official code pays.
"""
import json
import os
import subprocess
import tempfile

# Our benchmark case -> the harness's (--task, --size): the same spaces
# (vec: a 5-d vector observation, 1 continuous action; img: a 64x64x3
# image, 6 discrete actions) and model size, batch 16 x 64.
HARNESS_CASES = {
    'vector5d1m': ('vec', 'size1m'),
    'vector5d12m': ('vec', 'size12m'),
    'image1m': ('img', 'size1m'),
    'image12m': ('img', 'size12m'),
}


class OfficialError(RuntimeError):
  """The harness could not run (its message names what to fix)."""


def check_paths(python, src, harness):
  """Raises OfficialError naming the missing piece of the official setup."""
  for what, path, fix in (
      ('--official_python', python, 'the python of the environment built '
       'by ../shared/bench/README.md'),
      ('--official_src', src, 'the unpacked official danijar/dreamerv3 '
       'tree (../shared/bench/README.md, step 1)'),
      ('--official_harness', harness, '../shared/bench/official_update.py')):
    if not path or not os.path.exists(path):
      raise OfficialError(f'{what}={path!r} does not exist; pass {fix}.')
  if not os.path.isfile(os.path.join(src, 'dreamerv3', 'agent.py')):
    raise OfficialError(
        f'--official_src={src!r} has no dreamerv3/agent.py; pass the root '
        'of the official tree.')


def measure(case, python, src, harness, dtype='float32', repeats=3,
            repeat_seconds=15.0, timeout=7200):
  """Times the official update of `case` (HARNESS_CASES); returns
  {seconds_per_update, seconds_min, seconds_max, compile_seconds,
  cached_compile_seconds, peak_rss_gib, params, dtype, jax_version}."""
  if case not in HARNESS_CASES:
    raise OfficialError(
        f'The official harness has no case {case!r}; use one of '
        f'{sorted(HARNESS_CASES)}.')
  task, size = HARNESS_CASES[case]
  with tempfile.TemporaryDirectory() as tmp:
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(tmp, 'jax'),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
    base = [python, harness, '--src', src, '--task', task, '--size', size,
            '--dtype', dtype, '--skip_policy']
    first = _run(base + ['--repeats', str(repeats), '--warmup', '1',
                         '--target_repeat_s', str(repeat_seconds),
                         '--out', os.path.join(tmp, 'first.json')],
                 env, os.path.join(tmp, 'first.json'), timeout)
    again = _run(base + ['--flops_only',
                         '--out', os.path.join(tmp, 'again.json')],
                 env, os.path.join(tmp, 'again.json'), timeout)
  seconds = first['train_s_per_update']
  return dict(
      dtype=dtype, jax_version=first.get('jax_version'),
      params=first.get('n_params'),
      seconds_per_update=round(seconds['median'], 4),
      seconds_min=round(seconds['min'], 4),
      seconds_max=round(seconds['max'], 4),
      compile_seconds=round(
          first['train_lower_s'] + first['train_compile_s'], 2),
      cached_compile_seconds=round(
          again['train_lower_s'] + again['train_compile_s'], 2),
      peak_rss_gib=round(first['peak_rss_mb'] / 1024, 3))


def _run(cmd, env, out, timeout):
  """Runs the harness; its JSON result, or OfficialError with its last
  lines of output."""
  try:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
  except subprocess.TimeoutExpired as e:
    raise OfficialError(f'The official harness took over {timeout} s: '
                        f'{" ".join(cmd)}') from e
  if proc.returncode or not os.path.isfile(out):
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    what = (f'exit {proc.returncode}' if proc.returncode else
            f'exit 0 but wrote no {out}')
    raise OfficialError(
        f'The official harness failed ({what}): {tail}; command: '
        f'{" ".join(cmd)}')
  with open(out) as f:
    return json.load(f)


def side_by_side(case, official, ours):
  """One table row: the official result beside our settings of `case`.

  ours: our results of the case (one per precision x XLA setting), each
  with the `auto_precision`/`auto_xla` its agent resolved. Returns the row
  of the setting `auto` picks (`ours_auto`), the fastest measured one
  (`ours_fastest`), whether they agree, and the ratios official / ours
  (speed) and ours / official (compile, RSS) for the `auto` setting.
  """
  ok = [r for r in ours if 'error' not in r]
  if not ok:
    return dict(case=case, official=official,
                error='no setting of ours ran')
  fastest = min(ok, key=lambda r: r['seconds_per_update'])
  auto = [r for r in ok if r['precision'] == r['auto_precision']
          and r['xla'] == r['auto_xla']]
  row = dict(case=case, official=official, ours_fastest=_setting(fastest))
  if not auto:
    row['error'] = ('the setting auto picks ('
                    f'{ok[0]["auto_precision"]}, xla={ok[0]["auto_xla"]}) '
                    'was not measured; add it to --precisions/--xla')
    return row
  auto = auto[0]
  row.update(
      ours_auto=_setting(auto),
      auto_is_fastest=auto is fastest,
      speedup=round(official['seconds_per_update'] /
                    auto['seconds_per_update'], 2),
      compile_ratio=round(auto['compile_seconds'] /
                          official['compile_seconds'], 2),
      rss_ratio=round(auto['peak_rss_gib'] / official['peak_rss_gib'], 2))
  if auto.get('cached_compile_seconds') is not None:
    row['cached_compile_ratio'] = round(
        auto['cached_compile_seconds'] / official['cached_compile_seconds'],
        2)
  return row


def _setting(result):
  keys = ('precision', 'xla', 'seconds_per_update', 'compile_seconds',
          'cached_compile_seconds', 'peak_rss_gib')
  return {k: result.get(k) for k in keys}


def markdown(rows):
  """The side-by-side rows as a Markdown table."""
  lines = [
      '| case | official s/update | ours s/update (auto) | speed-up | '
      'fastest of ours | official compile s (cached) | ours compile s '
      '(cached) | official peak RSS GiB | ours |',
      '|---|---|---|---|---|---|---|---|---|']
  for row in rows:
    if 'official' not in row:
      lines.append(f'| {row["case"]} | {row["error"]} | | | | | | | |')
      continue
    off = row['official']
    if 'ours_auto' not in row:
      lines.append(f'| {row["case"]} | {off["seconds_per_update"]} | '
                   f'{row.get("error")} | | | | | | |')
      continue
    auto, fast = row['ours_auto'], row['ours_fastest']
    name = lambda r: f'{r["precision"]}{"+XLA" if r["xla"] else ""}'
    cached = (auto['cached_compile_seconds'] if auto['xla'] else
              'no cache')  # Without XLA every start traces and builds.
    lines.append(
        f'| {row["case"]} | {off["seconds_per_update"]} | '
        f'{auto["seconds_per_update"]} ({name(auto)}) | '
        f'**{row["speedup"]}x** | {fast["seconds_per_update"]} '
        f'({name(fast)}) | {off["compile_seconds"]} '
        f'({off["cached_compile_seconds"]}) | {auto["compile_seconds"]} '
        f'({cached}) | {off["peak_rss_gib"]} | '
        f'{auto["peak_rss_gib"]} |')
  return '\n'.join(lines)
