"""What a DeepSea agent's world model knows about the grid (issue 12).

An actor is driven towards DeepSea's treasure only through imagination
(§3.3): the world model must (1) tell the cells apart, (2) imagine where
each action leads, and (3) predict the treasure's reward; an exploration
bonus can only single out a novel transition if (4) the ensemble's
disagreement depends on the action. This probe measures the four on a
restored agent, over every reachable cell (r, c), c <= r, each reached from
(0, 0) by a real path ((r - c) left moves along column 0, then c right
moves) that the posterior observes:

  reconstruct   the posterior z_t ~ q(z_t | h_t, x_t) at (r, c) decodes
                (argmax of the decoder's mean, p(x_t | h_t, z_t), §3.2) to
                the one-hot of (r, c); `reconstruct_row` counts a decoded
                cell in the right row (a model that only counts its steps
                since the episode began gets every row right)
  imagine       one prior step ẑ ~ p(ẑ | h) after action a (the dynamics
                predictor, §3.2) decodes to the cell the environment moves
                to; rows 0 .. N-2 (from the last row the episode ends)
  treasure      the reward head's mean on the step imagined by moving right
                from the bottom-right cell (the environment pays
                1 - 0.01 / N) and by moving left there (it pays 0)
  actor         the actor's probability of the right move on the diagonal,
                and its entropy (nats) over every cell: a mean P(right)
                of 0.5 may be a uniform actor (entropy ln 2) or one that
                takes one env action everywhere (entropy ~0; the mapping
                makes it right on about half the cells)
  disagreement  with an ensemble (explore.py): the latent disagreement,
                whatever the run's `Exploration.signal` and `spread`
                (variance over members of the predicted class probabilities,
                or embeddings with `Exploration.target='embed'`, mean over
                the entries) of each (cell, action);
                `disagreement_novelty` is its Spearman rank correlation
                with the rarity of the move's cell, -log P(r, c) under a
                uniform policy (`visit_probability`), over rows 0 .. N-2:
                +1 for a novelty bonus that grows as cells get rarer, 0
                for none, < 0 for one that favours the familiar;
                given the moves in the run's replay (`counts`,
                `replay_moves.py`), `disagreement_replay_novelty` ranks it
                by -log(1 + the move's count) instead: what the ensemble
                was trained on, once the actor is no longer uniform

Latents are sampled, so every path is run `samples` times (one stateless
seed) and accuracies are fractions over cells x samples.

`probe(agent, size)` returns the summary and the per-cell rows; the
action mapping is bsuite's (`envs/deepsea.py`, mapping seed 42) unless
`mapping_seed` / `randomize_actions` say otherwise (the launcher passes the
run's). `move` restates the environment's move rule for the true next
cell; tests/analysis/test_deepsea_probe.py checks it against the env.
`launch/probe_deepsea.py` runs it on checkpoints.
"""
import numpy as np
import tensorflow as tf

from dreamer_tf.envs import deepsea
from dreamer_tf.model import explore

OBS_KEY = 'vector'  # The DeepSea suite's observation key (envs/deepsea.py).


def paths(size):
  """Every reachable cell and a path to it: [(row, col, moves)], moves a
  string of 'L'/'R' of length row (left moves first, along column 0)."""
  return [(r, c, 'L' * (r - c) + 'R' * c)
          for r in range(size) for c in range(r + 1)]


def visit_probability(size):
  """P(r, c) [N, N]: the probability that a uniform random policy is at
  (r, c) at step r. Either action moves right with probability 1/2 (the
  mapping only relabels them); moves are clipped to the grid."""
  prob = np.zeros([size, size])
  prob[0, 0] = 1.0
  for r in range(size - 1):
    for c in range(r + 1):
      prob[r + 1, min(c + 1, size - 1)] += prob[r, c] / 2
      prob[r + 1, max(c - 1, 0)] += prob[r, c] / 2
  return prob


def rank_correlation(x, y):
  """Spearman's rho of two equal-length sequences (average ranks for
  ties); None when either is constant (no ranking to correlate)."""
  rx, ry = _ranks(x), _ranks(y)
  if np.ptp(rx) == 0 or np.ptp(ry) == 0:
    return None
  return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values):
  values = np.asarray(values, np.float64)
  order = np.argsort(values, kind='stable')
  ranks = np.empty(len(values))
  ranks[order] = np.arange(len(values))
  _, tie = np.unique(values, return_inverse=True)
  return (np.bincount(tie, ranks) / np.bincount(tie))[tie]


