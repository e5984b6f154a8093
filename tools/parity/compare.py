"""Compares ONE update of dreamer_tf with the official dump, stage by stage.

  python -m tools.parity.compare /tmp/parity/official.npz [--json out.json]
  (from the repository root)

Input: the .npz of tools/parity/official_dump.py (official parameters, one
batch, recorded intermediates, gradients, parameters after the step).

1. Builds our Agent for the same spaces (size1m, float32, no XLA, batch and
   warm-up from the dump) and copies every official parameter into ours by
   the explicit name table `param_table` (fails on anything unmapped or
   shaped differently, in either direction).
2. Runs our update with the official *samples* (teacher forcing: posterior
   one-hots, imagined one-hots, imagined actions), because JAX's and TF's
   random generators cannot be matched. Our update has no seam to inject
   samples (`update.imagine` samples inside `RSSM.observe` / `RSSM.imagine`
   / `Actor.sample`), so `forward` recomposes `update.world_model_loss` and
   `update.imagine` from our public module methods (encode, obs_step,
   img_step, prior_logits, kl_losses, decode, reward, cont, critic, actor)
   and hands the result to the real `update.return_scale` and
   `update.loss`. Stage `self-check` proves the recomposition equals
   `update.imagine` + `update.loss` when it samples with our own seeds.
3. Prints max |ours - official| and the max relative difference per
   quantity, stage by stage, and the first quantity beyond tolerance.
4. Applies our LaProp to (a) the official gradients, (b) our gradients, and
   compares the parameters after the step with the official ones.
"""
import argparse
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
OBS_KEYS = ('position', 'to_target', 'velocity')
# Official loss names -> ours.
LOSS_NAMES = {'rew': 'reward', 'con': 'cont', 'dyn': 'dyn', 'rep': 'rep',
              'policy': 'policy', 'value': 'value', 'repval': 'repval',
              **{k: k for k in OBS_KEYS}}
# float32 tolerance: |d| <= ATOL + RTOL |official|.
ATOL, RTOL = 1e-4, 1e-3


# --- Parameter mapping --------------------------------------------------------


def _normact(prefix, normprefix, normact):
  """A NormAct(Linear) -> official `<prefix>` and `<normprefix>`."""
  return [(f'{prefix}/kernel', normact.layer.kernel),
          (f'{prefix}/bias', normact.layer.bias),
          (f'{normprefix}/scale', normact.norm.scale)]


def _mlp(prefix, mlp):
  """Our MLP -> official nets.MLP `<prefix>/linear{i}`, `<prefix>/norm{i}`."""
  out = []
  for i, layer in enumerate(mlp.hidden):
    out += _normact(f'{prefix}/linear{i}', f'{prefix}/norm{i}', layer)
  return out


def _linear(prefix, linear):
  return [(f'{prefix}/kernel', linear.kernel), (f'{prefix}/bias', linear.bias)]


