"""The DreamerV3 agent: model assembly, state I/O, policy and train (§3, §4).

* Assembly: world model, actor, critic, slow critic, return normaliser and
  LaProp optimizer, created under the strategy's scope with deterministic
  init seeds; with exploration (explore.py) also the ensemble and its
  optimizer, and an intrinsic critic, slow critic and return normaliser.
* State I/O: `get_state`/`set_state` for exact resumes, `signature` and
  `parameter_counts` describing the model.
* Acting: `policy`, one compiled posterior + actor step per env step (§4.1).
* Training: `train` runs one update, whose loss is in update.py and whose
  placement on the strategy (XLA, replicas, the non-finite skip) is in
  placement.py.
"""
import dataclasses

import gin
import numpy as np
import tensorflow as tf

from dreamer_tf.config_check import ConfigError
from dreamer_tf.model import behavior
from dreamer_tf.model import explore as explore_lib
from dreamer_tf.model import nets
from dreamer_tf.model import optim
from dreamer_tf.model import placement
from dreamer_tf.model import priority as priority_lib
from dreamer_tf import spaces as spaces_lib
from dreamer_tf.model import world_model

DEFAULT_LOSS_SCALES = dict(
    rec=1.0, reward=1.0, cont=1.0, dyn=1.0, rep=0.1, policy=1.0, value=1.0,
    repval=0.3)
PRECISIONS = {'float32': 'float32', 'bfloat16': 'mixed_bfloat16'}
ACTOR_GRADS = ('reinforce', 'backprop')
EXTRINSIC, INTRINSIC = behavior.EXTRINSIC, explore_lib.INTRINSIC
# Init seeds of the exploration modules: their own stream, so that turning
# exploration on leaves every other module's initial weights unchanged.
EXPLORE_SEED_OFFSET = 1_000_003


