"""Dumps ONE update of the official DreamerV3 (JAX) agent to an .npz file.

Run with the official code's Python environment (JAX, ninjax, elements; no
TensorFlow) and a checkout of danijar/dreamerv3 (tested with e3f0224) on
its PYTHONPATH, also passed as --official (or $DREAMERV3_OFFICIAL) for its
configs.yaml. Nothing of the official code is copied here: it is imported
from that checkout, and its functions are wrapped at run time only to
*record* their inputs and outputs (jax.debug.callback; the computation is
unchanged). This diagnostic tool is the only place the project wraps
another code base's functions; the library never does.

  PYTHONPATH=/work/scratch/official /work/scratch/venv/bin/python \
      tools/parity/official_dump.py --official /work/scratch/official \
      --out /tmp/parity/official.npz

What it builds: the official agent for DMC reacher_easy's spaces (position,
to_target, velocity: (2,) float32; action (2,) in [-1, 1]), configs
`defaults` + `dmc_proprio` (size1m), compute dtype float32, CPU, optimizer
warm-up 0 (--warmup; with the default 1000 the first step has lr 0 in both
implementations and moves nothing). One fixed batch is generated here from
--data_seed (numpy) in the official replay layout (replay_context C=1,
stored latents `dyn/deter`, `dyn/stoch`, consec 0), then one `Agent.train`
call runs under jit with ninjax seed --seed.

Keys of the .npz (all float32/int unless noted):
  meta/*                 B, T, C, H, warmup, lr ...
  data/<key>             the batch [B, C+T, ...]
  param/<name>           parameters before the update (official names)
  new/<name>             every state entry after the update (params,
                         optimizer moments, retnorm, slow critic)
  rec/<tag>              recorded intermediates of the update's forward
                         pass inside the gradient computation (the values
                         the gradient is taken at), see RECORDED below
  grad/<name>            the gradient the optimizer received
  update/<name>          the optimizer's parameter update (added to params)
  metric/<name>          the train metrics

Sampling noise: JAX's and TF's generators differ, so the comparison script
teacher-forces ours with the official *samples* recorded here (posterior
one-hots rec/wm/post_stoch, imagined one-hots rec/img/stoch, imagined
actions rec/img/act) instead of matching the noise.
"""
import argparse
import collections
import os

import numpy as np

RECORDED = """
  wm/tokens           encoder outputs [B, T, E]
  wm/post_deter       posterior deter h_t [B, T, D]
  wm/post_stoch       posterior sample z_t (one-hot) [B, T, S, K]
  wm/post_logit       posterior logits (raw, before unimix) [B, T, S, K]
  wm/prior_logit      prior logits from h_t [B, T, S, K]
  wm/dyn, wm/rep      KL losses after free nats [B, T]
  wm/recon/<key>      decoder predictions (symlog space) [B, T, 2]
  img/deter, img/stoch, img/logit   imagined states tau=1..H [N, H, ...]
  img/act             actions a_tau, tau=0..H [N, H+1, A]
  imag/rew, imag/con  reward mean, continue prob on [N, H+1]
  imag/value_logits, imag/val, imag/slowval   critic on [N, H+1]
  imag/pol_mean, imag/pol_std   policy (tanh mean, std) on [N, H+1, A]
  imag/logpi, imag/ent          log pi(a), entropy [N, H]
  imag/ret, imag/adv, imag/weight   lambda-returns [N, H], advantages,
                      weights [N, H+1]; imag/roffset, imag/rscale
  imag/policy, imag/value       per-step losses [N, H]
  repl/ret, repl/repval, repl/boot  replay value loss pieces [B, T-1]
  loss/<term>         every loss term [B, T] as summed by Agent.loss
  loss/total          the scalar loss
"""


def parse():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--official', default=os.environ.get(
      'DREAMERV3_OFFICIAL', '/work/scratch/official'))
  p.add_argument('--out', default='/tmp/parity/official.npz')
  p.add_argument('--batch_size', type=int, default=16)
  p.add_argument('--batch_length', type=int, default=64)
  p.add_argument('--seed', type=int, default=0, help='ninjax seed')
  p.add_argument('--data_seed', type=int, default=0)
  p.add_argument('--warmup', type=int, default=0)
  p.add_argument('--configs', default='defaults,dmc_proprio')
  p.add_argument('--perturb', type=int, default=1, help=(
      '1: give the zero-initialised reward and critic output layers '
      'peaked, state-dependent values (and the return normaliser non-zero '
      'statistics) so that returns, advantages and the actor loss are not '
      'all zero, as they are at initialisation.'))
  p.add_argument('--warm_steps', type=int, default=2, help=(
      'unrecorded updates before the recorded one, so that the optimizer '
      'moments, its step count and the slow critic are non-trivial.'))
  p.add_argument('--jit', type=int, default=0, help=(
      '1: run the update under jax.jit as training does. XLA on CPU then '
      'contracts multiply-adds into FMAs, so the symmetric two-hot mean of '
      'zero logits is -0.1645, not 0 (reward/value at init). 0 (default): '
      'op by op, every primitive rounded as written.'))
  return p.parse_args()


