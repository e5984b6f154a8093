"""Trains our agent N updates on the official run's frozen replay batches.

Our half of the MULTI-UPDATE comparison (tools/parity/README.md): from the
learner state tools/parity/official_train.py dumped (--out/state.npz), on
the batches of its index (--out/index.npz, rebuilt by replay_batches.py and
checked against the official side's SHA-1 per batch), N calls of our real
`Agent.train`, one JSON line of metrics per update under the OFFICIAL
names (--out/ours.jsonl), for trajectories.py.

  python -m tools.parity.ours_train --out runs/parity-multi/f025280 \
      --num_updates 1000         (from the repository root, our env)

1. Builds our agent as compare.py does (size1m, float32, batch shape,
   warm-up and lr from the dump), except that `Agent.jit_compile` keeps its
   default 'auto', which resolves to True (XLA) on CPU for vector
   observations, as in training (`agent.resolve_auto`).
2. Loads the whole learner state with `load_full_state`: compare.py's
   `load_state` (parameters by `param_table`, slow critic, return
   normaliser lo/hi, LaProp step and moments nu, mu) plus loud checks that
   every entry of the dump is used or verified (the schedule count and the
   optimizer step equal the moments' step; the slow critic's counter is
   irrelevant with every=1) and that every variable of ours' state
   (`Agent.state_variables`) was assigned.
3. Trains; the replay write-back that `Agent.train` returns is ignored, as
   on the official side.

Metric names, ours -> official: loss/reward -> loss/rew, loss/cont ->
loss/con, retnorm/scale -> S, opt/lr -> lr; lo, hi are read from the
return normaliser after the update. Ours' `ret`, `ret_min`, `ret_max`,
`ret_rate` are R / S while the official ones are (R - lo) / S; both forms
are written on both sides: `ret*` = the official form, `ret*_raw` = ours.
`ret_rate` in the offset form cannot be derived from ours' metrics and
is not written (our library is not wrapped); `ret_rate_raw` compares.
`tar` = the mean return R (official: the mean of the value target, R
without valnorm).
"""
import argparse
import json
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np

from tools.parity import compare
from tools.parity import replay_batches

RENAME = {'loss/reward': 'loss/rew', 'loss/cont': 'loss/con',
          'retnorm/scale': 'S', 'opt/lr': 'lr'}


def parse():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--out', default=os.path.join(
      compare.ROOT, 'runs/parity-multi/f025280'), help=(
          'directory of official_train.py (state.npz, index.npz)'))
  p.add_argument('--state', default=None, help='default --out/state.npz')
  p.add_argument('--index', default=None, help='default --out/index.npz')
  p.add_argument('--num_updates', type=int, default=1000)
  p.add_argument('--name', default='ours', help='writes --out/<name>.jsonl')
  p.add_argument('--gin_param', action='append', default=[])
  return p.parse_args()


