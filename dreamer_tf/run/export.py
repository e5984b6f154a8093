"""Exports a trained policy as a TensorFlow SavedModel.

  export(agent, 'policy_dir', mode=False)        # an Agent in memory
  export_run('runs/cartpole', 'policy_dir')      # a run's newest checkpoint

The SavedModel holds the variables the policy reads (encoder, RSSM, actor)
and calls `Agent.policy`, so a reloaded model returns exactly the actions
and state of the agent for the same observations, state and seed. Sampling
is stateless: the caller passes a fresh int32[2] `seed` each step.

Signatures (flat, for TF Serving and `saved_model_cli`; names are the keys
with characters other than [A-Za-z0-9_] replaced by '_'):

  serving_default
    inputs:  every observation key of the agent's obs space incl. is_first
             [B, ...] (reward, is_last, is_terminal are accepted, unused);
             state_deter [B, D], state_stoch [B, S, K], state_action
             [B, A] (the previous action, one-hot for discrete keys);
             seed int32[2]
    outputs: every action key in the format of dreamer_tf's Env protocol:
             int32 index [B] for discrete keys, float32 [B, n] in [-1, 1]
             for continuous ones (the env adapters rescale to the env's
             bounds); state_deter, state_stoch, state_action (feed back)
  initial_state(batch int32 []) -> state_deter, state_stoch, state_action

Functions of the object `tf.saved_model.load` returns, with the agent's own
key names:

  policy(obs, state, seed) -> (actions, state)   state {deter, stoch, action}
  initial_state(batch) -> state
  metadata() -> JSON: mode, batch size, signature names -> keys, spaces

A new episode starts from `initial_state` or simply with is_first=True
(the policy resets the state of those rows itself). The batch dimension is
None unless `batch_size` fixes it.

The destination must be a new or empty directory, or a previous export
(a SavedModel: it is written over); anything else is refused
(`check_destination`) unless `overwrite`, since the SavedModel's files
would be mixed with (or replace) files it does not own.
"""
import functools
import json
import os
import re

import tensorflow as tf

STATE_KEYS = ('deter', 'stoch', 'action')
# The file that makes a directory a SavedModel (tf.saved_model.save).
SAVED_MODEL_FILE = 'saved_model.pb'


def signature_name(key):
  """'obs/pos' -> 'obs_pos': a valid signature argument name."""
  name = re.sub(r'[^A-Za-z0-9_]', '_', key)
  return name if re.match(r'[A-Za-z]', name) else f'key_{name}'


class PolicyModule(tf.Module):
  """The agent's acting step as a tf.Module ready for tf.saved_model.save.

  mode: act with the policy's mode instead of sampling.
  batch_size: the exported batch dimension (None: any).
  """

  def __init__(self, agent, mode=False, batch_size=None):
    super().__init__(name='dreamer_policy')
    self._agent = agent
    self._mode = bool(mode)
    self._batch_size = batch_size
    layers = (agent.wm.encoder, agent.wm.rssm, agent.actor)
    # Tracked by tf.saved_model.save (the functions capture them).
    self.policy_variables = [v for layer in layers for v in layer.variables]
    # A plain object: tf.Module would wrap dict attributes for tracking.
    self._layout = _Layout(agent, batch_size)
    layout = self._layout
    seed = tf.TensorSpec([2], tf.int32)
    function = functools.partial(tf.function, autograph=False)
    self.policy = function(self._policy, input_signature=[
        layout.obs_spec, layout.state_spec, seed])
    self.initial_state = function(
        self._initial_state, input_signature=[tf.TensorSpec([], tf.int32)])
    self.serve = function(self._serve, input_signature=[{
        name: tf.TensorSpec(spec.shape, spec.dtype, name=name)
        for name, (_, spec) in layout.inputs.items()}])
    self.serve_initial_state = function(
        lambda batch: {f'state_{k}': v for k, v in
                       self._initial_state(batch).items()},
        input_signature=[tf.TensorSpec([], tf.int32, name='batch')])
    self.metadata = function(self._metadata, input_signature=[])

  def _policy(self, obs, state, seed):
    actions, carry, _ = self._agent.policy(obs, state, seed, mode=self._mode)
    return actions, {k: carry[k] for k in STATE_KEYS}

  def _initial_state(self, batch):
    carry = self._agent.initial_carry(batch)
    return {k: carry[k] for k in STATE_KEYS}

  def _serve(self, inputs):
    parts = {'obs': {}, 'state': {}}
    for name, ((part, key), _) in self._layout.inputs.items():
      if part == 'seed':
        seed = inputs[name]
      else:
        parts[part][key] = inputs[name]
    actions, state = self._policy(parts['obs'], parts['state'], seed)
    values = {'action': actions, 'state': state}
    return {name: values[part][key]
            for name, (part, key) in self._layout.outputs.items()}

  def _metadata(self):
    return tf.constant(json.dumps(self.describe()))

  def describe(self):
    """What `metadata()` returns (a dict, here)."""
    agent, layout = self._agent, self._layout
    space = lambda s: dict(shape=list(s.shape), dtype=s.dtype,
                           classes=s.classes)
    return dict(
        mode=self._mode, batch_size=self._batch_size,
        inputs={name: list(where) for name, (where, _) in
                layout.inputs.items()},
        outputs={name: list(where) for name, where in
                 layout.outputs.items()},
        obs_space={k: space(s) for k, s in agent.obs_space.items()},
        act_space={k: space(s) for k, s in agent.act_space.items()},
        agent_signature=json.loads(json.dumps(agent.signature())))

  def signatures(self):
    """The serving signatures as concrete functions (see the module doc)."""
    serve = self.serve.get_concrete_function()
    return {'serving_default': serve,
            'initial_state': self.serve_initial_state.get_concrete_function()}


