"""Trains the official DreamerV3 (JAX) agent N updates on frozen replay batches.

The official half of the MULTI-UPDATE comparison (tools/parity/README.md):
one-update parity (official_dump.py + compare.py) cannot see the optimizer
moments, the return normaliser's EMA, the slow critic and how they interact
over many updates. So both learners start from the SAME state and train on
the SAME batches in the same order, and their metric trajectories are
compared (trajectories.py). Nothing of the official code is copied here: it
is imported from its checkout (PYTHONPATH), as in official_dump.py.

  PYTHONPATH=/work/scratch/official /work/scratch/venv/bin/python \
      -m tools.parity.official_train \
      --snapshot runs/ab/snapshots/official-reacher_easy-0/f025280 \
      --out runs/parity-multi/f025280 --num_updates 1000

What it does:
1. Builds the official agent exactly as dreamerv3/main.py's make_agent does
   from the official run's own config.yaml (--run; size1m dmc_proprio,
   float32, CPU; the JAX profiler and the acting copy of the policy off,
   which the update does not read), for reacher_easy's spaces.
2. --snapshot DIR: loads DIR/agent.pkl with the official `Agent.load`. An
   official checkpoint's agent.pkl is {'params': {name: array}, 'counters':
   {updates, batches, actions}} (embodied/jax/agent.py `save`); `params`
   is the ninjax state, which holds everything the update reads:
     <module>/...           parameters (enc, dyn, dec, rew, con, pol, val)
     slowval/...            slow critic; slowval_count/value its counter
     retnorm/lo|hi/value    return normaliser percentile EMAs
     opt/state/1/0, /1/1/*  LaProp RMS step count and nu (scale_by_rms)
     opt/state/2/0, /2/1/*  momentum step count and mu (scale_by_momentum)
     opt/state/3/count      the learning-rate schedule's step count
     opt/step/value         the optimizer's update counter
   --snapshot init: no checkpoint, the official initialisation from the
   run's seed (as at the start of training; optimizer warm-up from 0).
3. Writes that state to --out/state.npz as `param/<official name>` (the
   naming of official_dump.py, so compare.load_state reads it) plus meta/*.
4. Samples the batch index (replay_batches.py) from the official replay's
   chunk files (--run/replay) written before the snapshot was taken
   (--before snapshot; the replay the checkpoint belonged to; `all` for
   every chunk), unless --out/index.npz exists.
5. Runs N updates of the official jitted `Agent.train` on those batches in
   order, with the seeds the training loop would have used (the agent's
   batch counter continues from the checkpoint), ignoring the replay
   write-back (outs['replay']); writes one JSON line per update to
   --out/official.jsonl: the train metrics under their official names, and
     S, lo, hi       return scale max(1, hi - lo) and the percentile EMAs
                     after the update (the values the update used)
     lr              the learning rate of the update
     ret_raw, ret_min_raw, ret_max_raw, ret_rate_raw
                     the return metrics WITHOUT the offset lo (ours' form;
                     the official `ret*` are (R - lo) / S)
   --noise_seed K draws the updates' noise from seed K instead (file
   official_noise<K>.jsonl): a control of how far two runs of the SAME
   learner drift apart by sampling noise alone.
   The official agent returns each update's metrics one call late (it
   fetches them asynchronously); they are written for the update they
   belong to.

The only wrapper (record only, like official_dump.py): `imag_loss` also
returns ret_rate_raw = mean(|R / S| >= 1), which the official metrics lack.
"""
import argparse
import json
import os
import pickle
import time

import numpy as np

from tools.parity import official_dump
from tools.parity import replay_batches  # numpy only, shared with ours_train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
OBS_KEYS = ('position', 'to_target', 'velocity')


def parse():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--official', default=os.environ.get(
      'DREAMERV3_OFFICIAL', '/work/scratch/official'))
  p.add_argument('--run', default=os.path.join(
      ROOT, 'runs/ab/official-reacher_easy-0'), help=(
          'the official run directory: its config.yaml and replay/'))
  p.add_argument('--snapshot', default=os.path.join(
      ROOT, 'runs/ab/snapshots/official-reacher_easy-0/f025280'), help=(
          'checkpoint directory with agent.pkl, or "init"'))
  p.add_argument('--out', default=os.path.join(
      ROOT, 'runs/parity-multi/f025280'))
  p.add_argument('--index', default=None, help=(
      'batch index (default --out/index.npz; sampled if absent)'))
  p.add_argument('--num_updates', type=int, default=1000)
  p.add_argument('--data_seed', type=int, default=0)
  p.add_argument('--before', default='snapshot', help=(
      '"snapshot": only chunk files written before the snapshot\'s '
      'agent.pkl; "all"; or a POSIX time'))
  p.add_argument('--noise_seed', type=int, default=None, help=(
      'seed of the updates\' sampling noise (default: the run\'s seed, as '
      'in training); another value gives a noise-only control run'))
  p.add_argument('--precompile', type=int, default=1, help=(
      '0: skip the official ahead-of-time compile of train and report (the '
      'train step is then jitted on first use; same computation)'))
  p.add_argument('--final_state', type=int, default=1, help=(
      '1: also write the state after the last update (final_official.npz)'))
  return p.parse_args()


