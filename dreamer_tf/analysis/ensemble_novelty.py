"""Is an ensemble's disagreement a novelty signal on DeepSea? (issue 12)

Plan2Explore's bonus (explore.py) only explores if the members disagree
more on transitions they have seen less. This experiment measures that for
each ensemble target (`Exploration.target`) on a restored agent's world
model, apart from any run's own ensemble:

1. `random_episodes`: a uniform random policy plays `episodes` DeepSea
   episodes, except that every right move from a diagonal cell (r, r) with
   r >= `hold_out_from` is replaced by a left move: those transitions
   never occur (the path to the treasure beyond that row).
2. For each target, a fresh ensemble (the agent's `Exploration` settings,
   that target) trains `steps` times on batches of `batch` episodes with
   its loss (`Ensemble.loss`, LaProp at `Exploration.lr`). The world model
   observes each batch anew, so every step sees fresh posterior samples
   z_t (features f_t, targets z_{t+1} or embeddings e_{t+1}), as in
   training.
3. Its latent disagreement (`Ensemble.predict`'s variance over members,
   mean over entries and over `samples` posterior samples of each cell) on
   every (cell, move) of the probe's paths (`deepsea_probe.episodes`),
   rows 0 .. N-2.

Per target: `novelty_correlation`, Spearman's rho of the disagreement with
-log(1 + the move's count in the data) (> 0: rarer moves get more bonus,
a novelty signal; < 0: the familiar ones do; the sign convention of the
probe's `disagreement_novelty`), and `held_out_ratio`, the mean
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


def novelty(agent, size, targets=explore.TARGETS, episodes=1500, steps=3000,
            batch=16, hold_out_from=4, samples=8, seed=0,
            mapping_seed=deepsea.MAPPING_SEED, randomize_actions=True):
  """The module docstring's measurement -> {target: {novelty_correlation,
  held_out_ratio, held_out, seen, loss}}."""
  deepsea_probe.check_agent(agent, size)
  if not 1 <= hold_out_from <= size - 2:
    raise ValueError(f'hold_out_from={hold_out_from}: pick a row in 1 .. '
                     f'{size - 2} (a move from row {size - 1} ends the '
                     'episode).')
  if episodes < batch or steps < 1 or samples < 1:
    raise ValueError(f'episodes={episodes}, batch={batch}, steps={steps}, '
                     f'samples={samples}: need episodes >= batch, steps >= 1 '
                     'and samples >= 1.')
  settings = dict(mapping_seed=mapping_seed,
                  randomize_actions=randomize_actions)
  obs, actions, counts = random_episodes(size, episodes, hold_out_from,
                                         seed, **settings)
  prev = np.concatenate([-np.ones([episodes, 1], np.int64),
                         actions[:, :-1]], 1)
  prev_actions, is_first = deepsea_probe.episode_inputs(prev)
  data = dict(obs=obs, actions=np.eye(2, dtype=np.float32)[actions],
              prev_actions=prev_actions, is_first=is_first)
  moves, move_feat, move_action = _probe_moves(agent, size, samples, seed,
                                               settings)
  embed_size = agent.wm.token_size()
  base = agent.exploration if agent.exploration.enabled else \
      explore.ExplorationConfig()
  result = {}
  for target in targets:
    config = dataclasses.replace(base, signal='latent', target=target)
    ensemble = explore.Ensemble(
        config, agent.wm.rssm.stoch_size, agent.wm.rssm.classes,
        nets.InitSeeds(seed), embed_size=embed_size)
    loss = _train(agent, ensemble, config, data, steps, batch, seed)
    spread = tf.reduce_mean(explore.disagreement(
        ensemble.predict(move_feat, move_action), 2), 0).numpy()  # [moves]
    result[target] = _summary(moves, spread, counts, hold_out_from, loss)
  return result


def _probe_moves(agent, size, samples, seed, settings):
  """The moves of the probe's paths from rows 0 .. N-2: ([(row, col,
  right)], features [S, moves, F] of `samples` posterior samples of their
  cells, env actions [S, moves, 2])."""
  cells, obs, prev, mapping = deepsea_probe.episodes(size, **settings)
  obs, prev = np.tile(obs, [samples, 1, 1]), np.tile(prev, [samples, 1])
  post, _ = deepsea_probe.observe(agent, obs, prev,
                                  tf.constant([seed, 2], tf.int32))
  rows = np.tile([r for r, _ in cells], samples)
  feat = tf.gather(agent.wm.rssm.feat(post), rows, axis=1,
                   batch_dims=1)  # [S*M, F]
  feat = tf.reshape(feat, [samples, len(cells), -1])
  moves = [(r, c, right) for r, c in cells if r < size - 1
           for right in (True, False)]
  index = {cell: i for i, cell in enumerate(cells)}
  move_feat = tf.gather(feat, [index[(r, c)] for r, c, _ in moves], axis=1)
  action = np.eye(2, dtype=np.float32)[[
      deepsea_probe.move(mapping, r, c, right)[0] for r, c, right in moves]]
  return moves, move_feat, tf.constant(np.tile(action, [samples, 1, 1]))


def _train(agent, ensemble, config, data, steps, batch, seed):
  """`steps` LaProp steps on random batches of episodes, each observed by
  the world model anew (a fresh posterior sample, as in training); the
  last loss."""
  wm, rssm = agent.wm, agent.wm.rssm
  optimizer = optim.LaProp(lr=config.lr, name=f'novelty_{config.target}')

  @tf.function(autograph=False)
  def step(obs, actions, prev_actions, is_first, sample_seed):
    tokens = wm.encode({deepsea_probe.OBS_KEY: obs})
    _, post = rssm.observe(rssm.initial(batch), tokens, prev_actions,
                           is_first, sample_seed)
    feat = rssm.feat(post)
    target = tokens if config.target == 'embed' else post['stoch']
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(ensemble.loss(feat, actions, target, is_first))
    grads = tape.gradient(loss, ensemble.trainable_variables)
    optimizer.apply_gradients(zip(grads, ensemble.trainable_variables))
    return loss

  rng = np.random.default_rng(seed)
  episodes = len(data['obs'])
  loss = None
  for i in range(steps):
    rows = rng.choice(episodes, batch, replace=False)
    if i == 0:  # Builds the ensemble and its optimizer's slots.
      ensemble(tf.zeros([1, rssm.feat_size]), data['actions'][:1, 0])
      optimizer.build(ensemble.trainable_variables)
    loss = step(data['obs'][rows], data['actions'][rows],
                data['prev_actions'][rows], data['is_first'][rows],
                tf.constant([seed, 3 + i], tf.int32))
  return float(loss)


def _summary(moves, spread, counts, hold_out_from, loss):
  held = np.array([held_out(r, c, right, hold_out_from)
                   for r, c, right in moves])
  n = np.array([counts.get(m, 0) for m in moves])
  seen = (n > 0) & ~held
  ratio = (float(spread[held].mean() / spread[seen].mean())
           if held.any() and seen.any() and spread[seen].mean() > 0 else None)
  return dict(
      novelty_correlation=deepsea_probe.rank_correlation(
          [-math.log1p(k) for k in n], spread),
      held_out_ratio=ratio,
      held_out=float(spread[held].mean()) if held.any() else None,
      seen=float(spread[seen].mean()) if seen.any() else None,
      loss=loss)