class _Layout:
  """Tensor specs and signature names of an agent's policy.

  inputs: {signature name: ((part, key), TensorSpec)} with part 'obs',
  'state' or 'seed'; outputs: {signature name: (part, key)} with part
  'action' or 'state'.
  """

  def __init__(self, agent, batch_size):
    carry = agent.initial_carry(1)
    self.obs_spec = {k: tf.TensorSpec([batch_size, *s.shape], s.dtype)
                     for k, s in agent.obs_space.items()}
    self.state_spec = {k: tf.TensorSpec([batch_size, *carry[k].shape[1:]],
                                        carry[k].dtype) for k in STATE_KEYS}
    self.inputs = {signature_name(k): (('obs', k), spec)
                   for k, spec in self.obs_spec.items()}
    self.inputs.update({f'state_{k}': (('state', k), spec)
                        for k, spec in self.state_spec.items()})
    self.inputs['seed'] = (('seed', None), tf.TensorSpec([2], tf.int32))
    self.outputs = {signature_name(k): ('action', k) for k in agent.act_space}
    self.outputs.update({f'state_{k}': ('state', k) for k in STATE_KEYS})
    state = [f'state_{k}' for k in STATE_KEYS]
    _check_unique(list(agent.obs_space) + state + ['seed'], self.inputs,
                  'input')
    _check_unique(list(agent.act_space) + state, self.outputs, 'output')


def _check_unique(keys, names, what):
  if len(set(names)) != len(keys):
    raise ValueError(
        f'The keys {sorted(keys)} give clashing signature {what} names '
        f'{sorted(names)}: rename the keys.')


def check_destination(path, overwrite=False):
  """Raises FileExistsError unless a SavedModel may be written to `path`:
  a new or empty directory, a previous export, or with `overwrite` any
  directory (module doc)."""
  if not os.path.exists(path):
    return
  if not os.path.isdir(path):
    raise FileExistsError(
        f'{path} is a file: the export is a SavedModel directory. Pass a '
        'new directory as --out.')
  if overwrite or not os.listdir(path) or os.path.exists(
      os.path.join(path, SAVED_MODEL_FILE)):
    return
  raise FileExistsError(
      f'{path} is not empty and is not a previous export (it has no '
      f'{SAVED_MODEL_FILE}): the SavedModel would be mixed with its files. '
      'Pass a new or empty directory as --out, or --overwrite to write into '
      'it anyway (its other files are kept).')


def export(agent, path, mode=False, batch_size=None, overwrite=False):
  """Saves the agent's policy to `path` (a SavedModel directory; see
  `check_destination` for where, and `overwrite`).

  Returns the PolicyModule that was saved.
  """
  check_destination(path, overwrite)
  module = PolicyModule(agent, mode=mode, batch_size=batch_size)
  tf.saved_model.save(module, path, signatures=module.signatures())
  return module


def export_run(logdir, path, mode=False, batch_size=None, overwrite=False):
  """Exports the newest checkpoint of a run (see run/evaluate.py for how
  the run's config and checkpoint are read); returns the PolicyModule.
  The destination is checked first, before the run is read."""
  # pylint: disable-next=import-outside-toplevel
  from dreamer_tf.run import evaluate
  check_destination(path, overwrite)
  agent, _ = evaluate.restore_agent(logdir)
  return export(agent, path, mode=mode, batch_size=batch_size,
                overwrite=overwrite)
