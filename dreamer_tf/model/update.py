"""The loss of one update (§3), top to bottom as in the official `loss()`.

On a replay batch [B, C + T] (C = replay_context context steps, §4.3):

  world_model_loss  observe the T trained steps: reconstruction, reward,
                    continue, dynamics and representation losses (§3.2)
  imagine           H steps from all N = B*T posteriors (§3.3), reward,
                    continue and value predictions, λ-returns (§3.4)
  return_scale      S from the returns' percentiles (§3.5), over the
                    global batch
  behavior_losses   actor (§3.6) and imagination critic (§3.7) given S
  replay_value_loss critic on the replayed steps, bootstrapped from the
                    imagined returns (§3.7)
  loss              all of them weighted by the loss scales (§3.2, §3.7)
  priority          per replayed step, the signals prioritized replay
                    combines (`model/priority.py`)

With exploration on (`explore.py`) the ensemble learns from the world
model's posteriors, imagination adds an intrinsic reward stream with its
own critic and return scale, and the actor's advantage weights the streams
(`behavior.imagination_losses`). Replay batches drawn by priority carry
importance weights `weight` [B] that scale the world-model losses.

`imagine` and `loss(imagination, scale)` are the two phases of the update:
with several replicas the returns of all replicas must be gathered before
S exists (placement.py), so S is an argument, not computed inside `loss`.
Nothing here assigns a variable: the caller updates the return normaliser,
the optimizer and the slow critic (placement.py).

`agent` is the `Agent` whose modules and settings define the loss (the
official code's `self`).
"""
import contextlib
from typing import NamedTuple

import keras
import tensorflow as tf

from dreamer_tf.model import behavior
from dreamer_tf.model import distributions as dists
from dreamer_tf.model import explore

EXTRINSIC, INTRINSIC = behavior.EXTRINSIC, explore.INTRINSIC

sg = tf.stop_gradient


class WorldModelOut(NamedTuple):
  """The world model on the T trained steps of a replay batch (§3.2)."""
  losses: dict  # {dyn, rep, <obs keys>, reward, cont: [B, T]}
  metrics: dict  # {dyn_ent, rep_ent: []}
  posterior: dict  # {deter [B, T, D], stoch [B, T, S, K]}, with gradient
  feat: tf.Tensor  # [B, T, F] posterior features f_t, with gradient
  replay: dict  # {reward, is_first, is_last, is_terminal: [B, T]}
  actions: tf.Tensor  # [B, T, A] a_t taken at each trained step
  weight: tf.Tensor  # [B] importance weights of the rows, or None
  tokens: tf.Tensor = None  # [B, T, E] the encoder's embeddings e_t

  @property
  def latents(self):
    """The posterior to write back to replay (§4.3), stop-gradient."""
    return {k: sg(v) for k, v in self.posterior.items()}


class Stream(NamedTuple):
  """One reward stream of imagination: its rewards, critic and returns."""
  reward: tf.Tensor  # [N, H+1] r_τ (entry τ rewards reaching state τ)
  value_logits: tf.Tensor  # [N, H+1, bins] its fast critic, with gradient
  ret: tf.Tensor  # [N, H] λ-returns R_τ, stop-gradient


class Imagination(NamedTuple):
  """Trajectories imagined from every posterior state (§3.3, §3.4).

  `reward`, `value_logits` and `ret` are the extrinsic stream's;
  `intrinsic` is the exploration stream (None without exploration).
  """
  world_model: WorldModelOut
  feat: tf.Tensor  # [N, H+1, F] imagined features, stop-gradient
  actions: tf.Tensor  # [N, H+1, A] a_τ taken at state τ, stop-gradient
  value_logits: tf.Tensor  # [N, H+1, bins] fast critic, with gradient
  reward: tf.Tensor  # [N, H+1] predicted r̂_τ
  cont: tf.Tensor  # [N, H+1] predicted ĉ_τ (contains γ)
  ret: tf.Tensor  # [N, H] λ-returns R_τ, stop-gradient
  weight: tf.Tensor  # [N, H+1] w_τ = Π_{k<=τ} ĉ_k, stop-gradient
  intrinsic: Stream = None  # The intrinsic stream (explore.py) or None.
  explore_loss: tf.Tensor = None  # [B, T-1] the ensemble's loss or None.
  # With `Agent.actor_grad='backprop'` (2023 recipe): R_τ and v_τ with the
  # gradient of the imagined dynamics, reaching the actor's parameters
  # only (`_actor_only`); None with REINFORCE.
  ret_grad: tf.Tensor = None  # [N, H]
  value_grad: tf.Tensor = None  # [N, H+1] the fast critic's mean

  @property
  def streams(self):
    """{stream: Stream}, the extrinsic one first."""
    out = {EXTRINSIC: Stream(self.reward, self.value_logits, self.ret)}
    if self.intrinsic is not None:
      out[INTRINSIC] = self.intrinsic
    return out