def param_table(agent):
  """[(official name, our variable, our module)] for every parameter.

  The official names are those of dreamerv3 e3f0224 (ninjax paths); ours
  are object attributes, so Keras' auto-numbered paths play no role.
  """
  wm, rssm = agent.wm, agent.wm.rssm
  table = {}
  for i, layer in enumerate(wm.encoder.mlp.hidden):
    table['encoder'] = table.get('encoder', []) + _normact(
        f'enc/mlp{i}', f'enc/mlp{i}norm', layer)
  t = []
  for i, layer in enumerate(rssm.dynin):
    t += _normact(f'dyn/dynin{i}', f'dyn/dynin{i}norm', layer)
  for i, layer in enumerate(rssm.dynhid):
    t += _normact(f'dyn/dynhid{i}', f'dyn/dynhid{i}norm', layer)
  t += _linear('dyn/dyngru', rssm.dyngru)
  for i, layer in enumerate(rssm.obs_layers):
    t += _normact(f'dyn/obs{i}', f'dyn/obs{i}norm', layer)
  t += _linear('dyn/obslogit', rssm.obs_logit)
  for i, layer in enumerate(rssm.img_layers):
    t += _normact(f'dyn/prior{i}', f'dyn/prior{i}norm', layer)
  t += _linear('dyn/priorlogit', rssm.img_logit)
  table['rssm'] = t
  t = _mlp('dec/mlp', wm.decoder.mlp)
  for key in wm.decoder.vector_keys:
    t += _linear(f'dec/vec/{key}/pred', wm.decoder.heads[key])
  table['decoder'] = t
  table['reward'] = (_mlp('rew/mlp', wm.reward_head.mlp) +
                     _linear('rew/head/logits', wm.reward_head.out))
  table['cont'] = (_mlp('con/mlp', wm.cont_head.mlp) +
                   _linear('con/head/logit', wm.cont_head.out))
  t = _mlp('pol/mlp', agent.actor.mlp)
  for key in agent.actor.keys:
    mean, std = agent.actor.heads[key]
    t += _linear(f'pol/head/{key}/mean', mean)
    t += _linear(f'pol/head/{key}/stddev', std)
  table['actor'] = t
  table['critic'] = (_mlp('val/mlp', agent.critic.mlp) +
                     _linear('val/head/logits', agent.critic.out))
  table['slow_critic'] = (
      _mlp('slowval/mlp', agent.slow_critic.mlp) +
      _linear('slowval/head/logits', agent.slow_critic.out))
  return [(name, var, module) for module, pairs in table.items()
          for name, var in pairs]


OFFICIAL_MODULES = ('enc', 'dyn', 'dec', 'rew', 'con', 'pol', 'val', 'slowval')


def load_params(agent, dump, key='param'):
  """Assigns the official parameters to ours; loud on any mismatch."""
  table = param_table(agent)
  names = {n for n, _, _ in table}
  if len(names) != len(table):
    raise RuntimeError('Duplicate official names in the parameter table.')
  official = {k[len(key) + 1:]: dump[k] for k in dump.files
              if k.startswith(key + '/')
              and k.split('/')[1] in OFFICIAL_MODULES}
  if key == 'param':  # The slow critic is created from `val` on first use.
    for k in list(official):
      if k.startswith('val/'):
        official.setdefault('slow' + k, official[k])
  unmapped = sorted(set(official) - names)
  missing = sorted(names - set(official))
  ours = {id(v) for _, v, _ in table}
  uncovered = [v.path for v in agent.trainable_variables + agent.slow_variables
               if id(v) not in ours]
  if unmapped or missing or uncovered:
    raise RuntimeError(
        f'Parameter mapping incomplete: official not mapped {unmapped}; '
        f'table names absent from the dump {missing}; our variables not in '
        f'the table {uncovered}.')
  for name, var, _ in table:
    value = official[name]
    if tuple(var.shape) != value.shape:
      raise RuntimeError(f'{name}: official shape {value.shape}, ours '
                         f'{tuple(var.shape)} ({var.path}).')
    var.assign(value)
  return table


# --- Our agent --------------------------------------------------------------


def build_agent(dump, extra_bindings=()):
  import gin
  from dreamer_tf import config
  from dreamer_tf import spaces
  from dreamer_tf.model import agent as agent_lib
  b, t = int(dump['meta/B']), int(dump['meta/T'])
  bindings = [
      'Agent.precision = "float32"', 'Agent.jit_compile = False',
      f'Agent.batch_size = {b}', f'Agent.batch_length = {t}',
      f'Agent.replay_context = {int(dump["meta/C"])}',
      f'Agent.imag_length = {int(dump["meta/H"])}',
      f'LaProp.warmup = {int(dump["meta/warmup"])}',
      f'LaProp.lr = {float(dump["meta/lr"])}',
      # Decisions (spec) that differ from HEAD: only the discrete actor's
      # unimix, which a continuous action space does not use; bound anyway.
      'Actor.unimix = 0.0',
  ] + list(extra_bindings)
  gin.clear_config()
  config.parse([os.path.join(ROOT, 'gin_configs/sizes/size1m.gin')],
               bindings)
  obs = {k: spaces.Space((2,), 'float32') for k in OBS_KEYS}
  obs.update(reward=spaces.Space((), 'float32'),
             is_first=spaces.Space((), 'bool'),
             is_last=spaces.Space((), 'bool'),
             is_terminal=spaces.Space((), 'bool'))
  act = {'action': spaces.Space((2,), 'float32', low=-1.0, high=1.0)}
  return agent_lib.Agent(obs, act), bindings