def move(mapping, row, col, right):
  """(env action, next column) of a right or left move at (row, col)."""
  right_action = int(mapping[row, col])
  size = mapping.shape[0]
  if right:
    return right_action, min(col + 1, size - 1)
  return 1 - right_action, max(col - 1, 0)


def episodes(size, mapping_seed=deepsea.MAPPING_SEED, randomize_actions=True):
  """Observations and previous actions of every cell's path, run in the
  environment and padded with left moves to `size` steps.

  Returns (cells [(row, col)], obs [M, N, N*N], prev_action [M, N] (the env
  action before each step; -1 at step 0), mapping [N, N]).
  """
  env = deepsea.DeepSeaEnv(size=size, mapping_seed=mapping_seed,
                           randomize_actions=randomize_actions)
  mapping = np.asarray(env.action_mapping)
  cells, obs, prev = [], [], []
  for row, col, moves in paths(size):
    moves = moves + 'L' * (size - 1 - len(moves))
    seen, before = [env.reset(seed=0)[0]], [-1]
    r = c = 0
    for m in moves:
      action, c = move(mapping, r, c, m == 'R')
      seen.append(env.step(action)[0])
      before.append(action)
      r += 1
    cells.append((row, col))
    obs.append(np.stack(seen))
    prev.append(before)
  return cells, np.asarray(obs, np.float32), np.asarray(prev), mapping


def observe(agent, obs, prev, seed):
  """The posterior of episodes from their first step.

  obs [E, T, N*N]; prev [E, T] the env action before each step (-1 at
  step 0); seed [2]. Returns (posterior {deter, stoch, logits: [E, T, ...]},
  tokens [E, T, E'] the encoder's embeddings).
  """
  rssm = agent.wm.rssm
  prev_actions, is_first = episode_inputs(prev)
  tokens = agent.wm.encode({OBS_KEY: tf.convert_to_tensor(obs)})
  _, post = rssm.observe(rssm.initial(len(obs)), tokens, prev_actions,
                         is_first, seed)
  return post, tokens


def episode_inputs(prev):
  """prev [E, T] env actions before each step (-1 at step 0) -> the
  RSSM's (prev_actions [E, T, 2] one-hot, zeros before step 0; is_first
  [E, T], True at step 0)."""
  prev = np.asarray(prev)
  prev_actions = np.eye(2, dtype=np.float32)[np.maximum(prev, 0)] * (
      prev >= 0).astype(np.float32)[..., None]
  is_first = np.zeros(prev.shape, bool)
  is_first[:, 0] = True
  return prev_actions, is_first


def check_agent(agent, size):
  """A user error unless `agent` was built for deepsea:`size`."""
  space = agent.wm.obs_space
  keys = list(agent.wm.keys)
  if keys != [OBS_KEY] or tuple(space[OBS_KEY].shape) != (size * size,):
    shapes = {k: tuple(space[k].shape) for k in keys}
    raise ValueError(
        f'The probe needs an agent trained on deepsea:{size} (one '
        f"observation '{OBS_KEY}' of {size * size} values), but this agent "
        f'observes {shapes}: pass the size the run was trained with.')
  classes = agent.act_space['action'].classes if 'action' in \
      agent.act_space else None
  if classes != 2:
    raise ValueError('The probe needs a DeepSea agent (one discrete action '
                     f"'action' with 2 choices), got {agent.act_space}.")


def _cell_of(decoded):
  """Decoded observation [..., N*N] -> flat index of its largest entry."""
  return np.argmax(np.asarray(decoded), -1)


