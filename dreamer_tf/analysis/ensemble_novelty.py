"""Is an ensemble's disagreement a novelty signal on DeepSea? (issue 12)

Plan2Explore's bonus (explore.py) only explores if the members disagree
more on transitions they have seen less. This experiment measures that for
each ensemble target (`Exploration.target`) on a restored agent's world
model, apart from any run's own ensemble:

1. `random_episodes`: a uniform random policy plays `episodes` DeepSea
   episodes, except that every right move from a diagonal cell (r, r) with
   r >= `hold_out_from` is replaced by a left move: those transitions
   never occur (the path to the treasure beyond that row).
2. The world model observes them (posterior features f_t, samples z_t,
   embeddings e_t, as in training).
3. For each target, a fresh ensemble (the agent's `Exploration` settings,
   that target) trains `steps` times on batches of `batch` episodes with
   its loss (`Ensemble.loss`, LaProp at `Exploration.lr`).
4. Its latent disagreement (`Ensemble.predict`'s variance over members,
   mean over entries) on every (cell, move) of the probe's paths
   (`deepsea_probe.episodes`), rows 0 .. N-2.

Per target: `visits_correlation`, Spearman's rho of the disagreement with
log(1 + the move's count in the data) (< 0: rarer moves get more bonus, a
novelty signal; > 0: the familiar ones do), and `held_out_ratio`, the mean
disagreement on the held-out moves over that on the moves seen at least
once (> 1: the never-seen transitions stand out).
"""
import dataclasses
import math

import numpy as np
import tensorflow as tf

from dreamer_tf.analysis import deepsea_probe
from dreamer_tf.envs import deepsea
from dreamer_tf.model import explore
from dreamer_tf.model import nets
from dreamer_tf.model import optim


def held_out(row, col, right, hold_out_from):
  """Whether the move is removed from the data."""
  return right and row == col and row >= hold_out_from


def random_episodes(size, episodes, hold_out_from, seed=0,
                    mapping_seed=deepsea.MAPPING_SEED, randomize_actions=True):
  """Uniform random episodes without the held-out moves.

  Returns (obs [E, N, N*N] rows 0 .. N-1, actions [E, N] the env action
  taken at each row (the last one ends the episode), counts {(row, col,
  right): n} of the moves from rows 0 .. N-2).
  """
  env = deepsea.DeepSeaEnv(size=size, mapping_seed=mapping_seed,
                           randomize_actions=randomize_actions)
  mapping = np.asarray(env.action_mapping)
  rng = np.random.default_rng(seed)
  obs = np.zeros([episodes, size, size * size], np.float32)
  actions = np.zeros([episodes, size], np.int64)
  counts = {}
  for e in range(episodes):
    obs[e, 0] = env.reset(seed=0)[0]
    col = 0
    for row in range(size):
      right = bool(rng.integers(2)) and not held_out(
          row, col, True, hold_out_from)
      action, next_col = deepsea_probe.move(mapping, row, col, right)
      actions[e, row] = action
      if row < size - 1:
        counts[(row, col, right)] = counts.get((row, col, right), 0) + 1
        obs[e, row + 1] = env.step(action)[0]
      col = next_col
  return obs, actions, counts


def _observe(agent, obs, prev, seed):
  """Posterior features f_t, samples z_t and embeddings e_t [E, T, ...]."""
  post, tokens = deepsea_probe.observe(agent, obs, prev,
                                       tf.constant(seed, tf.int32))
  return agent.wm.rssm.feat(post), post['stoch'], tokens