def our_batch(dump):
  data = {k[5:]: dump[k] for k in dump.files if k.startswith('data/')}
  data['deter'] = data.pop('dyn/deter')
  data['stoch'] = data.pop('dyn/stoch')
  data.pop('consec'), data.pop('stepid')
  return data


# --- Our update, recomposed with an optional sample source -------------------


def forward(agent, data, samples=None, seed=(0, 0)):
  """`update.imagine` recomposed; samples: official {post_stoch [B,T,S,K],
  img_stoch [N,H,S,K], img_act [N,H+1,A]} or None to sample exactly as
  `update.imagine` does with `seed`. Returns (Imagination, trace)."""
  import tensorflow as tf
  from dreamer_tf.model import behavior
  from dreamer_tf.model import distributions as dists
  from dreamer_tf.model import update
  sg = tf.stop_gradient
  seed = tf.constant(seed, tf.int32)
  wm_seed, img_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  wm, rssm = agent.wm, agent.wm.rssm
  data = {k: tf.constant(v) for k, v in data.items()}
  obs, prev_actions, actions, state = agent.split_context(data)
  b, t = obs['is_first'].shape[:2]
  trace = {}
  # World model (WorldModel.loss with RSSM.observe unrolled).
  tokens = wm.encode(obs)
  trace['wm/tokens'] = tokens
  step_seeds = tf.random.experimental.stateless_split(wm_seed, t)
  deter, stoch = state['deter'], state['stoch']
  deters, stochs, logits_all = [], [], []
  for i in range(t):
    new, logits = rssm.obs_step(
        dict(deter=deter, stoch=stoch), prev_actions[:, i], tokens[:, i],
        obs['is_first'][:, i], step_seeds[i])
    deter, stoch = new['deter'], new['stoch']
    if samples is not None:  # Official sample, our straight-through grad.
      probs = rssm.dist(logits).probs
      stoch = sg(tf.constant(samples['post_stoch'][:, i])) + (
          probs - sg(probs))
    deters.append(deter), stochs.append(stoch), logits_all.append(logits)
  post = dict(deter=tf.stack(deters, 1), stoch=tf.stack(stochs, 1))
  post_logits = tf.stack(logits_all, 1)
  prior_logits = rssm.prior_logits(post['deter'])
  dyn, rep, metrics = rssm.kl_losses(post_logits, prior_logits)
  trace.update({'wm/post_deter': post['deter'], 'wm/post_logit': post_logits,
                'wm/prior_logit': prior_logits, 'wm/dyn': dyn, 'wm/rep': rep})
  losses = dict(dyn=dyn, rep=rep)
  flat = dict(deter=tf.reshape(post['deter'], [b * t, -1]),
              stoch=tf.reshape(post['stoch'], [b * t, *post['stoch'].shape[2:]]))
  for key, dist in wm.decode(flat).items():
    target = tf.reshape(obs[key], [b * t, *wm.obs_space[key].shape])
    losses[key] = tf.reshape(dist.loss(target), [b, t])
    trace[f'wm/recon/{key}'] = tf.reshape(dist.pred, [b, t, -1])
  feat = rssm.feat(post)
  losses['reward'] = wm.reward(
      feat if agent.reward_grad else sg(feat)).loss(obs['reward'])
  cont = 1.0 - tf.cast(obs['is_terminal'], tf.float32)
  if wm.contdisc:
    cont *= 1.0 - 1.0 / wm.horizon
  losses['cont'] = wm.cont(feat).loss(cont)
  model = update.WorldModelOut(
      losses=losses, metrics=metrics, posterior=post, feat=feat,
      replay={k: obs[k] for k in ('reward', 'is_first', 'is_last',
                                  'is_terminal')},
      actions=actions, weight=None, tokens=tokens)
  # Imagination (update.imagine with RSSM.imagine unrolled).
  n, horizon = b * t, agent.imag_length
  start = {k: sg(tf.reshape(v, [n, *v.shape[2:]])) for k, v in post.items()}
  seeds = tf.random.experimental.stateless_split(img_seed, 2 * horizon + 1)
  pairs = tf.reshape(seeds[1:], [horizon, 2, 2])
  policy = lambda f, s: agent.actor.sample(sg(f), s)
  if samples is None:
    action = policy(rssm.feat(start), seeds[0])
  else:
    action = tf.constant(samples['img_act'][:, 0])
  states, acts, img_logits = [start], [action], []
  cur = start
  for i in range(horizon):
    new, logits = rssm.img_step(cur, action, pairs[i, 0])
    if samples is not None:
      new = dict(deter=new['deter'],
                 stoch=tf.constant(samples['img_stoch'][:, i]))
      action = tf.constant(samples['img_act'][:, i + 1])
    else:
      action = policy(rssm.feat(new), pairs[i, 1])
    states.append(new), acts.append(action), img_logits.append(logits)
    cur = new
  states = {k: tf.stack([s[k] for s in states], 1) for k in ('deter', 'stoch')}
  img_actions = tf.stack(acts, 1)
  trace['img/deter'] = states['deter'][:, 1:]
  trace['img/logit'] = tf.stack(img_logits, 1)
  img_feat = sg(rssm.feat(states))
  reward = wm.reward(img_feat).mean()
  cont = wm.cont(img_feat).mean()
  disc = 1.0 if agent.contdisc else 1.0 - 1.0 / agent.horizon
  value_logits = agent.critic(img_feat).logits
  value = sg(dists.SymexpTwoHot(value_logits).mean())
  ret, weight = behavior.imagination_returns(
      reward, cont * disc, value, agent.lam, disc)
  pol = agent.actor(img_feat)['action']
  trace.update({
      'imag/rew': reward, 'imag/con': cont, 'imag/value_logits': value_logits,
      'imag/val': value, 'imag/ret': ret, 'imag/weight': weight,
      'imag/slowval': agent.slow_critic(img_feat).mean(),
      'imag/pol_mean': pol.loc, 'imag/pol_std': pol.scale,
      'imag/logpi': pol.log_prob(img_actions)[:, :-1],
      'imag/ent': pol.entropy()[:, :-1]})
  imagination = update.Imagination(
      world_model=model, feat=img_feat, actions=sg(img_actions),
      value_logits=value_logits, reward=reward, cont=cont, ret=ret,
      weight=weight)
  return imagination, trace


