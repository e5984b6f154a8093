"""The DeepSea world-model probe (analysis/deepsea_probe.py): paths, exact
accounting against oracle world models, a real agent, and the errors."""
import types

import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf import spaces
from dreamer_tf.analysis import deepsea_probe
from dreamer_tf.envs import deepsea
from tests.conftest import TINY
from tests.model.test_agent import build

N = 5


def test_paths_reach_every_reachable_cell_once():
  env = deepsea.DeepSeaEnv(size=N)
  mapping = np.asarray(env.action_mapping)
  cells = [(r, c) for r, c, _ in deepsea_probe.paths(N)]
  assert sorted(cells) == [(r, c) for r in range(N) for c in range(r + 1)]
  for row, col, moves in deepsea_probe.paths(N):
    env.reset(seed=0)
    info = {'row': 0, 'column': 0}
    c = 0
    for r, m in enumerate(moves):
      action, c = deepsea_probe.move(mapping, r, c, m == 'R')
      info = env.step(action)[-1]
    assert (info['row'], info['column']) == (row, col)


def test_episodes_observe_the_path():
  cells, obs, prev, _ = deepsea_probe.episodes(N)
  assert obs.shape == (len(cells), N, N * N) and prev.shape == (len(cells), N)
  assert (prev[:, 0] == -1).all() and set(np.unique(prev[:, 1:])) <= {0, 1}
  for i, (r, c) in enumerate(cells):
    np.testing.assert_array_equal(obs[i, r], np.eye(N * N)[r * N + c])
    assert obs[i].sum() == N  # One cell per step, all inside the grid.


class _Out:
  def __init__(self, value):
    self.value = value

  def mode(self):
    return self.value

  def mean(self):
    return self.value

  def entropy(self):
    return tf.zeros(self.value.shape[:1])


class OracleRSSM:
  """The state is the observation (deter = one-hot cell); stoch carries the
  reward of the step into it. img_step moves as the environment does, or,
  with `wrong_right`, moves left for every right action. With
  `dead_reckoning`, observe ignores the observations after the first and
  follows the previous actions from the start cell instead, so it is exact
  only if a_{t-1} is the action that led to step t."""

  def __init__(self, mapping, wrong_right=False, dead_reckoning=False):
    self.mapping, self.wrong_right = mapping, wrong_right
    self.dead_reckoning = dead_reckoning

  def initial(self, batch):
    return dict(deter=tf.zeros([batch, N * N]), stoch=tf.zeros([batch, 1, 1]))

  def observe(self, state, tokens, prev_actions, is_first, seed):
    del state, seed
    zeros = tf.zeros(tokens.shape[:2] + [1, 1])
    if self.dead_reckoning:
      tokens = tf.constant(self._reckon(np.asarray(prev_actions), is_first))
    return None, dict(deter=tokens, stoch=zeros, logits=zeros)

  def _reckon(self, prev_actions, is_first):
    """One-hot cells [B, T, N*N] from the start cell and a_{t-1} [B, T, 2]."""
    assert is_first[:, 0].all() and not is_first[:, 1:].any()
    assert (prev_actions[:, 0] == 0).all()  # No action before the start.
    assert (prev_actions[:, 1:].sum(-1) == 1).all()  # One-hot after it.
    cells = np.zeros(prev_actions.shape[:2] + (N * N,), np.float32)
    for b, actions in enumerate(np.argmax(prev_actions, -1)):
      col = 0
      cells[b, 0, 0] = 1
      for t in range(1, len(actions)):
        right = actions[t] == self.mapping[t - 1, col]
        col = min(col + 1, N - 1) if right else max(col - 1, 0)
        cells[b, t, t * N + col] = 1
    return cells

  def feat(self, state):
    return tf.concat([state['deter'], tf.reshape(state['stoch'], [-1, 1])], -1)

  def dist(self, logits):
    return _Out(logits)

  def img_step(self, state, action, seed):
    del seed
    deter, rewards = [], []
    for cell, a in zip(np.argmax(state['deter'], -1), np.argmax(action, -1)):
      r, c = divmod(int(cell), N)
      right = a == self.mapping[r, c] and not self.wrong_right
      nxt = np.zeros(N * N, np.float32)
      if r + 1 < N:
        nxt[(r + 1) * N + (min(c + 1, N - 1) if right else max(c - 1, 0))] = 1
      deter.append(nxt)
      rewards.append(0.99 if right and c == N - 1 else 0.0)
    stoch = tf.constant(rewards, tf.float32)[:, None, None]
    return dict(deter=tf.constant(np.stack(deter)), stoch=stoch), None