def cutoff(args):
  if args.before == 'all':
    return None
  if args.before == 'snapshot':
    if args.snapshot == 'init':
      return None
    return os.path.getmtime(os.path.join(args.snapshot, 'agent.pkl'))
  return float(args.before)


def make_index(args, path, length, batch_size):
  if os.path.exists(path):
    reader = replay_batches.Reader(path)
    if len(reader) < args.num_updates or reader.length != length or (
        reader.chunk.shape[1] != batch_size):
      raise SystemExit(f'{path} holds {len(reader)} batches of '
                       f'{reader.chunk.shape[1]}x{reader.length}; need '
                       f'{args.num_updates} of {batch_size}x{length}. '
                       'Remove it or pass another --index.')
    print(f'Using the batch index {path}.')
    return reader
  directory = os.path.join(args.run, 'replay')
  before = cutoff(args)
  names = replay_batches.list_chunks(directory, before)
  chunk, start, items = replay_batches.sample_index(
      names, length, args.num_updates, batch_size, args.data_seed)
  print(f'Sampled {args.num_updates} batches from {items} items in '
        f'{len(names)} chunks ({sum(replay_batches.parse_name(n)[3] for n in names)} '
        'steps).')
  return replay_batches.save_index(path, directory, names, chunk, start,
                                   length, args.data_seed, items, before)


