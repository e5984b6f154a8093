"""Compares the metric trajectories of the official and our learner.

  python -m tools.parity.trajectories runs/parity-multi/f025280 \
      [--window 50] [--all] [--json out.json]
  python -m tools.parity.trajectories official.jsonl ours.jsonl

Input: the JSONL files of official_train.py and ours_train.py (one line
per update, official metric names; a directory means its official.jsonl
and ours.jsonl). Both learners started from the same state and trained on
the same batches, but draw different noise (JAX vs TF generators), so
single updates differ by sampling noise and only window means can agree.

Per metric and window of --window updates: the two means, and whether
they differ beyond the tolerance

  |mean_ours - mean_official| > max(atol, rtol |mean_official|)  AND
  |mean_ours - mean_official| > z * SE,
  SE = sqrt(var_official / n + var_ours / n) over the window's updates

(defaults atol 1e-3, rtol 0.05, z 4: a difference both practically large
and far outside the two windows' update-to-update noise; the updates of
a window are autocorrelated, so SE is optimistic and z is large).
Printed: a table of window means at a few windows (--all: every
window), the first differing window per metric, and the metric(s) that
differ first. A metric counts as diverged from the first window after
which it differs in every window ("sustained"); the first single
differing window is listed too.
"""
import argparse
import json
import math
import os

import numpy as np

# The metrics of interest first, in this order; others follow sorted.
ORDER = (
    'ent/action', 'adv', 'adv_std', 'adv_mag', 'S', 'lo', 'hi', 'val',
    'slowval', 'tar', 'ret', 'ret_raw', 'ret_min', 'ret_max', 'ret_rate',
    'ret_rate_raw', 'rew', 'con', 'weight', 'loss/policy', 'loss/value',
    'loss/repval', 'loss/rew', 'loss/con', 'loss/dyn', 'loss/rep',
    'loss/position', 'loss/to_target', 'loss/velocity', 'opt/loss',
    'opt/grad_norm', 'lr', 'dyn_ent', 'rep_ent')
SKIP = ('update', 'time', 'opt/updates', 'opt/skipped', 'opt/param_count',
        'opt/grad_rms', 'opt/param_rms', 'opt/update_rms', 'ret_min_raw',
        'ret_max_raw')


def read(path):
  rows = [json.loads(line) for line in open(path) if line.strip()]
  rows.sort(key=lambda r: r['update'])
  return rows


def windows(official, ours, size, atol, rtol, z):
  """{metric: [window dicts]} over the updates both files have."""
  n = min(len(official), len(ours))
  keys = [k for k in official[0] if k in ours[0] and k not in SKIP]
  keys = [k for k in ORDER if k in keys] + sorted(
      k for k in keys if k not in ORDER)
  out = {}
  for key in keys:
    a = np.array([r.get(key, np.nan) for r in official[:n]], np.float64)
    b = np.array([r.get(key, np.nan) for r in ours[:n]], np.float64)
    rows = []
    for start in range(0, n, size):
      x, y = a[start:start + size], b[start:start + size]
      m = len(x)
      ma, mb = float(np.nanmean(x)), float(np.nanmean(y))
      # (A window of one update has no noise estimate: never flagged.)
      se = (math.sqrt((np.nanvar(x, ddof=1) + np.nanvar(y, ddof=1)) / m)
            if m > 1 else math.inf)
      d = mb - ma
      differs = bool(abs(d) > max(atol, rtol * abs(ma)) and abs(d) > z * se)
      rows.append(dict(start=start, stop=start + m, official=ma, ours=mb,
                       diff=d, se=se, differs=differs))
    out[key] = rows
  return out


def first_divergence(rows):
  """(first differing window start, start of the sustained run) or None."""
  first = next((r['start'] for r in rows if r['differs']), None)
  sustained = None
  for r in reversed(rows):
    if not r['differs']:
      break
    sustained = r['start']
  return first, sustained


def fmt(x):
  if x == 0 or not np.isfinite(x):
    return f'{x:.4g}'
  return f'{x:.4g}' if 1e-3 <= abs(x) < 1e5 else f'{x:.3e}'


def table(result, show):
  head = '| metric | ' + ' | '.join(
      f'{s}-{e} official | {s}-{e} ours' for s, e in show) + ' |'
  lines = [head, '|---' * (1 + 2 * len(show)) + '|']
  for key, rows in result.items():
    by = {r['start']: r for r in rows}
    cells = []
    for s, _ in show:
      r = by[s]
      mark = ' *' if r['differs'] else ''
      cells += [fmt(r['official']), fmt(r['ours']) + mark]
    lines.append(f'| {key} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def pick_windows(result, size, all_windows):
  rows = next(iter(result.values()))
  spans = [(r['start'], r['stop']) for r in rows]
  if all_windows or len(spans) <= 6:
    return spans
  n = spans[-1][1]
  wanted = [0, n // 5, n // 2 - size, spans[-1][0]]  # 0, 200, 450, 950 of 1000
  starts = sorted({min(spans, key=lambda s: abs(s[0] - w))[0] for w in wanted})
  return [s for s in spans if s[0] in starts]


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('paths', nargs='+', help='DIR, or OFFICIAL.jsonl OURS.jsonl')
  p.add_argument('--window', type=int, default=50)
  p.add_argument('--atol', type=float, default=1e-3)
  p.add_argument('--rtol', type=float, default=0.05)
  p.add_argument('--z', type=float, default=4.0)
  p.add_argument('--all', action='store_true', help='print every window')
  p.add_argument('--ours_name', default='ours')
  p.add_argument('--json', default=None)
  args = p.parse_args()
  if len(args.paths) == 1:
    official = os.path.join(args.paths[0], 'official.jsonl')
    ours = os.path.join(args.paths[0], f'{args.ours_name}.jsonl')
  else:
    official, ours = args.paths
  official, ours = read(official), read(ours)
  result = windows(official, ours, args.window, args.atol, args.rtol, args.z)
  n = min(len(official), len(ours))
  print(f'{n} updates (official {len(official)}, ours {len(ours)}), windows '
        f'of {args.window}. Differs (*): |d| > max({args.atol}, '
        f'{args.rtol} |official|) and |d| > {args.z} SE.\n')
  print(table(result, pick_windows(result, args.window, args.all)))
  print('\nFirst differing window per metric (first single / sustained to '
        'the end):')
  firsts = {}
  for key, rows in result.items():
    first, sustained = first_divergence(rows)
    firsts[key] = dict(first=first, sustained=sustained)
    if first is not None:
      print(f'  {key}: {first} / {sustained}')
  starts = [v['sustained'] for v in firsts.values()
            if v['sustained'] is not None]
  earliest = min(starts) if starts else None
  first_keys = [k for k, v in firsts.items() if v['sustained'] == earliest
                and earliest is not None]
  print('\nFirst sustained divergence: ' + (
      f'window {earliest}: {", ".join(first_keys)}' if first_keys else 'none'))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(dict(window=args.window, atol=args.atol, rtol=args.rtol,
                     z=args.z, updates=n, windows=result, first=firsts,
                     first_sustained=dict(start=earliest, metrics=first_keys)),
                f, indent=1)


if __name__ == '__main__':
  main()
