"""Atari via ale_py.ALEInterface with the DreamerV3 protocols (spec §5.1).

Presets (spec §5.1 and the Decisions table):
  atari57:   96x96 grayscale, sticky 0.25, full 18 actions
  atari100k: 64x64 RGB, no sticky actions, minimal action set
Both: 0-30 uniform NOOPs at reset, repeat 4 with the reward summed (raw,
unclipped), max-pool over the last 2 emulator frames of a step, Pillow
bilinear resize from 210x160, a cap of 108,000 emulator frames counted from
the end of the NOOPs (27,000 agent steps), no life-loss signal.

Differences from HEAD, on purpose (Decisions table, spec §8.16):
* `is_terminal` only on game over; the frame cap is `is_last` only
  (`terminal_on_timelimit=True` restores HEAD's is_terminal = is_last).
* The first frame of an episode is the real screen (both pooling buffers
  hold it), not black (HEAD's bug fixed in PR #213).
Sticky actions and NOOPs are implemented here with the env's own seeded RNG
(ALE's `repeat_action_probability` is 0): on every emulator frame, NOOPs
included, the previous frame's action is repeated with probability `sticky`;
the sticky action is NOOP after a reset, as in ALE.

`get_state` / `set_state` snapshot the emulator (ALE `cloneState` with its
RNG) together with the adapter's own state (sticky/NOOP RNG, last action,
pooling buffers, frame counter, reset flag), so a restored env continues
the very same episode; the blob records the game and settings and refuses
to restore into an env with others.
"""
import re

import numpy as np

from dreamer_tf import spaces
from dreamer_tf.envs import base
from dreamer_tf.envs import images

PRESETS = {
    'atari57': dict(size=(96, 96), gray=True, sticky=0.25, actions='all'),
    'atari100k': dict(size=(64, 64), gray=False, sticky=0.0,
                      actions='needed'),
}
# Luma weights of the grayscale conversion (spec §5.1).
LUMA = np.array([0.299, 0.587, 1 - (0.299 + 0.587)])


def import_ale():
  """ale_py (with its bundled ROMs), or an ImportError naming the fix."""
  try:
    import ale_py  # pylint: disable=import-outside-toplevel
    import ale_py.roms  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(
        "ale-py is not installed: pip install -e '.[atari]'") from e
  images.pillow()
  return ale_py


def rom_id(game):
  """'Pong' / 'MontezumaRevenge' / 'montezuma_revenge' -> ALE ROM id."""
  ale_py = import_ale()
  # An underscore before every capital but the first: UpNDown -> up_n_down.
  name = re.sub(r'(?<!^)(?<!_)(?=[A-Z])', '_', game).lower()
  name = {'james_bond': 'jamesbond'}.get(name, name)
  ids = ale_py.roms.get_all_rom_ids()
  if name not in ids:
    raise ValueError(
        f'Unknown Atari game {game!r} (ROM id {name!r})'
        f'{base.suggest(name, ids)}. Use a CamelCase or snake_case ALE game '
        "name, e.g. 'Pong' or 'montezuma_revenge'.")
  return name


