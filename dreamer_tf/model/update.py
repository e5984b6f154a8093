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

`imagine` and `loss(imagination, scale)` are the two phases of the update:
with several replicas the returns of all replicas must be gathered before
S exists (placement.py), so S is an argument, not computed inside `loss`.
Nothing here assigns a variable: the caller updates the return normaliser,
the optimizer and the slow critic (placement.py).

`agent` is the `Agent` whose modules and settings define the loss (the
official code's `self`).
"""
from typing import NamedTuple

import tensorflow as tf

from dreamer_tf.model import behavior
from dreamer_tf.model import distributions as dists

sg = tf.stop_gradient


class WorldModelOut(NamedTuple):
  """The world model on the T trained steps of a replay batch (§3.2)."""
  losses: dict  # {dyn, rep, <obs keys>, reward, cont: [B, T]}
  metrics: dict  # {dyn_ent, rep_ent: []}
  posterior: dict  # {deter [B, T, D], stoch [B, T, S, K]}, with gradient
  feat: tf.Tensor  # [B, T, F] posterior features f_t, with gradient
  replay: dict  # {reward, is_last, is_terminal: [B, T]} of the T steps

  @property
  def latents(self):
    """The posterior to write back to replay (§4.3), stop-gradient."""
    return {k: sg(v) for k, v in self.posterior.items()}


class Imagination(NamedTuple):
  """Trajectories imagined from every posterior state (§3.3, §3.4)."""
  world_model: WorldModelOut
  feat: tf.Tensor  # [N, H+1, F] imagined features, stop-gradient
  actions: tf.Tensor  # [N, H+1, A] a_τ taken at state τ, stop-gradient
  value_logits: tf.Tensor  # [N, H+1, bins] fast critic, with gradient
  reward: tf.Tensor  # [N, H+1] predicted r̂_τ
  cont: tf.Tensor  # [N, H+1] predicted ĉ_τ (contains γ)
  ret: tf.Tensor  # [N, H] λ-returns R_τ, stop-gradient
  weight: tf.Tensor  # [N, H+1] w_τ = Π_{k<=τ} ĉ_k, stop-gradient


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


def world_model_loss(agent, data, seed):
  """World-model losses on the T trained steps (§3.2) -> WorldModelOut.

  data: {key: [B, C + T, ...]}; the carry starts from the stored latent of
  step C-1 (§4.3, `Agent.split_context`). With `agent.reward_grad` False
  the reward head trains on stop-gradient features.
  """
  obs, prev_actions, _, state = agent.split_context(data)
  losses, posterior, _, metrics = agent.wm.loss(
      obs, prev_actions, state, seed, reward_grad=agent.reward_grad)
  return WorldModelOut(
      losses=losses, metrics=metrics, posterior=posterior,
      feat=agent.wm.rssm.feat(posterior),
      replay={k: obs[k] for k in ('reward', 'is_last', 'is_terminal')})


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
  states, actions = agent.wm.rssm.imagine(
      start, policy, agent.imag_length, img_seed)
  feat = sg(agent.wm.rssm.feat(states))  # [N, H+1, F]
  reward = agent.wm.reward(feat).mean()  # [N, H+1]
  cont = agent.wm.cont(feat).mean()
  disc = 1.0 if agent.contdisc else 1.0 - 1.0 / agent.horizon
  # One critic pass serves the returns (stop-gradient mean) and the
  # critic loss (logits with gradient, in `behavior_losses`).
  value_logits = agent.critic(feat).logits
  value = sg(dists.SymexpTwoHot(value_logits).mean())
  ret, weight = behavior.imagination_returns(
      reward, cont * disc, value, agent.lam, disc)
  return Imagination(
      world_model=model, feat=feat, actions=sg(actions),
      value_logits=value_logits, reward=reward, cont=cont, ret=ret,
      weight=weight)


def return_scale(retnorm, ret):
  """S from the percentiles of `ret`, all returns of the global batch (§3.5).

  retnorm: the agent's `ReturnNormalizer`, read but not assigned.
  """
  lo, hi = retnorm.updated(retnorm.percentiles(ret))
  return ReturnScale(lo, hi, retnorm.scale_of(lo, hi))


def behavior_losses(agent, imagination, scale):
  """Actor (§3.6) and imagination critic (§3.7) losses, [N, H] each.

  scale: the return scale S (`return_scale`). Returns (losses {policy,
  value}, metrics).
  """
  feat = imagination.feat
  policy = agent.actor(feat)
  actions = agent.actor.split(imagination.actions)
  value = dists.SymexpTwoHot(imagination.value_logits)
  slow = sg(agent.slow_critic(feat).mean())
  losses, metrics = behavior.imagination_losses(
      policy, actions, value, slow, imagination.ret, imagination.weight,
      scale)
  metrics.update(rew=tf.reduce_mean(imagination.reward),
                 con=tf.reduce_mean(imagination.cont))
  return losses, metrics


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

  L = Σ_k scale_k mean(L_k) over the world-model, actor, critic and (if
  `agent.repval_loss`) replay-value losses; `Agent.loss_scales` holds the
  scales (§3.2, §3.7).
  """
  model = imagination.world_model
  losses = dict(model.losses)
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
  metrics['retnorm/scale'] = scale
  return Loss(total=total, losses=losses, metrics=metrics)