def our_update(agent, data, samples):
  """Loss, gradients and trace of our update with the given samples."""
  import tensorflow as tf
  from dreamer_tf.model import behavior
  from dreamer_tf.model import update
  variables = agent.trainable_variables
  with tf.GradientTape() as tape:
    imagination, trace = forward(agent, data, samples)
    scale = update.return_scale(agent.retnorm, imagination.ret)
    loss = update.loss(agent, imagination, scale.scale)
  grads = tape.gradient(loss.total, variables)
  b, t = imagination.world_model.replay['reward'].shape[:2]
  trace['imag/rscale'] = scale.scale
  trace['imag/roffset'] = scale.lo
  trace['imag/adv'] = behavior.advantage(
      imagination.ret, trace['imag/val'], scale.scale)
  trace['repl/boot'] = tf.reshape(imagination.ret[:, 0], [b, t])
  for name, theirs in LOSS_NAMES.items():
    trace[f'loss/{theirs}'] = loss.losses[theirs]
  trace['imag/policy'] = loss.losses['policy']
  trace['imag/value'] = loss.losses['value']
  trace['repl/repval'] = loss.losses['repval']
  trace['loss/total'] = loss.total
  return loss, grads, scale, trace


# --- Comparison ---------------------------------------------------------------


def diff(ours, theirs):
  ours = np.asarray(ours, np.float64)
  theirs = np.asarray(theirs, np.float64)
  if ours.shape != theirs.shape:
    return dict(shape=f'{ours.shape} vs {theirs.shape}', ok=False,
                max_abs=float('nan'), max_rel=float('nan'))
  d = np.abs(ours - theirs)
  rel = d / (np.abs(theirs) + 1e-8)
  ok = bool(np.all(d <= ATOL + RTOL * np.abs(theirs)))
  return dict(max_abs=float(d.max(initial=0)), max_rel=float(
      rel.max(initial=0)), mean_ours=float(ours.mean()),
      mean_official=float(theirs.mean()), ok=ok)