def main():
  args = parse()
  official_dump.require_official(args.official)
  import jax
  import jax.numpy as jnp
  import elements
  import ruamel.yaml as yaml
  from embodied.jax import internal
  from dreamerv3 import agent as agent_mod

  os.makedirs(args.out, exist_ok=True)
  index_path = args.index or os.path.join(args.out, 'index.npz')

  # --- Config: the official run's own, as main.py's make_agent builds it --
  config = elements.Config(yaml.YAML(typ='safe').load(
      elements.Path(os.path.join(args.run, 'config.yaml')).read()))
  jaxcfg = dict(config.jax)
  if jaxcfg['compute_dtype'] != 'float32' or jaxcfg['platform'] != 'cpu':
    raise SystemExit(f'The run used {jaxcfg}; this tool assumes float32 '
                     'on CPU.')
  jaxcfg.update(profiler=False, enable_policy=False, prealloc=False,
                precompile=bool(args.precompile))
  agent_config = elements.Config(
      **config.agent, logdir=args.out, seed=config.seed, jax=jaxcfg,
      batch_size=config.batch_size, batch_length=config.batch_length,
      replay_context=config.replay_context,
      report_length=config.report_length, replica=0, replicas=1)
  if config.consec_train != 1:
    raise SystemExit('consec_train != 1 is not supported (consec = 0).')
  b, t, c = config.batch_size, config.batch_length, config.replay_context

  f32 = np.float32
  obs_space = {k: elements.Space(f32, (2,)) for k in OBS_KEYS}
  obs_space.update(
      reward=elements.Space(f32, ()), is_first=elements.Space(bool, ()),
      is_last=elements.Space(bool, ()), is_terminal=elements.Space(bool, ()))
  act_space = {'action': elements.Space(f32, (2,), -1.0, 1.0)}

  # --- Record-only wrapper: the return rate without the offset ---------
  orig_imag_loss = agent_mod.imag_loss
  def imag_loss(act, rew, con, policy, value, slowvalue, retnorm, valnorm,
                advnorm, update, **kw):
    losses, outs, mets = orig_imag_loss(
        act, rew, con, policy, value, slowvalue, retnorm, valnorm, advnorm,
        update, **kw)
    _, rscale = retnorm.stats()  # After this update's EMA step.
    mets['ret_rate_raw'] = (jnp.abs(outs['ret'] / rscale) >= 1.0).mean()
    return losses, outs, mets
  agent_mod.imag_loss = imag_loss

  agent = agent_mod.Agent(obs_space, act_space, agent_config)

  if args.snapshot != 'init':
    with open(os.path.join(args.snapshot, 'agent.pkl'), 'rb') as f:
      ckpt = pickle.load(f)
    theirs, ours = set(ckpt['params']), set(agent.params)
    if theirs != ours:
      raise SystemExit(f'Checkpoint keys differ: only in the checkpoint '
                       f'{sorted(theirs - ours)}, only in the agent '
                       f'{sorted(ours - theirs)}.')
    agent.load(ckpt)
  counter0 = int(agent.n_batches)  # = the checkpoint's update count

  # --- The initial learner state ----------------------------------------
  params = jax.device_get(agent.params)
  out = {f'param/{k}': np.asarray(v) for k, v in params.items()}
  opt = agent_config.opt
  out.update({
      'meta/B': b, 'meta/T': t, 'meta/C': c,
      'meta/H': agent_config.imag_length, 'meta/warmup': opt.warmup,
      'meta/lr': opt.lr, 'meta/seed': config.seed,
      'meta/data_seed': args.data_seed, 'meta/jit': 1,
      'meta/updates': counter0,
      'meta/slow_rate': agent_config.slowvalue.rate,
      'meta/slow_every': agent_config.slowvalue.every,
      'meta/retnorm_rate': agent_config.retnorm.rate,
      'meta/retnorm_limit': agent_config.retnorm.limit,
      'meta/snapshot': np.asarray(os.path.abspath(args.snapshot)
                                  if args.snapshot != 'init' else 'init')})
  state_path = os.path.join(args.out, 'state.npz')
  if os.path.exists(state_path):  # E.g. a noise control: must be the same.
    with np.load(state_path) as old:
      same = set(old.files) == set(out) and all(
          np.array_equal(old[k], np.asarray(out[k])) for k in out)
    if not same:
      raise SystemExit(f'{state_path} holds another initial state; use '
                       'another --out.')
    print(f'The initial state equals {state_path}.')
  else:
    np.savez(state_path, **out)
    print(f'Wrote the initial state ({len(params)} tensors, updates '
          f'{counter0}) to {state_path}')

  reader = make_index(args, index_path, c + t, b)
  keys = sorted(agent.spaces)
  data = reader.batch(0)
  if sorted(data) != keys:
    raise SystemExit(f'Batch keys {sorted(data)} != agent inputs {keys}.')

  # --- Train ------------------------------------------------------------
  limit = agent_config.retnorm.limit
  lr_of = lambda count: opt.lr * (min(count, opt.warmup) / opt.warmup
                                  if opt.warmup else 1.0)
  state_keys = ('retnorm/lo/value', 'retnorm/hi/value', 'opt/state/3/count')
  count = int(params['opt/state/3/count'])
  carry = agent.init_train(b)

  def seeds(counter):
    """The update's seed as the training loop draws it (Agent._seeds, run
    seed and batch counter), or the same from --noise_seed."""
    if args.noise_seed is None:
      return agent._seeds(counter, agent.train_mirrored)
    rng = np.random.default_rng(seed=[args.noise_seed, int(counter)])
    value = rng.integers(0, np.iinfo(np.uint32).max, (2,), np.uint32)
    return internal.device_put(value, agent.train_mirrored)
  name = 'official' if args.noise_seed is None else (
      f'official_noise{args.noise_seed}')
  log = open(os.path.join(args.out, f'{name}.jsonl'), 'w')
  extra, start = {}, time.time()

  def write(i, mets):
    row = {'update': i, **{k: float(v) for k, v in mets.items()
                           if np.ndim(v) == 0}, **extra.pop(i)}
    offset = row['lo'] / row['S']
    for k in ('ret', 'ret_min', 'ret_max'):
      row[f'{k}_raw'] = row[k] + offset
    log.write(json.dumps(row) + '\n')
    log.flush()

  for i in range(args.num_updates):
    data = reader.batch(i)
    batch = internal.device_put(data, agent.train_sharded)
    batch['seed'] = seeds(counter0 + i)
    carry, _, mets = agent.train(carry, batch)  # outs['replay'] ignored
    lo, hi, new_count = (np.asarray(x) for x in jax.device_get(
        [agent.params[k] for k in state_keys]))
    extra[i] = dict(S=float(max(limit, hi - lo)), lo=float(lo),
                    hi=float(hi), lr=lr_of(count), time=time.time() - start)
    count = int(new_count)
    if mets:
      write(i - 1, mets)
    if i % 50 == 0 or i == args.num_updates - 1:
      print(f'update {i}: {extra[i]}', flush=True)
  write(args.num_updates - 1, agent._take_outs(agent.pending_mets))
  log.close()
  if args.final_state:
    params = jax.device_get(agent.params)
    np.savez(os.path.join(args.out, f'final_{name}.npz'),
             **{f'param/{k}': np.asarray(v) for k, v in params.items()})
  print(f'Wrote {args.num_updates} updates to {args.out}/{name}.jsonl '
        f'in {time.time() - start:.0f} s.')


if __name__ == '__main__':
  main()