class Atari(base.Env):
  """One Atari game; see the module docstring for the protocol.

  game: ALE game name, e.g. 'Pong'.
  preset: 'atari57' or 'atari100k': the defaults of size, gray, sticky and
    actions (an explicit value overrides the preset's).
  size: (height, width) of the image; gray: 1 luma channel instead of RGB.
  repeat: emulator frames per agent step; pooling: max over the last
    `pooling` frames of a step.
  sticky: probability of repeating the previous frame's action.
  actions: 'all' (18) or 'needed' (the game's minimal set).
  noops: the reset takes uniform 0..noops NOOP frames.
  length: emulator-frame cap per episode (None: no cap).
  terminal_on_timelimit: HEAD's is_terminal = is_last at the cap.
  seed: seeds NOOPs, sticky actions and the emulator.
  """

  def __init__(self, game, preset='atari57', size=None, gray=None,
               sticky=None, actions=None, repeat=4, pooling=2, noops=30,
               length=108000, terminal_on_timelimit=False, seed=None):
    if preset not in PRESETS:
      raise ValueError(
          f'Unknown Atari preset {preset!r}: use one of {sorted(PRESETS)}.')
    defaults = PRESETS[preset]
    actions = defaults['actions'] if actions is None else actions
    sticky = defaults['sticky'] if sticky is None else sticky
    if actions not in ('all', 'needed'):
      raise ValueError(f"actions={actions!r}: use 'all' or 'needed'.")
    if not 1 <= pooling <= repeat:
      raise ValueError(f'Need 1 <= pooling ({pooling}) <= repeat ({repeat}).')
    if not 0 <= sticky <= 1:
      raise ValueError(f'sticky={sticky} must be a probability in [0, 1].')
    self._size = tuple(defaults['size'] if size is None else size)
    self._gray = defaults['gray'] if gray is None else gray
    self._sticky, self._all_actions = sticky, actions == 'all'
    self._repeat, self._pooling, self._noops = repeat, pooling, noops
    self._length, self._terminal_on_timelimit = length, terminal_on_timelimit
    ale_py = import_ale()
    self._game = rom_id(game)
    rom = ale_py.roms.get_rom_path(self._game)
    self._rng = np.random.default_rng(seed)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    self._ale = ale_py.ALEInterface()
    self._ale.setInt('random_seed', int(self._rng.integers(0, 2 ** 31)))
    self._ale.setFloat('repeat_action_probability', 0.0)
    self._ale.loadROM(rom)
    self._actions = (self._ale.getLegalActionSet() if self._all_actions
                     else self._ale.getMinimalActionSet())
    self._noop = ale_py.Action.NOOP
    self._last = self._noop  # Last action executed (for sticky actions).
    h, w = self._ale.getScreenDims()
    self._buffers = np.zeros((self._pooling, h, w, 3), np.uint8)
    self._frames = 0  # Emulator frames in this episode after the NOOPs.

  @property
  def obs_space(self):
    shape = (*self._size, 1 if self._gray else 3)
    return base.with_flags(
        {'image': spaces.Space(shape, 'uint8', low=0, high=255)})

  @property
  def act_space(self):
    return {'action': spaces.Space((), 'int32', classes=len(self._actions))}

  @property
  def ale(self):
    """The ALEInterface (for inspection, e.g. getEpisodeFrameNumber)."""
    return self._ale

  def _act(self, action):
    """One emulator frame with sticky actions; returns the reward."""
    if self._rng.random() >= self._sticky:
      self._last = action
    return self._ale.act(self._last)

  def _grab(self):
    """Pushes the current screen into the pooling ring (newest first)."""
    self._buffers = np.roll(self._buffers, 1, axis=0)
    self._ale.getScreenRGB(self._buffers[0])

  def _reset(self):
    self._ale.reset_game()
    self._last = self._noop
    for _ in range(int(self._rng.integers(self._noops + 1))):
      self._act(self._noop)
      if self._ale.game_over():
        self._ale.reset_game()
    self._frames = 0
    self._ale.getScreenRGB(self._buffers[0])
    self._buffers[1:] = self._buffers[0]  # Real first frame (PR #213).
    return self._obs(is_first=True)

  def _step(self, action):
    act = self._actions[int(action['action'])]
    reward, over, capped = 0.0, False, False
    for i in range(self._repeat):
      reward += self._act(act)
      self._frames += 1
      over = self._ale.game_over()
      capped = self._length is not None and self._frames >= self._length
      if i >= self._repeat - self._pooling or over or capped:
        self._grab()
      if over or capped:
        break
    terminal = over or (capped and self._terminal_on_timelimit)
    return self._obs(reward, is_last=over or capped, is_terminal=terminal)

  def _obs(self, reward=0.0, **flags):
    image = self._buffers.max(0)  # [210, 160, 3]
    image = images.resize(image, self._size)  # [*size, 3]
    if self._gray:
      image = (image * LUMA).sum(-1).astype(np.uint8)[..., None]
    return base.observation({'image': image}, reward=reward, **flags)

  def _settings(self):
    """Everything that must match for a state to be restorable."""
    return dict(
        game=self._game, size=self._size, gray=bool(self._gray),
        sticky=float(self._sticky), all_actions=self._all_actions,
        repeat=self._repeat, pooling=self._pooling, noops=self._noops,
        length=self._length,
        terminal_on_timelimit=bool(self._terminal_on_timelimit))

  def get_state(self):
    """The emulator with its RNG plus the adapter's state (see module)."""
    return base.pack_state('atari', self._settings(), dict(
        ale=self._ale.cloneState(include_rng=True).serialize(),
        rng=self._rng.bit_generator.state,
        last=self._last.value, buffers=self._buffers.copy(),
        frames=self._frames, needs_reset=bool(self._needs_reset)))

  def set_state(self, state):
    """Restores `get_state` output of an env with the same game/settings."""
    ale_py = import_ale()
    state = base.unpack_state(state, 'atari', self._settings())
    self._ale.restoreState(ale_py.ALEState(state['ale']))
    self._rng.bit_generator.state = state['rng']
    self._last = ale_py.Action(state['last'])
    self._buffers[...] = state['buffers']
    self._frames = state['frames']
    self._needs_reset = state['needs_reset']

  def close(self):
    self._ale = None