def diff_delta(ours, theirs, rtol=1e-2):
  """Like `diff`, for a parameter step: ok when max |ours - theirs| <=
  rtol * max |theirs| (LaProp divides by sqrt(nu), so near-zero gradients
  turn float32 noise into relative step noise)."""
  d = np.abs(ours - theirs)
  scale = np.abs(theirs).max(initial=0)
  return dict(max_abs=float(d.max(initial=0)),
              max_rel=float(d.max(initial=0) / (scale + 1e-30)),
              mean_ours=float(np.abs(ours).mean()),
              mean_official=float(np.abs(theirs).mean()),
              ok=bool(d.max(initial=0) <= rtol * scale + 1e-12))


# (stage, our trace key, official rec key, how to reshape the official value)
STAGES = [
    ('world model', ['wm/tokens', 'wm/post_deter', 'wm/post_logit',
                     'wm/prior_logit', 'wm/dyn', 'wm/rep',
                     *(f'wm/recon/{k}' for k in OBS_KEYS)]),
    ('world-model losses', ['loss/dyn', 'loss/rep', 'loss/reward',
                            'loss/cont', *(f'loss/{k}' for k in OBS_KEYS)]),
    ('imagination', ['img/deter', 'img/logit', 'imag/rew', 'imag/con',
                     'imag/value_logits', 'imag/val', 'imag/slowval',
                     'imag/weight', 'imag/ret', 'imag/roffset',
                     'imag/rscale', 'imag/adv']),
    ('actor and critic', ['imag/pol_mean', 'imag/pol_std', 'imag/logpi',
                          'imag/ent', 'imag/policy', 'imag/value']),
    ('replay value', ['repl/boot', 'repl/repval']),
    ('loss terms (means) and total', ['mean:' + v for v in LOSS_NAMES.values()]
     + ['loss/total']),
]


def official_value(dump, key):
  """The official value for one of our trace keys."""
  rev = {v: k for k, v in LOSS_NAMES.items()}
  if key.startswith('mean:'):
    return dump[f'rec/loss/{rev[key[5:]]}'].mean()
  if key.startswith('loss/') and key != 'loss/total':
    value = dump[f'rec/loss/{rev[key[5:]]}']
    if rev[key[5:]] in ('policy', 'value'):
      return value  # [B, T] there (mean over H per start); ours [N, H].
    return value
  return dump[f'rec/{key}']


def our_value(trace, key, dump):
  if key.startswith('mean:'):
    return np.mean(trace[f'loss/{key[5:]}'])
  value = np.asarray(trace[key])
  if key in ('loss/policy', 'loss/value'):
    b, t = int(dump['meta/B']), int(dump['meta/T'])
    value = value.mean(1).reshape(b, t)
  return value