def column_zero(state):
  """Decodes the right row, always in column 0 (a step counter)."""
  rows = np.argmax(state['deter'], -1) // N
  return {'vector': _Out(tf.one_hot(rows * N, N * N))}


def oracle(wrong_right=False, ensemble=None, decode=None,
           dead_reckoning=False):
  mapping = np.asarray(deepsea.DeepSeaEnv(size=N).action_mapping)
  rssm = OracleRSSM(mapping, wrong_right, dead_reckoning)
  wm = types.SimpleNamespace(
      rssm=rssm, keys=['vector'],
      obs_space=spaces.parse_obs_space(str(N * N)),
      encode=lambda obs: tf.constant(obs['vector']),
      decode=decode or (lambda state: {'vector': _Out(state['deter'])}),
      reward=lambda feat: _Out(feat[:, -1]))
  # The actor moves right with probability 0.75 everywhere.
  def actor(feat):
    right = mapping.reshape(-1)[np.argmax(feat[:, :N * N], -1)]
    probs = np.where(np.eye(2)[right] > 0, 0.75, 0.25)
    return {'action': types.SimpleNamespace(probs=tf.constant(probs))}
  return types.SimpleNamespace(
      wm=wm, actor=actor, ensemble=ensemble,
      act_space=spaces.parse_act_space('discrete:2')), mapping