class ReturnScale(NamedTuple):
  """The return normaliser after this batch (§3.5), not yet assigned."""
  lo: tf.Tensor  # [] EMA of the 5th percentile
  hi: tf.Tensor  # [] EMA of the 95th percentile
  scale: tf.Tensor  # [] S = max(1, hi - lo), stop-gradient


class Loss(NamedTuple):
  """The loss of one update and its metrics."""
  total: tf.Tensor  # [] L = Σ_k scale_k mean(L_k)
  losses: dict  # {name: per-step loss}, one per `Agent.loss_scales` key
  metrics: dict  # {name: []} loss/<name> means, KL, imagination stats
  explore: tf.Tensor = None  # [] the ensemble's loss (exploration) or None


def world_model_loss(agent, data, seed):
  """World-model losses on the T trained steps (§3.2) -> WorldModelOut.

  data: {key: [B, C + T, ...]}, optionally `weight` [B] (importance
  weights of prioritized replay); the carry starts from the stored latent
  of step C-1 (§4.3, `Agent.split_context`). With `agent.reward_grad`
  False the reward head trains on stop-gradient features.
  """
  obs, prev_actions, actions, state = agent.split_context(data)
  losses, posterior, _, metrics, tokens = agent.wm.loss(
      obs, prev_actions, state, seed, reward_grad=agent.reward_grad)
  weight = data.get('weight')
  return WorldModelOut(
      losses=losses, metrics=metrics, posterior=posterior,
      feat=agent.wm.rssm.feat(posterior),
      replay={k: obs[k] for k in (
          'reward', 'is_first', 'is_last', 'is_terminal')},
      actions=actions,
      weight=None if weight is None else tf.cast(weight, tf.float32),
      tokens=tokens)


def imagine(agent, data, seed):
  """World model, then imagination from all its posteriors -> Imagination.

  Starts: the B*T posterior states, stop-gradient (§3.3); the actor samples
  a_τ ~ π(·|sg(f_τ)) for τ = 0..H. Predictions r̂, ĉ and the fast critic's
  v on every imagined state give the λ-returns R and weights w (§3.4).
  Needs no collective: the first phase of the update.
  """
  wm_seed, img_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  model = world_model_loss(agent, data, wm_seed)
  b, t = model.posterior['deter'].shape[:2]
  start = {k: sg(tf.reshape(v, [b * t, *v.shape[2:]]))
           for k, v in model.posterior.items()}  # [N, ...]
  policy = lambda feat, s: agent.actor.sample(sg(feat), s)
  disc = 1.0 if agent.contdisc else 1.0 - 1.0 / agent.horizon
  backprop = agent.actor_grad == 'backprop'
  ret_grad = value_grad = None
  with _actor_only(agent) if backprop else contextlib.nullcontext():
    states, actions = agent.wm.rssm.imagine(
        start, policy, agent.imag_length, img_seed)
    # With backprop, the features, rewards and values of the returns carry
    # the gradient of the (reparameterised) actions through the frozen
    # dynamics (the continuation enters the returns as a constant);
    # otherwise everything below is stop-gradient.
    feat_grad = agent.wm.rssm.feat(states)  # [N, H+1, F]
    reward_feat = feat_grad if backprop else sg(feat_grad)
    reward = agent.wm.reward(reward_feat).mean()  # [N, H+1]
    cont = agent.wm.cont(reward_feat).mean()
    if backprop:
      value_grad = agent.critic(feat_grad).mean()
      # Through rewards and values only: the 2023 code took the
      # continuation's mode, which passes no gradient.
      ret_grad = behavior.lambda_return(
          tf.zeros_like(cont), 1.0 - sg(cont) * disc, reward, value_grad,
          1.0, agent.lam)
  feat = sg(feat_grad)
  reward, cont = sg(reward), sg(cont)
  # One critic pass serves the returns (stop-gradient mean) and the
  # critic loss (logits with gradient, in `behavior_losses`).
  value_logits = agent.critic(feat).logits
  value = sg(dists.SymexpTwoHot(value_logits).mean())
  ret, weight = behavior.imagination_returns(
      reward, cont * disc, value, agent.lam, disc)
  intrinsic = explore_loss = None
  if agent.ensemble is not None:
    target = (model.tokens if agent.exploration.target == 'embed'
              else model.posterior['stoch'])
    explore_loss = agent.ensemble.loss(
        sg(model.feat), model.actions, sg(target), model.replay['is_first'])
    intr_reward = agent.ensemble.intrinsic_reward(
        feat, sg(actions), states['deter'],
        lambda f: agent.wm.reward(f).mean())
    intr_logits = agent.critics[INTRINSIC](feat).logits
    intr_value = sg(dists.SymexpTwoHot(intr_logits).mean())
    intr_ret, _ = behavior.imagination_returns(
        intr_reward, cont * disc, intr_value, agent.lam, disc)
    intrinsic = Stream(intr_reward, intr_logits, intr_ret)
  return Imagination(
      world_model=model, feat=feat, actions=sg(actions),
      value_logits=value_logits, reward=reward, cont=cont, ret=ret,
      weight=weight, intrinsic=intrinsic, explore_loss=explore_loss,
      ret_grad=ret_grad, value_grad=value_grad)


