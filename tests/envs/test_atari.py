"""Atari protocols on Pong (spec §5.1, §8.16, Decisions table)."""
import functools
import sys

import numpy as np
import pytest

from dreamer_tf import envs
from dreamer_tf.envs import atari
from dreamer_tf.envs import base
from tests.conftest import assert_same
from dreamer_tf.envs import parallel

# Pong's minimal action set: NOOP, FIRE, RIGHT (up), LEFT (down), ...
NOOP, UP = 0, 2


def rollout(env, actions):
  """The reset obs, then one obs per action index; all obs checked."""
  out = [env.step(None)]
  for action in actions:
    out.append(env.step({'action': action}))
  for obs in out:
    base.check_obs(obs, env.obs_space)
  return out


def images(obs):
  return np.stack([o['image'] for o in obs])


@pytest.mark.parametrize('name, shape, actions', [
    ('atari:Pong', (96, 96, 1), 18),
    ('atari100k:Pong', (64, 64, 3), 6),
])
def test_presets_spaces_and_real_first_frame(name, shape, actions):
  env = envs.make(name, seed=0)
  assert env.obs_space['image'].shape == shape
  assert env.obs_space['image'].dtype == 'uint8'
  assert env.act_space['action'].classes == actions
  first, *rest = rollout(env, [1] * 3)
  assert first['image'].shape == shape and first['is_first']
  # Not black (HEAD's bug before PR #213): a real Pong frame.
  assert first['image'].min() != first['image'].max()
  assert first['image'].mean() > 50
  assert not any(o['is_first'] for o in rest)
  env.close()


def test_reset_frame_is_the_current_screen():
  # Both pooling buffers hold the reset screen: no black frame (PR #213) and
  # no stale frame of the previous episode in the max.
  env = atari.Atari('Pong', preset='atari100k', seed=0, size=(210, 160),
                    length=400)
  for _ in range(3):
    obs = env.step(None)
    np.testing.assert_array_equal(obs['image'], env.ale.getScreenRGB())
    while not env.step({'action': UP})['is_last']:
      pass


def test_grayscale_uses_luma_of_the_resized_rgb():
  rgb = rollout(envs.make('atari100k:Pong', seed=0, noops=0,
                          size=(96, 96)), [])[0]['image']
  gray = rollout(envs.make('atari:Pong', seed=0, noops=0, sticky=0.0),
                 [])[0]['image']
  np.testing.assert_array_equal(
      gray[..., 0], (rgb * atari.LUMA).sum(-1).astype(np.uint8))


def test_noops_are_uniform_in_0_to_30_and_seeded():
  def reset_frames(seed, episodes, **kw):
    # A 4-frame cap ends every episode after one step, so each second call
    # resets; the ALE frame counter then equals the number of NOOPs.
    env = atari.Atari('Pong', preset='atari100k', seed=seed, length=4, **kw)
    frames = []
    for _ in range(episodes):
      assert env.step(None)['is_first']
      frames.append(env.ale.getEpisodeFrameNumber())
      assert env.step({'action': NOOP})['is_last']
    return frames
  frames = reset_frames(1, 12)
  assert all(0 <= f <= 30 for f in frames) and len(set(frames)) > 3
  assert reset_frames(1, 12) == frames
  assert reset_frames(2, 12) != frames
  assert reset_frames(1, 3, noops=0) == [0, 0, 0]


def test_sticky_actions_are_seeded_and_respected():
  actions = np.random.default_rng(0).choice([UP, 3], 40)  # Up and down.
  def run(seed, sticky, acts=actions):
    env = atari.Atari('Pong', preset='atari100k', seed=seed, sticky=sticky,
                      noops=0)
    return images(rollout(env, acts))
  noop = run(0, 0.0, [NOOP] * 40)
  # Always sticky: the NOOP after reset is repeated forever.
  np.testing.assert_array_equal(run(0, 1.0), noop)
  # Never sticky: the paddle moves.
  assert not np.array_equal(run(0, 0.0), noop)
  # p = 0.25 is reproducible per seed and differs across seeds.
  np.testing.assert_array_equal(run(5, 0.25), run(5, 0.25))
  assert not np.array_equal(run(5, 0.25), run(6, 0.25))
  assert not np.array_equal(run(5, 0.25), run(5, 0.0))


def test_atari57_is_seeded_end_to_end():
  actions = np.random.default_rng(1).integers(0, 18, 30)
  def run(seed):
    return images(rollout(envs.make('atari:Pong', seed=seed), actions))
  np.testing.assert_array_equal(run(2), run(2))


def test_reward_is_summed_and_frames_max_pooled_over_the_repeat():
  kw = dict(preset='atari100k', seed=0, noops=0, size=(210, 160))
  coarse = rollout(atari.Atari('Pong', **kw), [NOOP] * 150)
  fine = rollout(atari.Atari('Pong', repeat=1, pooling=1, **kw),
                 [NOOP] * 600)
  fine_rewards = np.array([o['reward'] for o in fine[1:]]).reshape(150, 4)
  coarse_rewards = np.array([o['reward'] for o in coarse[1:]])
  np.testing.assert_array_equal(coarse_rewards, fine_rewards.sum(1))
  assert coarse_rewards.sum() <= -2  # The opponent scored: not all zeros.
  for t in range(1, 151):
    pooled = np.maximum(fine[4 * t - 1]['image'], fine[4 * t]['image'])
    np.testing.assert_array_equal(coarse[t]['image'], pooled)