@pytest.mark.parametrize('dead_reckoning', [False, True])
def test_an_exact_world_model_scores_one(dead_reckoning):
  # Dead reckoning scores one only if the probe feeds a_{t-1} at step t.
  agent, _ = oracle(dead_reckoning=dead_reckoning)
  summary = deepsea_probe.probe(agent, N, samples=2)['summary']
  assert summary['cells'] == N * (N + 1) // 2
  assert summary['reconstruct'] == summary['reconstruct_diagonal'] == 1.0
  assert summary['reconstruct_row'] == 1.0
  assert summary['imagine'] == summary['imagine_diagonal_right'] == 1.0
  assert summary['treasure_reward'] == pytest.approx(0.99)
  assert summary['treasure_reward_left'] == 0.0
  assert summary['actor_right_diagonal'] == pytest.approx(0.75)
  assert summary['actor_entropy'] == pytest.approx(
      -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
  assert 'disagreement_other' not in summary


def test_wrong_right_moves_are_counted_exactly():
  agent, _ = oracle(wrong_right=True)
  result = deepsea_probe.probe(agent, N, samples=1)
  summary = result['summary']
  # Brute force over rows 0 .. N-2: a right move imagined as a left one is
  # wrong (the two columns always differ), a left move is imagined right.
  moves = [(r, c, right) for r in range(N - 1) for c in range(r + 1)
           for right in (True, False)]
  correct = [not right for _, _, right in moves]
  assert summary['imagine'] == pytest.approx(np.mean(correct))
  assert summary['imagine_diagonal_right'] == 0.0
  assert summary['treasure_reward'] == 0.0
  assert summary['reconstruct'] == 1.0
  rows = {(row['row'], row['col']): row for row in result['cells']}
  assert rows[(0, 0)]['right_imagine'] == 0.0
  assert rows[(0, 0)]['left_imagine'] == 1.0
  assert 'right_imagine' not in rows[(N - 1, 0)]  # The episode ends there.


def test_a_step_counter_gets_the_rows_only():
  agent, _ = oracle(decode=column_zero)
  summary = deepsea_probe.probe(agent, N, samples=1)['summary']
  assert summary['reconstruct_row'] == 1.0
  # Column 0 is right in N of the N (N + 1) / 2 reachable cells.
  assert summary['reconstruct'] == pytest.approx(2 / (N + 1))
  assert summary['reconstruct_diagonal'] == pytest.approx(1 / N)
  cells = deepsea_probe.probe(agent, N, samples=1)['cells']
  assert all(row['reconstruct_row'] == 1.0 for row in cells)
  assert [row['reconstruct'] for row in cells] == [
      float(row['col'] == 0) for row in cells]


def test_disagreement_separates_the_diagonal_right_moves():
  def ensemble(feat, action):
    # Members disagree only where the agent moves right on the diagonal.
    cells = np.argmax(feat[:, :N * N], -1)
    rows, cols = np.divmod(cells, N)
    right = np.asarray(action)[:, 1] == mapping.reshape(-1)[cells]
    novel = (rows == cols) & right
    logits = np.zeros([3, len(cells), 1, 2], np.float32)
    logits[:, novel, 0, 0] = np.array([0.0, 2.0, 4.0])[:, None]
    return tf.nn.softmax(logits, -1)
  agent, mapping = oracle(ensemble=types.SimpleNamespace(predict=ensemble))
  summary = deepsea_probe.probe(agent, N, samples=1)['summary']
  assert summary['disagreement_other'] == pytest.approx(0.0, abs=1e-12)
  # Members' class probabilities on the novel moves: softmax([l, 0]) with
  # l = 0, 2, 4; their variance over members, mean over the S x C = 2
  # entries (both entries have the same variance); the diagonal's last
  # right move is novel too.
  p = 1 / (1 + np.exp(-np.array([0.0, 2.0, 4.0])))
  assert summary['disagreement_diagonal_right'] == pytest.approx(np.var(p))


def test_visit_probability_is_a_uniform_policy_s():
  # Brute force: every sequence of env actions, each of probability 2^-(N-1).
  counts = np.zeros([N, N])
  for code in range(2 ** (N - 1)):
    env = deepsea.DeepSeaEnv(size=N)
    cells = [env.reset(seed=0)[0]]
    for t in range(N - 1):
      cells.append(env.step((code >> t) & 1)[0])
    for r, obs in enumerate(cells):
      counts[r, np.argmax(obs) % N] += 1
  expected = counts / 2 ** (N - 1)
  np.testing.assert_allclose(deepsea_probe.visit_probability(N), expected)
  assert np.allclose(expected.sum(1), 1.0)


def test_rank_correlation_is_spearman_s_rho():
  scipy_stats = pytest.importorskip('scipy.stats')
  rng = np.random.default_rng(0)
  x = rng.integers(0, 4, 40).astype(float)  # Many ties.
  y = x + rng.normal(0, 1.5, 40)
  assert deepsea_probe.rank_correlation(x, y) == pytest.approx(
      scipy_stats.spearmanr(x, y).statistic)
  assert deepsea_probe.rank_correlation([1, 2, 3], [3, 2, 1]) == -1.0
  assert deepsea_probe.rank_correlation([1, 1, 1], [1, 2, 3]) is None


@pytest.mark.parametrize('direction', [1.0, -1.0])
def test_disagreement_novelty_follows_the_rarity_of_a_cell(direction):
  visits = deepsea_probe.visit_probability(N)
  rarity = -np.log(np.where(visits > 0, visits, 1.0))  # 0 if unreachable.
  def ensemble(feat, action):
    # Member k's logits [k x, 0], x growing with rarity (or shrinking): the
    # variance of sigmoid(k x) over k grows with |x| for small x.
    del action
    cells = np.argmax(feat[:, :N * N], -1)
    x = 0.05 * (5.0 + direction * rarity.reshape(-1)[cells])
    logits = np.zeros([3, len(cells), 1, 2], np.float32)
    logits[:, :, 0, 0] = np.arange(3.0)[:, None] * x
    return tf.nn.softmax(logits, -1)
  agent, _ = oracle(ensemble=types.SimpleNamespace(predict=ensemble))
  summary = deepsea_probe.probe(agent, N, samples=1)['summary']
  assert summary['disagreement_novelty'] == pytest.approx(direction)


@pytest.mark.parametrize('direction', [1.0, -1.0])
def test_disagreement_replay_novelty_follows_the_count_of_a_move(direction):
  # A replay that holds each move (row, col, right) a different number of
  # times, right moves rarer than left ones, and unrelated to the rarity
  # under a uniform policy.
  counts = {(r, c, right): (3 * r + 5 * c + 7) % 11 + (0 if right else 20)
            for r in range(N - 1) for c in range(r + 1)
            for right in (True, False)}
  def ensemble(feat, action):
    cells = np.argmax(feat[:, :N * N], -1)
    right = np.asarray(action)[:, 1] == mapping.reshape(-1)[cells]
    n = np.array([counts.get((*divmod(int(cell), N), bool(r)), 0)
                  for cell, r in zip(cells, right)], np.float32)
    x = 0.05 * (5.0 - direction * np.log1p(n) / 2)
    logits = np.zeros([3, len(cells), 1, 2], np.float32)
    logits[:, :, 0, 0] = np.arange(3.0)[:, None] * x
    return tf.nn.softmax(logits, -1)
  agent, mapping = oracle(ensemble=types.SimpleNamespace(predict=ensemble))
  result = deepsea_probe.probe(agent, N, samples=1, counts=counts)
  assert result['summary']['disagreement_replay_novelty'] == pytest.approx(
      direction)
  assert result['summary']['disagreement_novelty'] != pytest.approx(
      direction)  # The uniform policy's rarity ranks these moves otherwise.
  for row in result['cells']:
    for name, right in (('right', True), ('left', False)):
      assert row[f'{name}_count'] == counts.get(
          (row['row'], row['col'], right), 0)
  plain = deepsea_probe.probe(agent, N, samples=1)
  assert 'disagreement_replay_novelty' not in plain['summary']
  assert 'right_count' not in plain['cells'][0]


@pytest.mark.parametrize('signal,target', [
    (None, None), ('latent', 'stoch'), ('latent', 'embed')])
def test_a_real_agent_runs(signal, target):
  bindings = TINY + (
      [f"Exploration.signal = '{signal}'", 'Exploration.units = 16',
       f"Exploration.target = '{target}'"] if signal else [])
  agent = build(str(N * N), 'discrete:2', *bindings)
  result = deepsea_probe.probe(agent, N, samples=3)
  summary = result['summary']
  for key in ('reconstruct', 'reconstruct_row', 'reconstruct_diagonal',
              'imagine',
              'imagine_diagonal_right', 'actor_right_diagonal'):
    assert 0.0 <= summary[key] <= 1.0, key
  assert np.isfinite(summary['treasure_reward'])
  # An untrained actor is near uniform; the posterior is a 4 x 4 latent.
  assert summary['actor_right_diagonal'] == pytest.approx(0.5, abs=0.05)
  assert summary['actor_entropy'] == pytest.approx(np.log(2), abs=0.01)
  assert 0.0 < summary['posterior_entropy'] <= 4 * np.log(4) + 1e-4
  assert len(result['cells']) == N * (N + 1) // 2
  assert ('disagreement_other' in summary) == bool(signal)
  assert ('disagreement_novelty' in summary) == bool(signal)
  if signal:
    assert -1.0 <= summary['disagreement_novelty'] <= 1.0


def test_errors_name_the_fix():
  agent, _ = oracle()
  with pytest.raises(ValueError, match='deepsea:7'):
    deepsea_probe.probe(agent, 7)
  with pytest.raises(ValueError, match='samples=0'):
    deepsea_probe.probe(agent, N, samples=0)
  agent.act_space = spaces.parse_act_space('discrete:3')
  with pytest.raises(ValueError, match='2 choices'):
    deepsea_probe.probe(agent, N)
