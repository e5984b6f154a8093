"""The ensemble-novelty experiment (analysis/ensemble_novelty.py): its data,
its summary by hand, and a run on a real agent."""
import math

import numpy as np
import pytest

from dreamer_tf.analysis import deepsea_probe
from dreamer_tf.analysis import ensemble_novelty
from dreamer_tf.envs import deepsea
from tests.conftest import TINY
from tests.model.test_agent import build

N = 5


def test_random_episodes_follow_the_env_and_never_hold_out_moves():
  obs, actions, counts = ensemble_novelty.random_episodes(
      N, 200, hold_out_from=2, seed=3)
  assert obs.shape == (200, N, N * N) and actions.shape == (200, N)
  assert sum(counts.values()) == 200 * (N - 1)
  assert all(not (right and r == c and r >= 2)
             for r, c, right in counts)
  # Every other move from a reachable cell is drawn.
  assert counts[(0, 0, True)] > 50 and counts[(1, 1, False)] > 20
  # Replaying the actions in the env gives the observations.
  env = deepsea.DeepSeaEnv(size=N)
  for e in range(20):
    seen = [env.reset(seed=0)[0]]
    for a in actions[e, :N - 1]:
      seen.append(env.step(int(a))[0])
    np.testing.assert_array_equal(np.stack(seen), obs[e])
  # The counts are the moves the observations show.
  brute = {}
  mapping = np.asarray(env.action_mapping)
  for e in range(200):
    cells = np.argmax(obs[e], -1)
    for r in range(N - 1):
      c = cells[r] % N
      right = int(actions[e, r]) == int(mapping[r, c])
      brute[(r, c, right)] = brute.get((r, c, right), 0) + 1
  assert brute == counts


def test_summary_by_hand():
  moves = [(0, 0, True), (0, 0, False), (1, 1, True), (1, 0, False)]
  counts = {(0, 0, True): 9, (0, 0, False): 3, (1, 0, False): 1}
  spread = np.array([0.1, 0.2, 0.8, 0.4])
  out = ensemble_novelty._summary(moves, spread, counts, 1, loss=2.0)
  assert out['held_out'] == pytest.approx(0.8)  # (1, 1) right
  assert out['seen'] == pytest.approx(np.mean([0.1, 0.2, 0.4]))
  assert out['held_out_ratio'] == pytest.approx(0.8 / np.mean([.1, .2, .4]))
  # Fewer visits, more disagreement: rho = +1.
  assert out['novelty_correlation'] == pytest.approx(1.0)
  assert out['loss'] == 2.0
  assert math.isclose(deepsea_probe.rank_correlation(
      [math.log1p(k) for k in (9, 3, 0, 1)], spread), -1.0)


def test_a_real_agent_gives_both_targets():
  agent = build(str(N * N), 'discrete:2', *TINY)
  result = ensemble_novelty.novelty(agent, N, episodes=32, steps=3,
                                    batch=16, hold_out_from=2, samples=2)
  assert set(result) == {'stoch', 'embed'}
  for target, out in result.items():
    assert -1.0 <= out['novelty_correlation'] <= 1.0, target
    assert out['held_out'] > 0 and out['seen'] > 0, target
    assert np.isfinite(out['loss']), target


def test_errors_name_the_fix():
  agent = build(str(N * N), 'discrete:2', *TINY)
  with pytest.raises(ValueError, match=r'rows? in 1 \.\. 3'):
    ensemble_novelty.novelty(agent, N, hold_out_from=4)
  with pytest.raises(ValueError, match='samples >= 1'):
    ensemble_novelty.novelty(agent, N, hold_out_from=2, samples=0)
  with pytest.raises(ValueError, match='episodes >= batch'):
    ensemble_novelty.novelty(agent, N, episodes=8, batch=16,
                             hold_out_from=2)
  with pytest.raises(ValueError, match='deepsea:7'):
    ensemble_novelty.novelty(agent, 7)