@gin.configurable
class Agent:
  """World model + actor-critic + optimizer, with compiled steps.

  obs_space, act_space: dicts of `spaces.Space`; `log/` observation keys
  (episode statistics) are dropped. All other arguments are gin
  parameters with the spec's defaults. `precision` is the compute dtype
  ('float32' or 'bfloat16'; parameters and losses stay float32);
  `jit_compile` turns XLA on for the compiled steps. Both default to 'auto',
  chosen from the benchmarks in README.md (see `resolve_auto`).
  `reward_grad=False` stops the reward loss's gradient at the reward head's
  input features (official `reward_grad`); `repval_loss` and `repval_grad`
  switch the replay-value loss and its gradient into the world model (§3.7).
  `actor_grad` is the actor's gradient estimator: 'reinforce' (the paper
  and the official code since 2024, §3.6) or 'backprop' (the 2023 recipe's
  choice for continuous actions: the imagined returns are differentiated
  through the frozen world model and critic, update.py); 'backprop' needs
  every action key continuous and no exploration stream.
  `exploration` (gin `Exploration`, explore.py) adds the ensemble and the
  intrinsic reward stream; `priority` (gin `Priority`, priority.py) says
  how `train` turns an update's signals into replay priorities.
  `strategy` (not gin: `train.strategy`, run/distribute.py) is the
  tf.distribute strategy, default the current one; `batch_size` is the
  global batch, split evenly over its replicas, so it must be divisible by
  their number (ConfigError otherwise).
  """

  def __init__(
      self, obs_space, act_space, batch_size=16, batch_length=64,
      replay_context=1, imag_length=15, horizon=333, lam=0.95,
      contdisc=True, loss_scales=None, slow_rate=0.02, reward_grad=True,
      repval_loss=True, repval_grad=True, actor_grad='reinforce',
      precision='auto', jit_compile='auto', seed=0, strategy=None,
      exploration=None, priority=None):
    spaces_lib.check_obs_space(obs_space)
    spaces_lib.check_act_space(act_space)
    obs_space = {k: v for k, v in obs_space.items()
                 if not k.startswith('log/')}
    precision, jit_compile = resolve_auto(obs_space, precision, jit_compile)
    if precision not in PRECISIONS:
      raise ValueError(f'Agent.precision={precision!r}; use one of '
                       f'{sorted(PRECISIONS)}.')
    self.obs_space, self.act_space = obs_space, act_space
    self.batch_size, self.batch_length = batch_size, batch_length
    self.replay_context = replay_context
    self.imag_length, self.horizon, self.lam = imag_length, horizon, lam
    self.contdisc, self.slow_rate = contdisc, slow_rate
    self.reward_grad = reward_grad
    self.repval_loss, self.repval_grad = repval_loss, repval_grad
    self.actor_grad = actor_grad
    self.precision, self.jit_compile, self.seed = precision, jit_compile, seed
    self.strategy = strategy or tf.distribute.get_strategy()
    replicas = self.strategy.num_replicas_in_sync
    if batch_size % replicas:
      raise ConfigError(
          f'Agent.batch_size={batch_size} is not divisible by the '
          f'{replicas} replicas of the strategy: every replica trains an '
          f'equal share of the global batch. Bind Agent.batch_size to a '
          f'multiple of {replicas}, or train on a replica count that '
          'divides it (launch.train --cpu_replicas, or fewer visible GPUs).')
    self.exploration = exploration or explore_lib.ExplorationConfig()
    self.priority = priority or priority_lib.PriorityConfig()
    self.priority.check(exploration=self.exploration.enabled)
    self._check_actor_grad()
    self.loss_scales = self._expand_scales(loss_scales)
    dtype = PRECISIONS[precision]
    act_size = sum(s.size for s in act_space.values())
    with self.strategy.scope():
      seeds = nets.InitSeeds(seed)
      self.wm = world_model.WorldModel(
          obs_space, act_size, horizon=horizon, contdisc=contdisc,
          seeds=seeds, dtype=dtype, name='world_model')
      self.actor = behavior.Actor(act_space, seeds=seeds, dtype=dtype,
                                  name='actor')
      critic_config = behavior.CriticConfig()
      self.critic = behavior.Critic(
          critic_config, seeds=seeds, dtype=dtype, name='critic')
      self.slow_critic = behavior.Critic(
          critic_config, seeds=nets.InitSeeds(seed), dtype=dtype,
          name='slow_critic', trainable=False)
      self.retnorm = behavior.ReturnNormalizer(name='retnorm')
      self.critics = {EXTRINSIC: self.critic}
      self.slow_critics = {EXTRINSIC: self.slow_critic}
      self.retnorms = {EXTRINSIC: self.retnorm}
      self.ensemble = self.explore_optimizer = None
      if self.exploration.enabled:
        self._add_exploration(critic_config, dtype)
      self.intrinsic_weight = tf.Variable(
          0.0, trainable=False, name='intrinsic_weight',
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self._build()
      for stream, critic in self.critics.items():
        for slow, fast in zip(self.slow_critics[stream].weights,
                              critic.weights):
          slow.assign(fast)
      self.optimizer = optim.LaProp()
      self.optimizer.build(self.trainable_variables)
      if self.ensemble is not None:
        self.explore_optimizer = optim.LaProp(
            lr=self.exploration.lr, name='explore_laprop')
        self.explore_optimizer.build(self.explore_variables)
    self._policy_fn = tf.function(self._policy, jit_compile=jit_compile,
                                  autograph=False)
    self._update = None

  # --- Construction ---------------------------------------------------------

  def _add_exploration(self, critic_config, dtype):
    """The ensemble and the intrinsic stream's critics and normaliser."""
    seeds = nets.InitSeeds(self.seed + EXPLORE_SEED_OFFSET)
    rssm = self.wm.rssm
    embed_size = None
    if self.exploration.target == 'embed':  # The encoder's output width.
      embed_size = self.wm.token_size()
    self.ensemble = explore_lib.Ensemble(
        self.exploration, rssm.stoch_size, rssm.classes, seeds,
        embed_size=embed_size, dtype=dtype, name='ensemble')
    self.critics[INTRINSIC] = behavior.Critic(
        critic_config, seeds=seeds, dtype=dtype, name=f'critic_{INTRINSIC}')
    self.slow_critics[INTRINSIC] = behavior.Critic(
        critic_config, seeds=seeds, dtype=dtype,
        name=f'slow_critic_{INTRINSIC}', trainable=False)
    retnorm = behavior.ReturnNormalizerConfig()
    if self.exploration.retnorm_limit is not None:
      retnorm = dataclasses.replace(
          retnorm, limit=self.exploration.retnorm_limit)
    self.retnorms[INTRINSIC] = behavior.ReturnNormalizer(
        retnorm, name=f'retnorm_{INTRINSIC}')

  def _check_actor_grad(self):
    """Refuses an actor gradient estimator this agent cannot use."""
    if self.actor_grad not in ACTOR_GRADS:
      raise ConfigError(
          f'Agent.actor_grad={self.actor_grad!r}; use one of '
          f'{list(ACTOR_GRADS)}.')
    if self.actor_grad != 'backprop':
      return
    discrete = sorted(k for k, s in self.act_space.items() if s.discrete)
    if discrete:
      raise ConfigError(
          f"Agent.actor_grad='backprop' needs continuous actions, but "
          f'{discrete} are discrete; the 2023 recipe used REINFORCE for '
          "discrete actions: bind Agent.actor_grad='reinforce'.")
    if self.exploration.enabled:
      raise ConfigError(
          "Agent.actor_grad='backprop' is not available with exploration "
          '(an intrinsic reward stream): bind Agent.actor_grad='
          "'reinforce' or turn exploration off.")

  def advantage_weights(self):
    """{stream: weight} of the actor's advantage: the extrinsic weight
    (Exploration.extrinsic_weight, 1 without exploration) and the
    intrinsic one (`set_intrinsic_weight`, from the schedule)."""
    if self.ensemble is None:
      return {EXTRINSIC: 1.0}
    return {EXTRINSIC: self.exploration.extrinsic_weight,
            INTRINSIC: tf.identity(self.intrinsic_weight)}

  def set_intrinsic_weight(self, value):
    """The intrinsic advantage's weight for the next updates (>= 0)."""
    value = float(value)
    if not value >= 0:
      raise ValueError(f'Intrinsic weight {value} must be >= 0.')
    self.intrinsic_weight.assign(value)

  def _expand_scales(self, scales):
    scales = dict(DEFAULT_LOSS_SCALES if scales is None else scales)
    missing = set(DEFAULT_LOSS_SCALES) - set(scales)
    unknown = set(scales) - set(DEFAULT_LOSS_SCALES)
    if missing or unknown:
      raise ValueError(
          f'Agent.loss_scales must have exactly the keys '
          f'{sorted(DEFAULT_LOSS_SCALES)}; missing {sorted(missing)}, '
          f'unknown {sorted(unknown)}.')
    rec = scales.pop('rec')
    scales.update({k: rec for k in spaces_lib.model_keys(self.obs_space)})
    if not self.repval_loss:
      scales.pop('repval')
    if self.exploration.enabled:  # The intrinsic critic weighs as the other.
      scales[f'value_{INTRINSIC}'] = scales['value']
    return scales

  def _build(self):
    """Creates every variable with a forward pass on one dummy step."""
    obs = self.dummy_obs(1)
    carry = self.initial_carry(1)
    self._policy(obs, carry, tf.constant([0, 0], tf.int32))
    feat = self.wm.rssm.feat(self.wm.rssm.initial(1))
    self.wm.rssm.prior_logits(feat[:, :self.wm.rssm.deter_size])
    self.wm.decode(self.wm.rssm.initial(1))
    self.wm.reward(feat)
    self.wm.cont(feat)
    for stream in self.critics:
      self.critics[stream](feat)
      self.slow_critics[stream](feat)
    if self.ensemble is not None:
      self.ensemble(feat, carry['action'])

  def dummy_obs(self, batch, length=None):
    """Zero observations [batch(, length), ...] matching the obs space."""
    lead = [batch] if length is None else [batch, length]
    return {k: tf.zeros(lead + list(s.shape), s.dtype)
            for k, s in self.obs_space.items()}

  @property
  def modules(self):
    """The modules the agent's optimizer trains, by name (the slow critics
    are not trained; the ensemble has its own optimizer)."""
    modules = {
        'encoder': self.wm.encoder, 'rssm': self.wm.rssm,
        'decoder': self.wm.decoder, 'reward': self.wm.reward_head,
        'cont': self.wm.cont_head, 'actor': self.actor,
        'critic': self.critic}
    if self.ensemble is not None:
      modules[f'critic_{INTRINSIC}'] = self.critics[INTRINSIC]
    return modules

  @property
  def trainable_variables(self):
    return [v for m in self.modules.values() for v in m.trainable_weights]

  @property
  def explore_variables(self):
    """The ensemble's parameters (empty without exploration)."""
    return [] if self.ensemble is None else self.ensemble.trainable_weights

  @property
  def slow_variables(self):
    """The slow critics' weights, the extrinsic one first."""
    return [v for c in self.slow_critics.values() for v in c.weights]

  def parameter_counts(self):
    """Trainable parameters per module and in total (slow critic excluded)."""
    modules = dict(self.modules)
    if self.ensemble is not None:
      modules['ensemble'] = self.ensemble
    counts = {name: int(sum(np.prod(v.shape) for v in m.trainable_weights))
              for name, m in modules.items()}
    counts['total'] = sum(counts.values())
    return counts

  # --- State I/O -------------------------------------------------------------

  @property
  def state_variables(self):
    """Everything an exact resume needs, in a fixed order: trained
    parameters, slow critic(s), return normaliser(s), optimizer (step,
    moments); with exploration then the ensemble and its optimizer."""
    explore = []
    if self.ensemble is not None:
      explore = self.explore_variables + list(
          self.explore_optimizer.variables)
    return (self.trainable_variables + self.slow_variables +
            [v for r in self.retnorms.values() for v in r.weights] +
            list(self.optimizer.variables) + explore)

  def get_state(self):
    """The agent's state as a list of numpy arrays (see state_variables)."""
    return [np.array(v.numpy()) for v in self.state_variables]

  def set_state(self, values):
    """Restores `get_state()` output; a mismatch names the first offender."""
    variables = self.state_variables
    if len(values) != len(variables):
      raise ValueError(
          f'Checkpoint has {len(values)} agent tensors, this agent has '
          f'{len(variables)}: the model configuration differs.')
    for i, (var, value) in enumerate(zip(variables, values)):
      if tuple(var.shape) != tuple(np.shape(value)):
        raise ValueError(
            f'Checkpoint tensor {i} ({var.path}) has shape '
            f'{tuple(np.shape(value))}, this agent has {tuple(var.shape)}: '
            'the model configuration differs.')
    for var, value in zip(variables, values):
      var.assign(value)

  def signature(self):
    """The settings that fix the model's shapes, as gin-style bindings."""
    out = {}
    for name, conf in (('RSSM', self.wm.rssm.config),
                       ('WorldModel', self.wm.config),
                       ('Actor', self.actor.config),
                       ('Critic', self.critic.config)):
      for field in dataclasses.fields(conf):
        value = getattr(conf, field.name)
        out[f'{name}.{field.name}'] = list(value) if isinstance(
            value, tuple) else value
    out['obs_space'] = {k: [list(v.shape), v.dtype, v.classes]
                        for k, v in sorted(self.obs_space.items())}
    out['act_space'] = {k: [list(v.shape), v.dtype, v.classes]
                        for k, v in sorted(self.act_space.items())}
    out['Agent.precision'] = self.precision
    out['Agent.replay_context'] = self.replay_context
    if self.exploration.enabled:  # Absent otherwise: older runs match.
      for field in ('signal', 'members', 'layers', 'units'):
        out[f'Exploration.{field}'] = getattr(self.exploration, field)
      if self.exploration.target != 'stoch':  # Older runs predicted stoch.
        out['Exploration.target'] = self.exploration.target
    return out

  # --- Actions --------------------------------------------------------------

  def action_vector(self, actions):
    """Env-format actions {key: index [...] or [..., n]} -> [..., A]."""
    parts = []
    for key in sorted(self.act_space):
      space, value = self.act_space[key], actions[key]
      if space.discrete:
        parts.append(tf.one_hot(tf.cast(value, tf.int32), space.classes))
      else:
        parts.append(tf.cast(value, tf.float32))
    return tf.concat(parts, -1)

  def env_actions(self, vector):
    """[..., A] -> env-format {key: index or vector}."""
    out = {}
    for key, part in self.actor.split(vector).items():
      space = self.act_space[key]
      out[key] = (tf.argmax(part, -1, output_type=tf.int32)
                  if space.discrete else part)
    return out

  # --- Policy ----------------------------------------------------------------

  def initial_carry(self, batch):
    """Policy carry: zero RSSM state and zero previous action [batch, ...]."""
    carry = self.wm.rssm.initial(batch)
    carry['action'] = tf.zeros(
        [batch, sum(s.size for s in self.act_space.values())], tf.float32)
    return carry

  def policy(self, obs, carry, seed, mode=False):
    """One compiled acting step for a batch of envs.

    obs: {key: [N, ...]} incl. is_first; carry from `initial_carry` or the
    previous call; seed: int32[2]. Returns (actions in env format, new carry,
    latent {deter, stoch} to store in replay). The posterior and the action
    are sampled (§4.1); `mode=True` takes the policy's mode instead.
    """
    return self._policy_fn(obs, carry, tf.convert_to_tensor(seed, tf.int32),
                           mode)

  def _policy(self, obs, carry, seed, mode=False):
    obs_seed, act_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    keys = spaces_lib.model_keys(self.obs_space)
    token = self.wm.encoder({k: obs[k] for k in keys})
    state, _ = self.wm.rssm.obs_step(
        dict(deter=carry['deter'], stoch=carry['stoch']), carry['action'],
        token, obs['is_first'], obs_seed)
    action = self.actor.sample(self.wm.rssm.feat(state), act_seed, mode)
    action = tf.stop_gradient(action)
    new_carry = dict(state, action=action)
    return self.env_actions(action), new_carry, state

  # --- Training ------------------------------------------------------------

  @property
  def sequence_length(self):
    """Steps per replay sequence: replay_context + batch_length (§4.3)."""
    return self.replay_context + self.batch_length

  def train(self, data):
    """One update on a global batch (update.py, placed by placement.py).

    data: {key: [B, C + T, ...]} with the observation keys, reward,
    is_first, is_last, is_terminal, the action keys (env format), when
    replay_context C > 0 the stored latents `deter` [B, C+T, D] and `stoch`
    [B, C+T, S, K], optionally the replay's `stepid` [B, C+T, 2] and
    importance weights `weight` [B] (prioritized replay).
    Returns (metrics {name: scalar tensor}, updates) where updates are the
    values to write back to the T trained steps as numpy arrays in batch
    order: the recomputed posteriors {'deter': [B, T, D], 'stoch': [B, T,
    S, K]}, their replay priorities 'priority' [B, T] (`Agent.priority`)
    and, if the batch had one, 'stepid': stepid[:, C:] (int64 [B, T, 2])
    naming their replay steps, ready for `Replay.update`.
    """
    data, stepid = self._prepare(data)
    metrics, values = self._update(data)
    updates = {} if stepid is None else {
        'stepid': np.asarray(stepid, np.int64)[:, self.replay_context:]}
    updates.update({k: np.asarray(v) for k, v in values.items()})
    return metrics, updates

  def trace_update(self, data):
    """Traces the update for `data`'s shapes and dtypes without running
    it; a later `train` on such a batch reuses the trace (and compiles it
    when it first runs). Returns the number of ops traced, the bodies of
    its functions (`tf.cond` branches, `tf.scan` loops) included, or None
    with several replicas, whose update is several functions traced per
    replica when they run. For measuring where the first update's time
    goes (launch.benchmark's `trace_seconds`)."""
    data, _ = self._prepare(data)
    if not hasattr(self._update, 'get_concrete_function'):
      return None
    graph = self._update.get_concrete_function(data).graph.as_graph_def()
    return len(graph.node) + sum(
        len(f.node_def) for f in graph.library.function)

  def _prepare(self, data):
    """(the batch without `stepid`, stepid or None), checked; builds the
    update on first use."""
    data = dict(data)
    stepid = data.pop('stepid', None)
    self._check_batch(data, stepid)
    if self._update is None:
      self._update = placement.make_update(self)
    return data, stepid

  def _check_batch(self, data, stepid):
    needed = set(self.obs_space) | set(self.act_space)
    if self.replay_context:
      needed |= {'deter', 'stoch'}
    missing = needed - set(data)
    if missing:
      raise ValueError(f'Training batch lacks keys {sorted(missing)}.')
    shape = tuple(data['is_first'].shape)
    if shape[1] != self.sequence_length:
      raise ValueError(
          f'Training batch has length {shape[1]}, expected batch_length + '
          f'replay_context = {self.sequence_length}.')
    weight = data.get('weight')
    if weight is not None and tuple(np.shape(weight)) != shape[:1]:
      raise ValueError(
          f'Training batch has importance weights of shape '
          f'{tuple(np.shape(weight))}, expected {shape[:1]} (one per row).')
    if stepid is not None and tuple(np.shape(stepid)) != (*shape[:2], 2):
      raise ValueError(
          f'Training batch has stepid of shape {tuple(np.shape(stepid))}, '
          f'expected {(*shape[:2], 2)} (chunk id, index) per step; pass the '
          'batch of Replay.sample unchanged.')
    local = placement.local_replicas(self.strategy)
    if shape[0] % local:
      raise ValueError(
          f'Batch size {shape[0]} is not divisible by the {local} replicas '
          'of this process.')

  def split_context(self, data):
    """Replay context (§4.3): carry from the stored latent of step C-1.

    data: {key: [B, C + T, ...]}. Returns (obs {key: [B, T, ...]} of the T
    trained steps, previous actions a_{t-1} [B, T, A], actions a_t
    [B, T, A], initial RSSM state {deter [B, D], stoch [B, S, K]}).
    """
    c = self.replay_context
    actions = self.action_vector({k: data[k] for k in self.act_space})
    batch = data['is_first'].shape[0]
    if c:
      state = dict(deter=data['deter'][:, c - 1],
                   stoch=data['stoch'][:, c - 1])
      prev_actions = actions[:, c - 1:-1]
    else:
      state = self.wm.rssm.initial(batch)
      prev_actions = tf.concat(
          [tf.zeros_like(actions[:, :1]), actions[:, :-1]], 1)
    keys = set(self.obs_space)
    obs = {k: v[:, c:] for k, v in data.items() if k in keys}
    return obs, prev_actions, actions[:, c:], state


def resolve_auto(obs_space, precision, jit_compile, native_bf16=None):
  """Picks precision and XLA for 'auto' from measured speed (README.md).

  On GPUs: bfloat16 with XLA (the paper's setting). On CPUs (2-core
  benchmarks, batch 16x64): vector-only models are fastest in float32 with
  XLA; models with image inputs without XLA (XLA's CPU convolutions are
  slow), in bfloat16 where the CPU computes it natively (`native_bf16`,
  default `cpu_has_native_bf16()`: AVX-512 BF16 or AMX; size12m 5.1
  s/update vs 8.1 s float32) and in float32 elsewhere, where bfloat16 is
  emulated (AVX2 only: image size1m 23.3 s/update vs 8.9 s float32;
  docs/benchmarks/auto-precision-2026-11-27.json).
  """
  gpu = bool(tf.config.list_physical_devices('GPU'))
  images = any(s.is_image for s in obs_space.values())
  if precision == 'auto':
    if native_bf16 is None:
      native_bf16 = cpu_has_native_bf16()
    precision = 'bfloat16' if gpu or (images and native_bf16) else 'float32'
  if jit_compile == 'auto':
    jit_compile = gpu or not images
  if not isinstance(jit_compile, bool):
    raise ValueError(f"Agent.jit_compile={jit_compile!r}; use True, False or "
                     "'auto'.")
  return precision, jit_compile


# CPU flags (Linux /proc/cpuinfo) of native bfloat16 arithmetic.
NATIVE_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


def cpu_has_native_bf16(cpuinfo='/proc/cpuinfo'):
  """Whether the CPU has a bfloat16 instruction set (NATIVE_BF16_FLAGS).
  False where `cpuinfo` cannot be read (not Linux): float32 is the safe
  choice, as emulated bfloat16 is several times slower."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith('flags'):
          flags = set(line.split(':', 1)[1].split())
          return any(flag in flags for flag in NATIVE_BF16_FLAGS)
  except OSError:
    pass
  return False