OBS_KEYS = ('position', 'to_target', 'velocity')


def make_batch(rng, b, length, deter, stoch, classes):
  """A fixed, plausible reacher batch in the official replay layout."""
  data = {}
  for i, key in enumerate(OBS_KEYS):
    data[key] = (rng.normal(size=(b, length, 2)) * (0.5 + i)).astype(
        np.float32)
  data['reward'] = (rng.random((b, length)) < 0.3).astype(np.float32)
  data['is_first'] = np.zeros((b, length), bool)
  data['is_first'][:, 0] = True
  data['is_last'] = np.zeros((b, length), bool)
  # One episode boundary inside two rows (last, then first), and one
  # terminal, so the reset, bootstrap and continue paths are exercised.
  # (Rows modulo B: with B < 3 they share rows.)
  data['is_last'][0, length // 2] = True
  data['is_first'][0, length // 2 + 1] = True
  data['is_last'][1 % b, length // 3] = True
  data['is_first'][1 % b, length // 3 + 1] = True
  data['is_terminal'] = np.zeros((b, length), bool)
  data['is_last'][2 % b, length - 5] = True
  data['is_terminal'][2 % b, length - 5] = True
  data['is_first'][2 % b, length - 4] = True
  # Actions mostly in [-1, 1], some beyond (the RSSM divides by max(1, |a|)).
  data['action'] = np.clip(rng.normal(size=(b, length, 2)) * 0.7,
                           -1.5, 1.5).astype(np.float32)
  data['dyn/deter'] = (rng.normal(size=(b, length, deter)) * 0.3).astype(
      np.float32)
  index = rng.integers(0, classes, (b, length, stoch))
  data['dyn/stoch'] = np.eye(classes, dtype=np.float32)[index]
  data['consec'] = np.zeros((b, length), np.int32)
  data['stepid'] = rng.integers(0, 255, (b, length, 20)).astype(np.uint8)
  return data


def require_official(checkout):
  """Fails with the fix unless the official package imports (from the
  `checkout` on PYTHONPATH); JAX then runs on the CPU."""
  try:
    import dreamerv3  # noqa: F401  pylint: disable=import-outside-toplevel
  except ImportError:
    raise SystemExit(
        'The official dreamerv3 package is not importable: run with '
        f'PYTHONPATH={checkout} (a checkout of danijar/dreamerv3).')
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')


def main():
  args = parse()
  require_official(args.official)
  import jax
  jax.config.update('jax_platforms', 'cpu')
  import jax.numpy as jnp
  import elements
  import ninjax as nj
  import optax
  import ruamel.yaml as yaml
  import embodied.jax
  import embodied.jax.nets as nn
  from dreamerv3 import agent as agent_mod
  from dreamerv3 import rssm as rssm_mod

  nn.COMPUTE_DTYPE = jnp.float32  # --jax.compute_dtype float32

  # --- Config: defaults + dmc_proprio (size1m) --------------------------
  configs = yaml.YAML(typ='safe').load(
      elements.Path(os.path.join(args.official, 'dreamerv3/configs.yaml'))
      .read())
  config = elements.Config(configs['defaults'])
  for name in args.configs.split(','):
    if name != 'defaults':
      config = config.update(configs[name])
  config = config.update({
      'batch_size': args.batch_size, 'batch_length': args.batch_length,
      'seed': args.seed, 'jax.platform': 'cpu',
      'jax.compute_dtype': 'float32', 'agent.opt.warmup': args.warmup,
      'logdir': '/tmp/parity/official_logdir'})
  agent_config = elements.Config(
      **config.agent, logdir=config.logdir, seed=config.seed,
      jax=config.jax, batch_size=config.batch_size,
      batch_length=config.batch_length,
      replay_context=config.replay_context,
      report_length=config.report_length, replica=0, replicas=1)

  f32 = np.float32
  obs_space = {k: elements.Space(f32, (2,)) for k in OBS_KEYS}
  obs_space.update(
      reward=elements.Space(f32, ()), is_first=elements.Space(bool, ()),
      is_last=elements.Space(bool, ()), is_terminal=elements.Space(bool, ()))
  act_space = {'action': elements.Space(f32, (2,), -1.0, 1.0)}

  # --- Recording wrappers (record only; computation unchanged) ----------
  records = collections.defaultdict(list)

  def record(tag, value):
    # Skip ninjax's pre-runs (they use other seeds and are discarded).
    if nj.context().ignore:
      return

    def host(v):
      records[tag].append(jax.tree.map(np.asarray, v))
    jax.debug.callback(host, value)

  orig_enc = rssm_mod.Encoder.__call__
  def enc_call(self, carry, obs, reset, training, single=False):
    out = orig_enc(self, carry, obs, reset, training, single)
    if not single:
      record('wm/tokens', out[2])
    return out
  rssm_mod.Encoder.__call__ = enc_call

  orig_dec = rssm_mod.Decoder.__call__
  def dec_call(self, carry, feat, reset, training, single=False):
    out = orig_dec(self, carry, feat, reset, training, single)
    if not single:
      for key, recon in out[2].items():
        record(f'wm/recon/{key}', recon.pred())
    return out
  rssm_mod.Decoder.__call__ = dec_call

  orig_prior = rssm_mod.RSSM._prior
  def prior(self, feat):
    out = orig_prior(self, feat)
    if feat.ndim == 3:  # The world-model loss, not the imagination scan.
      record('wm/prior_logit', out)
    return out
  rssm_mod.RSSM._prior = prior

  orig_loss = rssm_mod.RSSM.loss
  def rssm_loss(self, *a, **k):
    carry, entries, losses, feat, metrics = orig_loss(self, *a, **k)
    record('wm/post_deter', feat['deter'])
    record('wm/post_stoch', feat['stoch'])
    record('wm/post_logit', feat['logit'])
    record('wm/dyn', losses['dyn'])
    record('wm/rep', losses['rep'])
    return carry, entries, losses, feat, metrics
  rssm_mod.RSSM.loss = rssm_loss

  orig_imagine = rssm_mod.RSSM.imagine
  def imagine(self, carry, policy, length, training, single=False):
    out = orig_imagine(self, carry, policy, length, training, single)
    if not single and callable(policy):
      _, feat, action = out
      for k in ('deter', 'stoch', 'logit'):
        record(f'img/{k}', feat[k])
    return out
  rssm_mod.RSSM.imagine = imagine

  orig_imag_loss = agent_mod.imag_loss
  def imag_loss(act, rew, con, policy, value, slowvalue, retnorm, valnorm,
                advnorm, update, **kw):
    losses, outs, mets = orig_imag_loss(
        act, rew, con, policy, value, slowvalue, retnorm, valnorm, advnorm,
        update, **kw)
    record('img/act', act['action'])
    record('imag/rew', rew)
    record('imag/con', con)
    record('imag/value_logits', value.logits)
    record('imag/val', value.pred())
    record('imag/slowval', slowvalue.pred())
    pol = policy['action']
    record('imag/pol_mean', pol.output.mean)
    record('imag/pol_std', pol.output.stddev)
    record('imag/logpi', pol.logp(jax.lax.stop_gradient(
        act['action']))[:, :-1])
    record('imag/ent', pol.entropy()[:, :-1])
    ret = outs['ret']
    roffset, rscale = retnorm.stats()
    disc = 1 if kw['contdisc'] else 1 - 1 / kw['horizon']
    record('imag/weight', jnp.cumprod(disc * con, 1) / disc)
    tarval = slowvalue.pred() if kw['slowtar'] else value.pred()
    record('imag/adv', (ret - tarval[:, :-1]) / rscale)
    record('imag/ret', ret)
    record('imag/roffset', roffset)
    record('imag/rscale', rscale)
    record('imag/policy', losses['policy'])
    record('imag/value', losses['value'])
    return losses, outs, mets
  agent_mod.imag_loss = imag_loss

  orig_repl_loss = agent_mod.repl_loss
  def repl_loss(last, term, rew, boot, value, slowvalue, valnorm, **kw):
    losses, outs, mets = orig_repl_loss(
        last, term, rew, boot, value, slowvalue, valnorm, **kw)
    record('repl/boot', boot)
    record('repl/ret', outs['ret'])
    record('repl/repval', losses['repval'])
    record('repl/val', value.pred())
    return losses, outs, mets
  agent_mod.repl_loss = repl_loss

  orig_agent_loss = agent_mod.Agent.loss
  def agent_loss(self, carry, obs, prevact, training):
    loss, aux = orig_agent_loss(self, carry, obs, prevact, training)
    for k, v in aux[2]['losses'].items():
      record(f'loss/{k}', v)
    record('loss/total', loss)
    return loss, aux
  agent_mod.Agent.loss = agent_loss

  # --- Build the inner (ninjax) agent, without the jit/sharding wrapper --
  model = object.__new__(agent_mod.Agent)
  model.__init__(obs_space, act_space, agent_config)

  opt = model.opt.opt
  def opt_update(grads, state, params=None):
    updates, state = opt.update(grads, state, params)
    record('optgrads', grads)
    record('optupdates', updates)
    return updates, state
  model.opt.opt = optax.GradientTransformation(opt.init, opt_update)

  rssm_cfg = agent_config.dyn.rssm
  rng = np.random.default_rng(args.data_seed)
  b, c, t = args.batch_size, agent_config.replay_context, args.batch_length
  data = make_batch(rng, b, c + t, rssm_cfg.deter, rssm_cfg.stoch,
                    rssm_cfg.classes)
  seed = np.array([args.seed, 0], np.uint32)

  _, carry = nj.pure(model.init_train)({}, b, seed=seed)
  params = nj.init(model.train)({}, carry, data, seed=seed)
  params = {k: np.asarray(v) for k, v in params.items()}
  if args.perturb:
    prng = np.random.default_rng(args.data_seed + 1)
    grid = np.linspace(-20, 20, 255).astype(np.float32)  # symlog of bins
    for head, center in (('rew', 0.3), ('val', 0.8)):
      kernel = params[f'{head}/head/logits/kernel']
      params[f'{head}/head/logits/kernel'] = (
          prng.normal(size=kernel.shape) * 0.05).astype(np.float32)
      params[f'{head}/head/logits/bias'] = (
          -2.0 * (grid - center) ** 2).astype(np.float32)
    params['retnorm/lo/value'] = np.float32(-0.3)
    params['retnorm/hi/value'] = np.float32(1.2)

  def train(params, carry, data, seed):
    return nj.pure(model.train)(params, carry, data, seed=seed)
  warm = jax.jit(train)
  for i in range(args.warm_steps):
    params, _ = warm(params, carry, data, np.array([args.seed, i + 1],
                                                    np.uint32))
    params = {k: np.asarray(v) for k, v in params.items()}
  jax.effects_barrier()
  records.clear()
  if args.jit:
    state, (_, _, metrics) = jax.jit(train)(params, carry, data, seed)
  else:
    with jax.disable_jit():
      state, (_, _, metrics) = train(params, carry, data, seed)
  jax.effects_barrier()

  out = {}
  out['meta/B'], out['meta/T'], out['meta/C'] = b, t, c
  out['meta/H'] = agent_config.imag_length
  out['meta/warmup'] = args.warmup
  out['meta/jit'] = args.jit
  out['meta/perturb'], out['meta/warm_steps'] = args.perturb, args.warm_steps
  out['meta/lr'] = agent_config.opt.lr
  out['meta/seed'], out['meta/data_seed'] = args.seed, args.data_seed
  for k, v in data.items():
    out[f'data/{k}'] = v
  for k, v in params.items():
    out[f'param/{k}'] = v
  for k, v in state.items():
    out[f'new/{k}'] = np.asarray(v)
  for k, v in metrics.items():
    out[f'metric/{k}'] = np.asarray(v)
  for tag, values in records.items():
    if len(values) != 1:
      raise RuntimeError(f'{tag} recorded {len(values)} times, expected 1.')
    value = values[0]
    if tag in ('optgrads', 'optupdates'):
      prefix = 'grad' if tag == 'optgrads' else 'update'
      for k, v in value.items():
        out[f'{prefix}/{k}'] = np.asarray(v)
    else:
      out[f'rec/{tag}'] = value
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(args.out, **out)
  print(f'Wrote {len(out)} arrays to {args.out}')
  print('loss', float(out['rec/loss/total']), 'grad_norm',
        float(out['metric/opt/grad_norm']))


if __name__ == '__main__':
  main()