def compare(dump, agent, table, loss, grads, trace, official_grad_step,
            our_grad_step):
  rows = []
  for stage, keys in STAGES:
    for key in keys:
      rows.append(dict(stage=stage, quantity=key, **diff(
          our_value(trace, key, dump), official_value(dump, key))))
  # Gradients: per module norms and per tensor.
  by_var = {id(v): g for v, g in zip(agent.trainable_variables, grads)}
  modules = {}
  for name, var, module in table:
    if module == 'slow_critic':
      continue
    ours = np.asarray(by_var[id(var)])
    theirs = dump[f'grad/{name}']
    modules.setdefault(module, [0.0, 0.0])
    modules[module][0] += float(np.sum(np.square(ours, dtype=np.float64)))
    modules[module][1] += float(np.sum(np.square(theirs, dtype=np.float64)))
    rows.append(dict(stage='gradients (per tensor)', quantity=name,
                     **diff(ours, theirs)))
  for module, (ours, theirs) in modules.items():
    rows.append(dict(stage='gradient norms (per module)', quantity=module,
                     **diff(np.sqrt(ours), np.sqrt(theirs))))
  total = [np.sqrt(sum(v[i] for v in modules.values())) for i in (0, 1)]
  rows.append(dict(stage='gradient norms (per module)', quantity='total',
                   **diff(total[0], total[1])))
  # The step itself (new - old, ~lr = 4e-5) is far below the tolerance of
  # the parameters (~0.1), so the deltas are compared, each relative to
  # its tensor's largest official delta.
  for label, values in (('optimizer step on official grads',
                         official_grad_step),
                        ('optimizer step on our grads', our_grad_step)):
    for name, value in values.items():
      old = dump[f'param/{name}'] if f'param/{name}' in dump.files else (
          dump[f'param/{name[4:]}'])  # slowval/* starts as val/*
      old = np.asarray(old, np.float64)
      rows.append(dict(stage=label, quantity=name, **diff_delta(
          np.asarray(value, np.float64) - old,
          np.asarray(dump[f'new/{name}'], np.float64) - old)))
  return rows


def optimizer_step(agent, table, dump, grads):
  """Our LaProp (+ slow critic EMA, return normaliser) from the official
  parameters with `grads`; returns {official name: new value}."""
  import tensorflow as tf
  from dreamer_tf.model import behavior
  load_state(agent, table, dump)
  opt = agent.optimizer
  opt.apply(grads, agent.trainable_variables)
  behavior.ema_update(agent.slow_critic.weights, agent.critic.weights,
                      agent.slow_rate)
  return {name: np.asarray(var) for name, var, _ in table}


def self_check(agent, data):
  """Our recomposed update with our own sampling == update.imagine +
  update.loss (same seed): the harness itself adds no difference."""
  import tensorflow as tf
  from dreamer_tf.model import update
  seed = (3, 4)
  imagination, _ = forward(agent, data, None, seed)
  scale = update.return_scale(agent.retnorm, imagination.ret)
  mine = update.loss(agent, imagination, scale.scale)
  real = update.imagine(agent, {k: tf.constant(v) for k, v in data.items()},
                        tf.constant(seed, tf.int32))
  real_scale = update.return_scale(agent.retnorm, real.ret)
  theirs = update.loss(agent, real, real_scale.scale)
  rows = [dict(stage='self-check (recomposition vs update.py)',
               quantity=f'loss/{k}', **diff(np.mean(mine.losses[k]),
                                           np.mean(theirs.losses[k])))
          for k in sorted(mine.losses)]
  rows.append(dict(stage='self-check (recomposition vs update.py)',
                   quantity='imag/ret', **diff(imagination.ret, real.ret)))
  return rows


def load_state(agent, table, dump):
  """Parameters, slow critic, return normaliser and LaProp state (official
  chain: state/1 = (step, nu) of scale_by_rms, state/2 = (step, mu) of
  scale_by_momentum) before the recorded update."""
  load_params(agent, dump)
  agent.retnorm.lo.assign(dump['param/retnorm/lo/value'])
  agent.retnorm.hi.assign(dump['param/retnorm/hi/value'])
  opt = agent.optimizer
  step = int(dump['param/opt/state/1/0'])
  if step != int(dump['param/opt/state/2/0']):
    raise RuntimeError('Official rms and momentum step counts differ.')
  opt.iterations.assign(step)
  for name, var, module in table:
    if module == 'slow_critic':
      continue
    i = opt._get_variable_index(var)
    opt._nu[i].assign(dump[f'param/opt/state/1/1/{name}'])
    opt._mu[i].assign(dump[f'param/opt/state/2/1/{name}'])