def _actor_only(agent):
  """A scope in which every parameter but the actor's reads as a constant.

  The backprop actor (2023 recipe) differentiates the imagined returns
  through the dynamics, reward, continue and critic networks; in the
  official 2023 code only the actor's optimizer applies that gradient. With
  one optimizer over all parameters, the same is had by reading the other
  parameters as stop-gradient values while imagining: the returns' gradient
  then reaches the actor alone. Values are read through any enclosing
  StatelessScope (the multi-replica path), so they are this replica's. A
  StatelessScope does not fall back to an enclosing one, so every variable
  of the agent's networks is mapped (the non-trainable ones and the slow
  critics as plain values), and no read inside escapes to the replica's
  real variable. (Optimizer state is not read here and stays unmapped.)
  """
  actor = {id(v) for v in agent.actor.trainable_weights}
  trainable = agent.trainable_variables + agent.explore_variables
  networks = list(agent.modules.values()) + list(agent.slow_critics.values())
  if agent.ensemble is not None:
    networks.append(agent.ensemble)
  constant = [v for m in networks for v in m.non_trainable_weights]
  return keras.StatelessScope(state_mapping=[
      (v, v.value if id(v) in actor else sg(v.value)) for v in trainable] +
      [(v, v.value) for v in constant])


def return_scale(retnorm, ret):
  """S from the percentiles of `ret`, all returns of the global batch (§3.5).

  retnorm: the agent's `ReturnNormalizer`, read but not assigned.
  """
  lo, hi = retnorm.updated(retnorm.percentiles(ret))
  return ReturnScale(lo, hi, retnorm.scale_of(lo, hi))


def return_scales(agent, returns):
  """{stream: ReturnScale} from {stream: returns of the global batch}, each
  stream with its own normaliser (`agent.retnorms`)."""
  return {k: return_scale(agent.retnorms[k], ret) for k, ret in
          returns.items()}


def behavior_losses(agent, imagination, scale):
  """Actor (§3.6) and imagination critic (§3.7) losses, [N, H] each.

  scale: the return scale S (`return_scale`), or {stream: S} with
  exploration. Returns (losses {policy, value[, value_intr]}, metrics).
  The actor's advantage weights the streams by `agent.advantage_weights()`.
  """
  feat = imagination.feat
  policy = agent.actor(feat)
  actions = agent.actor.split(imagination.actions)
  scales = _scales(scale)
  streams = imagination.streams
  weights = agent.advantage_weights()
  value = {k: dists.SymexpTwoHot(s.value_logits) for k, s in streams.items()}
  slow = {k: sg(agent.slow_critics[k](feat).mean()) for k in streams}
  ret = {k: s.ret for k, s in streams.items()}
  losses, metrics = behavior.imagination_losses(
      policy, actions, value, slow, ret, imagination.weight, scales,
      adv_weights={k: weights[k] for k in streams},
      ret_grad=imagination.ret_grad, value_grad=imagination.value_grad)
  metrics.update(rew=tf.reduce_mean(imagination.reward),
                 con=tf.reduce_mean(imagination.cont))
  if imagination.intrinsic is not None:
    metrics[f'{INTRINSIC}/rew'] = tf.reduce_mean(
        imagination.intrinsic.reward[:, 1:])
    metrics[f'{INTRINSIC}/weight'] = weights[INTRINSIC]
    metrics[f'{EXTRINSIC}/weight'] = weights[EXTRINSIC]
    metrics[f'{INTRINSIC}/ensemble_loss'] = tf.reduce_mean(
        imagination.explore_loss)
  return losses, metrics