def load_full_state(agent, dump):
  """Every entry of the official state into ours; loud on any gap.

  Returns the official update count the state is at.
  """
  table = compare.param_table(agent)
  compare.load_state(agent, table, dump)
  step = int(dump['param/opt/state/1/0'])
  used = {f'param/{name}' for name, _, _ in table}
  used |= {f'param/opt/state/{i}/1/{name}' for name, _, module in table
           for i in (1, 2) if module != 'slow_critic'}
  used |= {'param/opt/state/1/0', 'param/opt/state/2/0',
           'param/retnorm/lo/value', 'param/retnorm/hi/value'}
  # Verified, not loaded: counters that must agree with the moments' step.
  for key in ('param/opt/state/3/count', 'param/opt/step/value'):
    if int(dump[key]) != step:
      raise RuntimeError(f'{key} = {int(dump[key])} != optimizer step {step}.')
    used.add(key)
  # The official slow critic mixes every `every` updates by its counter;
  # ours every update: equal only for every == 1.
  if int(dump['meta/slow_every']) != 1:
    raise RuntimeError('Official slowvalue.every != 1: ours mixes every '
                       'update.')
  if not np.isclose(float(dump['meta/slow_rate']), agent.slow_rate):
    raise RuntimeError(f'Slow critic rate {float(dump["meta/slow_rate"])} '
                       f'!= ours {agent.slow_rate}.')
  for key, ours in (('meta/retnorm_rate', agent.retnorm.rate),
                    ('meta/retnorm_limit', agent.retnorm.limit)):
    if not np.isclose(float(dump[key]), ours):
      raise RuntimeError(f'{key} = {float(dump[key])} != ours {ours}.')
  used.add('param/slowval_count/value')
  left = sorted(k for k in dump.files if k.startswith('param/')
                and k not in used)
  if left:
    raise RuntimeError(f'State entries not mapped into ours: {left}')
  # Our side: every state variable assigned.
  opt = agent.optimizer
  assigned = {id(v) for _, v, _ in table}
  assigned |= {id(v) for v in agent.retnorm.weights}
  assigned |= {id(opt.iterations)}
  assigned |= {id(opt._nu[opt._get_variable_index(v)])
               for _, v, m in table if m != 'slow_critic'}
  assigned |= {id(opt._mu[opt._get_variable_index(v)])
               for _, v, m in table if m != 'slow_critic'}
  missing = [v.path for v in agent.state_variables if id(v) not in assigned]
  if missing:
    raise RuntimeError(f'Our state variables not loaded: {missing}')
  if int(opt.iterations.numpy()) != step:
    raise RuntimeError('Optimizer step not loaded.')
  return step


def our_data(data):
  """The shared batch in our layout: stored latents `deter`, `stoch`; the
  official `consec` and `stepid` (20 bytes) are not inputs of ours."""
  data = dict(data)
  data['deter'] = data.pop('dyn/deter')
  data['stoch'] = data.pop('dyn/stoch')
  data.pop('consec'), data.pop('stepid')
  return data


def official_names(metrics, lo, hi):
  """Ours' metrics {name: float} -> the official names (module doc)."""
  row = {RENAME.get(k, k): v for k, v in metrics.items()}
  row['lo'], row['hi'] = lo, hi
  scale = row['S']
  for k in ('ret', 'ret_min', 'ret_max', 'ret_rate'):
    row[f'{k}_raw'] = row.pop(k)
  for k in ('ret', 'ret_min', 'ret_max'):
    row[k] = row[f'{k}_raw'] - lo / scale
  row['tar'] = row['ret_raw'] * scale
  return row


def main():
  args = parse()
  state_path = args.state or os.path.join(args.out, 'state.npz')
  dump = np.load(state_path)
  reader = replay_batches.Reader(args.index or os.path.join(
      args.out, 'index.npz'))
  if len(reader) < args.num_updates:
    raise SystemExit(f'The index has {len(reader)} batches.')
  agent, bindings = compare.build_agent(dump, [
      "Agent.jit_compile = 'auto'", *args.gin_param])
  print('Gin bindings:', '; '.join(bindings))
  print(f'Agent.jit_compile resolved to {agent.jit_compile}, precision '
        f'{agent.precision}.')
  step = load_full_state(agent, dump)
  print(f'Loaded the official state at update {step}.')
  path = os.path.join(args.out, f'{args.name}.jsonl')
  log = open(path, 'w')
  start = time.time()
  for i in range(args.num_updates):
    metrics, _ = agent.train(our_data(reader.batch(i)))  # write-back ignored
    metrics = {k: float(v) for k, v in metrics.items()}
    row = official_names(metrics, float(agent.retnorm.lo.numpy()),
                         float(agent.retnorm.hi.numpy()))
    row = {'update': i, **row, 'time': time.time() - start}
    log.write(json.dumps(row) + '\n')
    log.flush()
    if i % 50 == 0 or i == args.num_updates - 1:
      print(f"update {i}: S {row['S']:.4g} lo {row['lo']:.4g} hi "
            f"{row['hi']:.4g} ent {row['ent/action']:.4g} "
            f"({row['time']:.0f} s)", flush=True)
  log.close()
  print(f'Wrote {args.num_updates} updates to {path} in '
        f'{time.time() - start:.0f} s.')


if __name__ == '__main__':
  main()