@pytest.mark.parametrize('timelimit_terminal', [False, True])
def test_frame_cap_is_last_only(timelimit_terminal):
  env = envs.make('atari100k:Pong', seed=0, length=40,
                  terminal_on_timelimit=timelimit_terminal)
  obs = rollout(env, [UP] * 11)
  assert [bool(o['is_last']) for o in obs] == [False] * 10 + [True, False]
  assert bool(obs[10]['is_terminal']) == timelimit_terminal
  assert obs[11]['is_first'] and obs[11]['reward'] == 0


def test_game_over_is_terminal():
  env = envs.make('atari100k:Pong', seed=0)  # 108k-frame cap: not reached.
  obs = env.step(None)
  steps, score = 0, 0.0
  while not obs['is_last']:
    obs = env.step({'action': NOOP})
    steps, score = steps + 1, score + obs['reward']
    assert not obs['is_terminal'] or obs['is_last']
  assert obs['is_terminal'] and score == -21 and steps < 27000
  assert env.step({'action': NOOP})['is_first']


def test_unknown_game_suggests_close_name():
  with pytest.raises(ValueError, match=r"'Pongg'.*did you mean 'pong'"):
    envs.make('atari:Pongg')
  assert atari.rom_id('MontezumaRevenge') == 'montezuma_revenge'
  assert atari.rom_id('space_invaders') == 'space_invaders'
  assert atari.rom_id('UpNDown') == 'up_n_down'
  assert atari.rom_id('JamesBond') == 'jamesbond'
  assert atari.rom_id('WizardOfWor') == 'wizard_of_wor'


def test_bad_parameters_name_the_fix():
  with pytest.raises(ValueError, match="'all' or 'needed'"):
    atari.Atari('Pong', actions='minimal')
  with pytest.raises(ValueError, match='preset'):
    atari.Atari('Pong', preset='atari200m')


def test_missing_ale_names_the_install_command(monkeypatch):
  monkeypatch.setitem(sys.modules, 'ale_py', None)
  with pytest.raises(ImportError, match=r"pip install -e '\.\[atari\]'"):
    envs.make('atari:Pong')


@pytest.mark.parametrize('name, kw, warmup, steps', [
    # Sticky 0.25 and 18 actions; the 200-frame cap (50 steps) ends the
    # episode inside the replay, so the reset's NOOPs come from the
    # restored RNG too. After 33 steps the 1st frame of the replay repeats
    # the restored last action (sticky).
    ('atari:Pong', dict(length=200), 33, 40),
    # The cap hits on the 1st frame of the 1st step after the restore: its
    # obs max-pools that frame with the restored buffer's newest frame.
    ('atari100k:Pong', dict(noops=0, length=41), 10, 3),
    # Saved right after is_last: the replay starts with a reset.
    ('atari100k:Pong', dict(length=40), 10, 3),
])
def test_state_continues_the_episode_exactly(name, kw, warmup, steps):
  rng = np.random.default_rng(0)
  a = envs.make(name, seed=0, **kw)
  classes = a.act_space['action'].classes
  rollout(a, rng.integers(0, classes, warmup))
  state = a.get_state()
  assert isinstance(state, bytes)
  actions = rng.integers(0, classes, steps)
  expected = [a.step({'action': act}) for act in actions]
  assert any(o['is_first'] or o['is_last'] for o in expected)  # A boundary.
  b = envs.make(name, seed=1, **kw)  # Other seed, mid-episode elsewhere.
  rollout(b, rng.integers(0, classes, 5))
  b.set_state(state)
  assert_same([b.step({'action': act}) for act in actions], expected)


def test_parallel_states_move_between_workers():
  ctors = [functools.partial(envs.make, 'atari:Pong', seed=i)
           for i in range(2)]
  rng = np.random.default_rng(0)
  with parallel.ParallelEnvs(ctors) as pool:
    pool.step({'action': np.zeros(2, np.int32)})
    for _ in range(10):
      pool.step({'action': rng.integers(0, 18, 2)})
    states = pool.get_states()
    actions = rng.integers(0, 18, (8, 2))
    expected = [pool.step({'action': act}) for act in actions]
    pool.set_states(states[::-1])  # Worker 0 continues worker 1's episode.
    got = [pool.step({'action': act[::-1]}) for act in actions]
  assert not np.array_equal(expected[-1]['image'][0],
                            expected[-1]['image'][1])
  assert_same([{k: v[::-1] for k, v in obs.items()} for obs in got],
              expected)


def test_state_of_another_game_or_setting_is_refused():
  state = envs.make('atari:Pong', seed=0).get_state()  # Before any step.
  with pytest.raises(ValueError, match=(
      r"other settings \(game='pong' in the state, 'breakout' here\)")):
    envs.make('atari:Breakout').set_state(state)
  with pytest.raises(ValueError, match=r'sticky=0.25 in the state, 0.0 here'):
    envs.make('atari:Pong', sticky=0.0).set_state(state)
  with pytest.raises(ValueError, match=(
      r"Not an env state of the atari adapter \(saved by 'dmc'\)")):
    envs.make('atari:Pong').set_state(base.pack_state('dmc', {}, None))