def _scales(scale):
  """{stream: S} from a dict or the extrinsic stream's bare S."""
  return dict(scale) if isinstance(scale, dict) else {EXTRINSIC: scale}


def replay_value_loss(agent, imagination):
  """Critic loss on the replayed steps (§3.7, `repval`), [B, T-1].

  Returns G_t on the real rewards bootstrap from R_0 of the trajectory
  imagined from step t; the posterior features keep their gradient unless
  `agent.repval_grad` is False.
  """
  model = imagination.world_model
  feat = model.feat if agent.repval_grad else sg(model.feat)  # [B, T, F]
  b, t = feat.shape[:2]
  boot = tf.reshape(imagination.ret[:, 0], [b, t])
  replay = model.replay
  return behavior.replay_value_loss(
      agent.critic(feat), sg(agent.slow_critic(feat).mean()),
      replay['reward'], replay['is_last'], replay['is_terminal'], boot,
      horizon=agent.horizon, lam=agent.lam)


def loss(agent, imagination, scale):
  """The update's loss given the return scale S -> Loss (second phase).

  L = Σ_k scale_k mean(L_k) over the world-model, actor, critic(s) and (if
  `agent.repval_loss`) replay-value losses; `Agent.loss_scales` holds the
  scales (§3.2, §3.7). scale: S, or {stream: S} with exploration.
  Importance weights (`WorldModelOut.weight`) scale each row's world-model
  losses. The ensemble's loss (exploration) is not part of L: it has its
  own optimizer (`Loss.explore`).
  """
  model = imagination.world_model
  losses = dict(model.losses)
  if model.weight is not None:
    losses = {k: v * model.weight[:, None] for k, v in losses.items()}
  behavior_terms, metrics = behavior_losses(agent, imagination, scale)
  losses.update(behavior_terms)
  if agent.repval_loss:
    losses['repval'] = replay_value_loss(agent, imagination)
  if set(losses) != set(agent.loss_scales):
    raise ValueError(f'Loss keys {sorted(losses)} != loss scale keys '
                     f'{sorted(agent.loss_scales)}.')
  total = sum(tf.reduce_mean(v) * agent.loss_scales[k]
              for k, v in losses.items())
  metrics.update({f'loss/{k}': tf.reduce_mean(v) for k, v in losses.items()})
  metrics.update(model.metrics)
  scales = _scales(scale)
  metrics['retnorm/scale'] = scales[EXTRINSIC]
  if INTRINSIC in scales:
    metrics[f'{INTRINSIC}/retnorm/scale'] = scales[INTRINSIC]
  explore_loss = (None if imagination.explore_loss is None
                  else tf.reduce_mean(imagination.explore_loss))
  return Loss(total=total, losses=losses, metrics=metrics,
              explore=explore_loss)


def priority_signals(agent, imagination, scales):
  """Per trained step, what prioritized replay can combine, [B, T] each.

  scales: {stream: ReturnScale} of this update. With N = B*T imagined
  trajectories, trajectory n starting at step (b, t):
    world_model       Σ_k scale_k L_k over the world-model losses (§3.2),
                      the official code's priority (its `losses['model']`)
    reconstruction    Σ_k scale_k L_k over the observation keys only
    value_error       mean_τ |R_τ - v_τ| / S, the critic's error along it
    return            max(0, (R_0 - lo) / S), its normalised return
    intrinsic_return  the same for the intrinsic stream (exploration)
  Importance weights do not enter; `priority.combine` makes them finite
  and non-negative.
  """
  model = imagination.world_model
  b, t = model.replay['reward'].shape[:2]
  keys = set(agent.wm.keys)
  wm = [k for k in model.losses if k in agent.loss_scales]
  signals = dict(
      world_model=sum(model.losses[k] * agent.loss_scales[k] for k in wm),
      reconstruction=sum(model.losses[k] * agent.loss_scales[k]
                         for k in wm if k in keys))
  value = sg(dists.SymexpTwoHot(imagination.value_logits).mean())
  ext = scales[EXTRINSIC]
  error = tf.reduce_mean(tf.abs(imagination.ret - value[:, :-1]), 1)
  signals['value_error'] = tf.reshape(error / ext.scale, [b, t])
  norm_return = lambda ret, s: tf.reshape(
      tf.maximum(0.0, (ret[:, 0] - s.lo) / s.scale), [b, t])
  signals['return'] = norm_return(imagination.ret, ext)
  if imagination.intrinsic is not None:
    signals['intrinsic_return'] = norm_return(
        imagination.intrinsic.ret, scales[INTRINSIC])
  return {k: sg(v) for k, v in signals.items()}