def novelty(agent, size, targets=explore.TARGETS, episodes=1500, steps=3000,
            batch=16, hold_out_from=4, seed=0,
            mapping_seed=deepsea.MAPPING_SEED, randomize_actions=True):
  """The module docstring's measurement -> {target: {visits_correlation,
  held_out_ratio, held_out, seen, loss}}."""
  deepsea_probe.check_agent(agent, size)
  if not 1 <= hold_out_from <= size - 2:
    raise ValueError(f'hold_out_from={hold_out_from}: pick a row in 1 .. '
                     f'{size - 2} (a move from row {size - 1} ends the '
                     'episode).')
  if episodes < batch or steps < 1:
    raise ValueError(f'episodes={episodes}, batch={batch}, steps={steps}: '
                     'need episodes >= batch and steps >= 1.')
  settings = dict(mapping_seed=mapping_seed,
                  randomize_actions=randomize_actions)
  obs, actions, counts = random_episodes(size, episodes, hold_out_from,
                                         seed, **settings)
  prev = np.concatenate([-np.ones([episodes, 1], np.int64),
                         actions[:, :-1]], 1)
  feat, stoch, tokens = _observe(agent, obs, prev, [seed, 1])
  data = dict(feat=feat, actions=tf.one_hot(actions, 2),
              stoch=tf.cast(stoch, tf.float32),
              embed=tf.cast(tokens, tf.float32))
  is_first = np.zeros(actions.shape, bool)
  is_first[:, 0] = True
  # The probe's paths: every reachable cell's posterior.
  cells, pobs, pprev, mapping = deepsea_probe.episodes(size, **settings)
  pfeat, _, _ = _observe(agent, pobs, pprev, [seed, 2])
  rows = [r for r, _ in cells]
  pfeat = tf.gather(pfeat, rows, axis=1, batch_dims=1)  # [M, F]
  moves = [(r, c, right) for r, c in cells if r < size - 1
           for right in (True, False)]
  index = {cell: i for i, cell in enumerate(cells)}
  move_feat = tf.gather(pfeat, [index[(r, c)] for r, c, _ in moves])
  move_action = tf.one_hot(
      [deepsea_probe.move(mapping, r, c, right)[0] for r, c, right in moves],
      2)
  base = agent.exploration if agent.exploration.enabled else \
      explore.ExplorationConfig()
  rng = np.random.default_rng(seed)
  result = {}
  for target in targets:
    config = dataclasses.replace(base, signal='latent', target=target)
    ensemble = explore.Ensemble(
        config, agent.wm.rssm.stoch_size, agent.wm.rssm.classes,
        nets.InitSeeds(seed), embed_size=int(tokens.shape[-1]))
    loss = _train(ensemble, config, data, target, is_first, steps, batch,
                  rng)
    spread = tf.reduce_mean(tf.reshape(tf.math.reduce_variance(
        ensemble.predict(move_feat, move_action), 0),
                                       [len(moves), -1]), -1).numpy()
    result[target] = _summary(moves, spread, counts, hold_out_from, loss)
  return result


def _train(ensemble, config, data, target, is_first, steps, batch, rng):
  """`steps` LaProp steps on random batches of episodes; the last loss."""
  optimizer = optim.LaProp(lr=config.lr, name=f'novelty_{target}')
  ensemble(data['feat'][:1, 0], data['actions'][:1, 0])  # Builds it.
  optimizer.build(ensemble.trainable_variables)

  @tf.function(autograph=False)
  def step(feat, actions, targets, first):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(ensemble.loss(feat, actions, targets, first))
    grads = tape.gradient(loss, ensemble.trainable_variables)
    optimizer.apply_gradients(zip(grads, ensemble.trainable_variables))
    return loss

  episodes = data['feat'].shape[0]
  loss = None
  for _ in range(steps):
    rows = rng.choice(episodes, batch, replace=False)
    loss = step(tf.gather(data['feat'], rows),
                tf.gather(data['actions'], rows),
                tf.gather(data[target], rows), is_first[rows])
  return float(loss)


def _summary(moves, spread, counts, hold_out_from, loss):
  held = np.array([held_out(r, c, right, hold_out_from)
                   for r, c, right in moves])
  n = np.array([counts.get(m, 0) for m in moves])
  seen = (n > 0) & ~held
  ratio = (float(spread[held].mean() / spread[seen].mean())
           if held.any() and seen.any() and spread[seen].mean() > 0 else None)
  return dict(
      visits_correlation=deepsea_probe.rank_correlation(
          [math.log1p(k) for k in n], spread),
      held_out_ratio=ratio,
      held_out=float(spread[held].mean()) if held.any() else None,
      seen=float(spread[seen].mean()) if seen.any() else None,
      loss=loss)