def probe(agent, size, samples=8, seed=0,
          mapping_seed=deepsea.MAPPING_SEED, randomize_actions=True,
          counts=None):
  """Measures the module docstring's quantities. Returns a dict: `summary`
  (accuracies, treasure rewards, actor, disagreement, posterior entropy)
  and `cells` (a row per reachable cell).

  counts: {(row, col, right): n}, the moves in the run's replay
  (`replay_moves.moves`); with an ensemble it adds each move's count to
  the cells (`right_count`, `left_count`) and `disagreement_replay_novelty`
  to the summary: the rank correlation of the disagreement with
  -log(1 + count) over rows 0 .. N-2 (> 0: moves rarer in the data get
  more, the sign of `disagreement_novelty`).
  """
  if samples < 1:
    raise ValueError(f'samples={samples} must be >= 1.')
  check_agent(agent, size)
  wm, rssm = agent.wm, agent.wm.rssm
  cells, obs, prev, mapping = episodes(size, mapping_seed, randomize_actions)
  m, n = len(cells), size
  # [M*S, N, ...]: every path `samples` times.
  obs = np.repeat(obs, samples, 0)
  prev = np.repeat(prev, samples, 0)
  seeds = tf.random.experimental.stateless_split(
      tf.constant([seed, 0], tf.int32), 3)
  post, _ = observe(agent, obs, prev, seeds[0])
  rows = np.repeat([r for r, _ in cells], samples)
  at = lambda x: tf.gather(x, rows, axis=1, batch_dims=1)  # step r of each
  state = dict(deter=at(post['deter']), stoch=at(post['stoch']))
  entropy = rssm.dist(at(post['logits'])).entropy().numpy()  # [M*S]
  feat = rssm.feat(state)
  true_cell = np.repeat([r * n + c for r, c in cells], samples)
  decoded = _cell_of(wm.decode(state)[OBS_KEY].mode())
  recon = decoded == true_cell
  recon_row = decoded // n == true_cell // n
  policy = agent.actor(feat)['action'].probs.numpy()  # [M*S, 2]

  imagined, reward, spread = {}, {}, {}
  for a in (0, 1):
    action = tf.one_hot(tf.fill([m * samples], a), 2)
    nxt, _ = rssm.img_step(state, action, seeds[1 + a])
    imagined[a] = _cell_of(wm.decode(nxt)[OBS_KEY].mode())
    reward[a] = wm.reward(rssm.feat(nxt)).mean().numpy()
    if agent.ensemble is not None:
      spread[a] = explore.disagreement(
          agent.ensemble.predict(feat, action), 1).numpy()  # [M*S]

  per_cell, imagine_ok, diag_right_ok = [], [], []
  for i, (r, c) in enumerate(cells):
    span = slice(i * samples, (i + 1) * samples)
    row = dict(row=r, col=c, reconstruct=float(recon[span].mean()),
               reconstruct_row=float(recon_row[span].mean()),
               posterior_entropy=float(entropy[span].mean()))
    right_action = int(mapping[r, c])
    row['actor_right'] = float(policy[span, right_action].mean())
    for name, right in (('right', True), ('left', False)):
      action, col = move(mapping, r, c, right)
      row[f'{name}_reward'] = float(reward[action][span].mean())
      if spread:
        row[f'{name}_disagreement'] = float(spread[action][span].mean())
        if counts is not None:
          row[f'{name}_count'] = int(counts.get((r, c, right), 0))
      if r < n - 1:
        ok = imagined[action][span] == (r + 1) * n + col
        row[f'{name}_imagine'] = float(ok.mean())
        imagine_ok.append(ok)
        if right and r == c:
          diag_right_ok.append(ok)
    per_cell.append(row)

  diagonal = [row for row in per_cell if row['row'] == row['col']]
  corner = diagonal[-1]
  summary = dict(
      size=n, cells=m, samples=samples,
      reconstruct=float(recon.mean()),
      reconstruct_row=float(recon_row.mean()),
      reconstruct_diagonal=float(np.mean([d['reconstruct'] for d in diagonal])),
      imagine=float(np.mean(imagine_ok)) if imagine_ok else None,
      imagine_diagonal_right=(float(np.mean(diag_right_ok))
                              if diag_right_ok else None),
      treasure_reward=corner['right_reward'],
      treasure_reward_left=corner['left_reward'],
      actor_right_diagonal=float(np.mean([d['actor_right']
                                          for d in diagonal])),
      actor_entropy=float(np.mean(-np.sum(
          policy * np.log(np.maximum(policy, 1e-12)), -1))),
      posterior_entropy=float(entropy.mean()))
  if spread:
    summary['disagreement_diagonal_right'] = float(np.mean(
        [d['right_disagreement'] for d in diagonal]))
    summary['disagreement_other'] = float(np.mean(
        [row[f'{name}_disagreement'] for row in per_cell
         for name in ('right', 'left')
         if not (name == 'right' and row['row'] == row['col'])]))
    visits = visit_probability(n)  # > 0 at every reachable cell.
    moves = [(-np.log(visits[row['row'], row['col']]),
              row[f'{name}_disagreement'])
             for row in per_cell if row['row'] < n - 1
             for name in ('right', 'left')]
    summary['disagreement_novelty'] = rank_correlation(*zip(*moves))
    if counts is not None:
      summary['disagreement_replay_novelty'] = rank_correlation(*zip(*[
          (-np.log1p(row[f'{name}_count']), row[f'{name}_disagreement'])
          for row in per_cell if row['row'] < n - 1
          for name in ('right', 'left')]))
  return dict(summary=summary, cells=per_cell)
