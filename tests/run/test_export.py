"""SavedModel export: the reloaded policy equals Agent.policy exactly."""
import json
import types

import gin
import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import agent as agent_lib
from dreamer_tf import config
from dreamer_tf.run import export as export_lib
from dreamer_tf import spaces
from dreamer_tf.envs import base
from tests.conftest import TINY

# A key that needs renaming in signatures, a discrete and a continuous action.
OBS_SPACE = base.with_flags({'obs/pos': spaces.Space((3,)),
                             'velocity': spaces.Space((2,))})
ACT_SPACE = {'action': spaces.Space((), 'int32', classes=3),
             'arm': spaces.Space((2,), 'float32', low=-1.0, high=1.0)}
BATCH = 3


_AGENTS = {}


def make_agent(jit_compile=True):
  """A tiny agent, one per jit_compile setting for this module."""
  if jit_compile not in _AGENTS:
    gin.clear_config()
    config.parse([], TINY + [f'Agent.jit_compile = {jit_compile}'])
    _AGENTS[jit_compile] = agent_lib.Agent(OBS_SPACE, ACT_SPACE)
    gin.clear_config()
  return _AGENTS[jit_compile]


def inputs(batch, seed):
  """Random observations (some is_first) and a random carry."""
  rng = np.random.default_rng(seed)
  obs = {k: rng.normal(size=(batch, *s.shape)).astype(s.dtype)
         for k, s in OBS_SPACE.items()}
  obs['is_first'] = np.arange(batch) % 2 == 0
  carry = {
      'deter': rng.normal(size=(batch, 64)).astype(np.float32),
      'stoch': np.eye(4, dtype=np.float32)[rng.integers(0, 4, (batch, 4))],
      'action': rng.normal(size=(batch, 5)).astype(np.float32)}
  return obs, carry, np.array([seed, 7], np.int32)


def assert_same(actual, expected):
  assert sorted(actual) == sorted(expected)
  for key, value in expected.items():
    np.testing.assert_array_equal(np.asarray(actual[key]), np.asarray(value),
                                  err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize('mode, jit_compile', [(False, True), (True, False)],
                         ids=['sample-xla', 'mode'])
def test_reloaded_policy_equals_agent_policy(tmp_path, mode, jit_compile):
  agent = make_agent(jit_compile)
  export_lib.export(agent, str(tmp_path), mode=mode)
  loaded = tf.saved_model.load(str(tmp_path))
  serve = loaded.signatures['serving_default']
  # Any batch size: the signature's batch dimension is None.
  for batch, seed in [(BATCH, 1), (2, 2)]:
    obs, carry, seed = inputs(batch, seed)
    actions, new_carry, _ = agent.policy(obs, carry, seed, mode=mode)
    # The loaded object's function, with the agent's key names.
    got_actions, got_state = loaded.policy(obs, carry, seed)
    assert_same(got_actions, actions)
    assert_same(got_state, new_carry)
    # The flat serving signature.
    flat = {export_lib.signature_name(k): tf.constant(v)
            for k, v in obs.items()}
    flat.update({f'state_{k}': tf.constant(v) for k, v in carry.items()})
    out = serve(seed=tf.constant(seed), **flat)
    assert_same(out, {'action': actions['action'], 'arm': actions['arm'],
                      **{f'state_{k}': v for k, v in new_carry.items()}})
  assert set(serve.structured_input_signature[1]) == {
      'obs_pos', 'velocity', 'reward', 'is_first', 'is_last', 'is_terminal',
      'state_deter', 'state_stoch', 'state_action', 'seed'}
  assert_same(loaded.initial_state(2), agent.initial_carry(2))
  assert_same(loaded.signatures['initial_state'](batch=tf.constant(2)),
              {f'state_{k}': v for k, v in agent.initial_carry(2).items()})
  meta = json.loads(loaded.metadata().numpy())
  assert meta['mode'] == mode and meta['batch_size'] is None
  assert meta['inputs']['obs_pos'] == ['obs', 'obs/pos']
  assert meta['outputs']['state_deter'] == ['state', 'deter']
  assert meta['agent_signature']['RSSM.deter'] == 64


def test_fixed_batch_export(tmp_path):
  agent = make_agent(False)
  export_lib.export(agent, str(tmp_path), mode=True, batch_size=BATCH)
  serve = tf.saved_model.load(str(tmp_path)).signatures['serving_default']
  assert serve.structured_input_signature[1]['state_deter'].shape == (
      BATCH, 64)


def test_clashing_signature_names_are_refused():
  clash = types.SimpleNamespace(
      obs_space={**OBS_SPACE, 'obs_pos': spaces.Space((1,))},
      act_space=ACT_SPACE,
      initial_carry=lambda batch: {k: tf.zeros([batch, 2])
                                   for k in export_lib.STATE_KEYS})
  with pytest.raises(ValueError, match='clashing signature input'):
    export_lib._Layout(clash, None)  # pylint: disable=protected-access


def test_destination_must_be_new_empty_or_a_previous_export(tmp_path):
  check = export_lib.check_destination
  check(str(tmp_path / 'new'))
  check(str(tmp_path))  # Empty.
  previous = tmp_path / 'previous'
  previous.mkdir()
  (previous / export_lib.SAVED_MODEL_FILE).write_bytes(b'')
  check(str(previous))
  (tmp_path / 'notes.txt').write_text('the user\'s file\n')
  with pytest.raises(FileExistsError,
                     match=f'{tmp_path} is not empty.*--overwrite'):
    check(str(tmp_path))
  check(str(tmp_path), overwrite=True)
  with pytest.raises(FileExistsError, match='notes.txt is a file'):
    check(str(tmp_path / 'notes.txt'), overwrite=True)