def samples_of(dump):
  return dict(post_stoch=dump['rec/wm/post_stoch'],
              img_stoch=dump['rec/img/stoch'], img_act=dump['rec/img/act'])


def run(path, check=True, extra_bindings=()):
  dump = np.load(path)
  agent, bindings = build_agent(dump, extra_bindings)
  table = param_table(agent)
  load_state(agent, table, dump)
  data = our_batch(dump)
  rows = self_check(agent, data) if check else []
  loss, grads, scale, trace = our_update(agent, data, samples_of(dump))
  official_grads = [None] * len(agent.trainable_variables)
  index = {id(v): i for i, v in enumerate(agent.trainable_variables)}
  for name, var, module in table:
    if module != 'slow_critic':
      official_grads[index[id(var)]] = dump[f'grad/{name}']
  step_official = optimizer_step(agent, table, dump, official_grads)
  step_ours = optimizer_step(agent, table, dump, grads)
  rows += compare(dump, agent, table, loss, grads, trace, step_official,
                  step_ours)
  # Return normaliser after the update.
  rows.append(dict(stage='return normaliser', quantity='retnorm/lo',
                   **diff(scale.lo, dump['new/retnorm/lo/value'])))
  rows.append(dict(stage='return normaliser', quantity='retnorm/hi',
                   **diff(scale.hi, dump['new/retnorm/hi/value'])))
  return rows, bindings


def markdown(rows, bindings, summarize_tensors=True):
  lines = ['Our gin bindings: ' + '; '.join(bindings), '',
           f'Tolerance: |ours - official| <= {ATOL} + {RTOL} |official|; '
           'optimizer steps: new - old compared, max rel = max|d| / '
           'max|official step| <= 1e-2, means are of |step|.', '']
  stage = None
  first = next((r for r in rows if not r['ok']
                and not r['stage'].startswith('self-check')), None)
  for r in rows:
    if summarize_tensors and r['stage'] in (
        'gradients (per tensor)', 'optimizer step on official grads',
        'optimizer step on our grads') and r['ok']:
      continue
    if r['stage'] != stage:
      stage = r['stage']
      lines += ['', f'### {stage}', '',
                '| quantity | max abs | max rel | mean ours | mean official '
                '| ok |', '|---|---|---|---|---|---|']
    lines.append(
        f"| {r['quantity']} | {r['max_abs']:.3g} | {r['max_rel']:.3g} | "
        f"{r.get('mean_ours', float('nan')):.6g} | "
        f"{r.get('mean_official', float('nan')):.6g} | "
        f"{'yes' if r['ok'] else '**NO**'} |")
  for label in ('gradients (per tensor)', 'optimizer step on official grads',
                'optimizer step on our grads'):
    n = sum(r['stage'] == label for r in rows)
    bad = sum(r['stage'] == label and not r['ok'] for r in rows)
    lines.append(f'\n{label}: {n - bad}/{n} tensors within tolerance '
                 '(only the others are listed above).')
  lines.append('\nFirst divergence: ' + (
      f"{first['stage']} / {first['quantity']}" if first else 'none'))
  return '\n'.join(lines)


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('dump')
  p.add_argument('--json', default=None)
  p.add_argument('--no_self_check', action='store_true')
  p.add_argument('--gin_param', action='append', default=[])
  args = p.parse_args()
  rows, bindings = run(args.dump, not args.no_self_check, args.gin_param)
  print(markdown(rows, bindings))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(dict(bindings=bindings, rows=rows), f, indent=1)


if __name__ == '__main__':
  main()
