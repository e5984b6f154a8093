"""The DreamerV3 agent: compiled policy step and compiled train step (§3, §4).

One update (`Agent.train`) on a replay batch [B, C + T] (C = replay_context
leading context steps that only seed the RSSM carry, §4.3):

  world-model loss (observe scan over T)
  -> imagine H steps from all B*T posterior states (stop-gradient)
  -> λ-returns, percentile return scale (global-batch percentiles)
  -> actor, critic and replay-value losses
  -> one LaProp + AGC update -> slow critic EMA.

Placement (see docs/architecture.md): under a single-replica strategy the
whole update, optimizer and EMA included, is one `tf.function` with
`jit_compile` as set. With several replicas the two loss phases are XLA
functions called per replica inside one gradient tape; the percentile
all-gather, the gradient all-reduce and the optimizer update run outside XLA
(CPU collectives cannot be compiled).
"""
import dataclasses

import gin
import keras
import numpy as np
import tensorflow as tf

from dreamer_tf.model import behavior
from dreamer_tf.model import distributions as dists
from dreamer_tf.model import nets
from dreamer_tf.model import optim
from dreamer_tf import spaces as spaces_lib
from dreamer_tf.model import world_model

sg = tf.stop_gradient

DEFAULT_LOSS_SCALES = dict(
    rec=1.0, reward=1.0, cont=1.0, dyn=1.0, rep=0.1, policy=1.0, value=1.0,
    repval=0.3)
PRECISIONS = {'float32': 'float32', 'bfloat16': 'mixed_bfloat16'}


@gin.configurable
class Agent:
  """World model + actor-critic + optimizer, with compiled steps.

  obs_space, act_space: dicts of `spaces.Space`; `log/` observation keys
  (episode statistics) are dropped. All other arguments are gin
  parameters with the spec's defaults. `precision` is the compute dtype
  ('float32' or 'bfloat16'; parameters and losses stay float32);
  `jit_compile` turns XLA on for the compiled steps. Both default to 'auto',
  chosen from the benchmarks in README.md (see `resolve_auto`).
  """

  def __init__(
      self, obs_space, act_space, batch_size=16, batch_length=64,
      replay_context=1, imag_length=15, horizon=333, lam=0.95,
      contdisc=True, loss_scales=None, slow_rate=0.02, reward_grad=True,
      repval_loss=True, repval_grad=True, precision='auto',
      jit_compile='auto', seed=0, strategy=None):
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
    self.precision, self.jit_compile, self.seed = precision, jit_compile, seed
    self.strategy = strategy or tf.distribute.get_strategy()
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
      self._build()
      for slow, fast in zip(self.slow_critic.weights, self.critic.weights):
        slow.assign(fast)
      self.optimizer = optim.LaProp()
      self.optimizer.build(self.trainable_variables)
    self._policy_fn = tf.function(self._policy, jit_compile=jit_compile)
    self._train_fn = None

  # --- Construction ---------------------------------------------------------

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
    self.critic(feat)
    self.slow_critic(feat)

  def dummy_obs(self, batch, length=None):
    """Zero observations [batch(, length), ...] matching the obs space."""
    lead = [batch] if length is None else [batch, length]
    return {k: tf.zeros(lead + list(s.shape), s.dtype)
            for k, s in self.obs_space.items()}

  @property
  def modules(self):
    """The trained modules by name (the slow critic is not trained)."""
    return {
        'encoder': self.wm.encoder, 'rssm': self.wm.rssm,
        'decoder': self.wm.decoder, 'reward': self.wm.reward_head,
        'cont': self.wm.cont_head, 'actor': self.actor,
        'critic': self.critic}

  @property
  def trainable_variables(self):
    return [v for m in self.modules.values() for v in m.trainable_weights]

  def parameter_counts(self):
    """Trainable parameters per module and in total (slow critic excluded)."""
    counts = {name: int(sum(np.prod(v.shape) for v in m.trainable_weights))
              for name, m in self.modules.items()}
    counts['total'] = sum(counts.values())
    return counts

  # --- State I/O -------------------------------------------------------------

  @property
  def state_variables(self):
    """Everything an exact resume needs, in a fixed order: trained
    parameters, slow critic, return normaliser, optimizer (step, moments)."""
    return (self.trainable_variables + self.slow_critic.weights +
            self.retnorm.weights + list(self.optimizer.variables))

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

  # --- Training ----------------------------------------------------------------

  def train(self, data):
    """One update on a global batch; returns (metrics, replay updates).

    data: {key: [B, C + T, ...]} with the observation keys, reward, is_first,
    is_last, is_terminal, the action keys (env format) and, when
    replay_context > 0, the stored latents `deter` [B, C+T, D] and `stoch`
    [B, C+T, S, K]. Replay updates are the recomputed posterior latents of
    the T trained steps ({deter, stoch} [B, T, ...]).
    """
    self._check_batch(data)
    if self._train_fn is None:
      self._train_fn = self._make_train_fn()
    if self.strategy.num_replicas_in_sync > 1:
      data = self._distribute(data)
    metrics, updates = self._train_fn(data)
    if self.strategy.num_replicas_in_sync > 1:
      updates = {k: tf.concat(self.strategy.experimental_local_results(v), 0)
                 for k, v in updates.items()}
      # Each replica's metrics cover its equal share of the batch.
      metrics = {k: self.strategy.reduce('MEAN', v, axis=None)
                 for k, v in metrics.items()}
    return metrics, updates

  def _check_batch(self, data):
    needed = set(self.obs_space) | set(self.act_space)
    if self.replay_context:
      needed |= {'deter', 'stoch'}
    missing = needed - set(data)
    if missing:
      raise ValueError(f'Training batch lacks keys {sorted(missing)}.')
    length = self.batch_length + self.replay_context
    shape = tuple(data['is_first'].shape)
    if shape[1] != length:
      raise ValueError(
          f'Training batch has length {shape[1]}, expected batch_length + '
          f'replay_context = {length}.')
    if shape[0] % self.strategy.num_replicas_in_sync:
      raise ValueError(
          f'Batch size {shape[0]} is not divisible by the '
          f'{self.strategy.num_replicas_in_sync} replicas.')

  def _distribute(self, data):
    """Splits the global batch into contiguous per-replica row blocks."""
    replicas = self.strategy.num_replicas_in_sync
    data = {k: np.asarray(v) for k, v in data.items()}
    rows = len(data['is_first']) // replicas

    def value_fn(ctx):
      start = ctx.replica_id_in_sync_group * rows
      return {k: tf.constant(v[start:start + rows]) for k, v in data.items()}
    return self.strategy.experimental_distribute_values_from_function(value_fn)

  def _make_train_fn(self):
    if self.strategy.num_replicas_in_sync == 1:
      def step(data):
        seed = self._step_seed()
        stats = {}

        def scale_fn(ret):
          stats['lo'], stats['hi'] = self.retnorm.updated(
              self.retnorm.percentiles(ret))
          return self.retnorm.scale_of(stats['lo'], stats['hi'])
        metrics, grads, updates = self._loss_and_grads(data, seed, scale_fn)

        def apply():
          self.retnorm.assign(stats['lo'], stats['hi'])
          self._apply(grads)
          behavior.ema_update(self.slow_critic.weights, self.critic.weights,
                              self.slow_rate)
          return tf.constant(0.0)
        # A non-finite loss or gradient skips the update (and the EMA).
        metrics['opt/skipped'] = tf.cond(
            _finite(metrics), apply, lambda: tf.constant(1.0))
        return metrics, updates
      return tf.function(step, jit_compile=self.jit_compile)
    return self._make_distributed_step()

  def _make_distributed_step(self):
    """The update with several replicas (see the module docstring).

    CPU collectives cannot be compiled, so the returns
    are computed by one XLA function, their percentiles all-gathered
    outside XLA, and the loss and gradients by a second XLA function that
    recomputes the (identically seeded) forward pass with that scale.
    An XLA function must not capture another device's variables, so the
    compiled functions take this replica's parameter values as inputs and
    the layers read them through a Keras StatelessScope. The finiteness
    check runs between the gradient and the update function.
    """
    variables = self.trainable_variables + self.slow_critic.weights

    def stateless(fn):
      def wrapped(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
          return fn(values, *args)
      # One traced function per replica: a shared trace would bake replica
      # 0's id (its rows of the global noise) and device into every replica.
      compiled = {}

      def call(*args):
        replica = _replica_index()
        if replica not in compiled:
          compiled[replica] = tf.function(
              wrapped, jit_compile=self.jit_compile)
        return compiled[replica](*args)
      return call

    returns = stateless(
        lambda values, data, seed: self._imagine_phase(data, seed)['ret'])
    loss_and_grads = stateless(
        lambda values, data, seed, scale: self._loss_and_grads(
            data, seed, lambda ret: scale,
            sources=values[:len(self.trainable_variables)]))

    @tf.function
    def gradients(data):
      seed = self._step_seed()
      run = self.strategy.run
      read = lambda: [tf.identity(v.value) for v in variables]
      ret = self.strategy.gather(
          run(lambda d: returns(read(), d, seed), (data,)), axis=0)
      lo, hi = self.retnorm.updated(self.retnorm.percentiles(ret))
      scale = self.retnorm.scale_of(lo, hi)
      return run(lambda d: loss_and_grads(read(), d, seed, scale),
                 (data,)), (lo, hi)

    @tf.function
    def apply(grads, stats):
      self.retnorm.assign(*stats)
      self.strategy.run(self._apply, (grads,))  # All-reduce (sum), update.
      behavior.ema_update(self.slow_critic.weights, self.critic.weights,
                          self.slow_rate)

    def distributed_step(data):
      (metrics, grads, updates), stats = gradients(data)
      finite = all(bool(_finite(m)) for m in zip(
          self.strategy.experimental_local_results(metrics['opt/loss']),
          self.strategy.experimental_local_results(metrics['opt/grad_norm'])))
      if finite:
        apply(grads, stats)
      skipped = tf.constant(0.0 if finite else 1.0)
      metrics['opt/skipped'] = (
          self.strategy.experimental_distribute_values_from_function(
              lambda ctx: skipped))
      return metrics, updates
    return distributed_step

  def _step_seed(self):
    return tf.stack([tf.constant(self.seed, tf.int32),
                     tf.cast(self.optimizer.iterations, tf.int32)])

  def _apply(self, grads):
    self.optimizer.apply(grads, self.trainable_variables)

  def _loss_and_grads(self, data, seed, scale_fn, sources=None):
    """Loss and gradients of this replica's share of the global batch.

    scale_fn maps the imagined returns to the return scale S (the caller
    assigns the new normaliser statistics only if the update is applied).
    The loss is divided by the replica count so that the all-reduced sum is
    the global-batch gradient. `sources` replaces the trainable variables
    as the differentiation targets (the multi-replica StatelessScope path).
    """
    replicas = self.strategy.num_replicas_in_sync
    variables = self.trainable_variables if sources is None else sources
    with tf.GradientTape() as tape:
      if sources is not None:
        tape.watch(sources)
      phase1 = self._imagine_phase(data, seed)
      scale = scale_fn(phase1['ret'])
      losses, metrics = self._behavior_phase(phase1, scale)
      loss = sum(tf.reduce_mean(v) * self.loss_scales[k]
                 for k, v in losses.items())
      replica_loss = loss / replicas
    grads = tape.gradient(replica_loss, variables)
    metrics.update({f'loss/{k}': tf.reduce_mean(v) for k, v in losses.items()})
    metrics.update(phase1['metrics'])
    metrics['opt/loss'] = loss
    metrics['opt/grad_norm'] = tf.linalg.global_norm(grads) * replicas
    metrics['opt/lr'] = self.optimizer.learning_rate
    metrics['opt/updates'] = tf.cast(self.optimizer.iterations + 1,
                                     tf.float32)
    metrics['retnorm/scale'] = scale
    return metrics, grads, phase1['updates']

  def split_context(self, data):
    """Replay context (§4.3): carry from the stored latent of step C-1."""
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

  def _imagine_phase(self, data, seed):
    """World-model losses, imagination and λ-returns (no collectives)."""
    wm_seed, img_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    obs, prev_actions, _, state = self.split_context(data)
    b, t = obs['is_first'].shape[:2]
    losses, post, _, metrics = self.wm.loss(obs, prev_actions, state, wm_seed)
    if not self.reward_grad:
      raise ValueError('Agent.reward_grad=False is not supported.')
    # Imagination from all B*T posterior states (stop-gradient, §3.3).
    start = {k: sg(tf.reshape(v, [b * t, *v.shape[2:]]))
             for k, v in post.items()}
    policy = lambda feat, s: self.actor.sample(sg(feat), s)
    img_states, img_actions = self.wm.rssm.imagine(
        start, policy, self.imag_length, img_seed)
    img_feat = sg(self.wm.rssm.feat(img_states))  # [N, H+1, F]
    img_actions = sg(img_actions)
    reward = self.wm.reward(img_feat).mean()  # [N, H+1]
    cont = self.wm.cont(img_feat).mean()
    disc = 1.0 if self.contdisc else 1.0 - 1.0 / self.horizon
    # One critic pass serves the returns (stop-gradient mean) and the
    # critic loss (logits with gradient, in the behavior phase).
    value_logits = self.critic(img_feat).logits
    value = sg(dists.SymexpTwoHot(value_logits).mean())
    ret, weight = behavior.imagination_returns(
        reward, cont * disc, value, self.lam, disc)
    feat = self.wm.rssm.feat(post)  # [B, T, F], with gradient
    return dict(
        losses=losses, metrics=metrics, feat=feat, img_feat=img_feat,
        img_actions=img_actions, value_logits=value_logits, reward=reward,
        cont=cont, ret=ret,
        weight=weight, obs={k: obs[k] for k in (
            'reward', 'is_last', 'is_terminal')},
        updates={k: sg(v) for k, v in post.items()})

  def _behavior_phase(self, phase1, scale):
    """Actor, critic and replay-value losses (§3.6, §3.7)."""
    losses = dict(phase1['losses'])
    img_feat = phase1['img_feat']
    policy = self.actor(img_feat)
    actions = self.actor.split(phase1['img_actions'])
    value = dists.SymexpTwoHot(phase1['value_logits'])
    slow = sg(self.slow_critic(img_feat).mean())
    ac_losses, metrics = behavior.imagination_losses(
        policy, actions, value, slow, phase1['ret'], phase1['weight'], scale)
    losses.update(ac_losses)
    metrics.update(rew=tf.reduce_mean(phase1['reward']),
                   con=tf.reduce_mean(phase1['cont']))
    if self.repval_loss:
      feat = phase1['feat'] if self.repval_grad else sg(phase1['feat'])
      b, t = feat.shape[:2]
      boot = tf.reshape(phase1['ret'][:, 0], [b, t])
      obs = phase1['obs']
      losses['repval'] = behavior.replay_value_loss(
          self.critic(feat), sg(self.slow_critic(feat).mean()),
          obs['reward'], obs['is_last'], obs['is_terminal'], boot,
          horizon=self.horizon, lam=self.lam)
    if set(losses) != set(self.loss_scales):
      raise ValueError(f'Loss keys {sorted(losses)} != loss scale keys '
                       f'{sorted(self.loss_scales)}.')
    return losses, metrics


def resolve_auto(obs_space, precision, jit_compile):
  """Picks precision and XLA for 'auto' from measured speed (README.md).

  On GPUs: bfloat16 with XLA (the paper's setting). On CPUs (2-core
  benchmark, batch 16x64): models with image inputs are fastest in bfloat16
  without XLA (oneDNN; size12m 5.1 s/update vs 8.1 s f32 and 14.0 s f32
  XLA), vector-only models in float32 with XLA (size1m 0.44 s vs 0.62 s
  without XLA and 0.55 s bf16 XLA).
  """
  gpu = bool(tf.config.list_physical_devices('GPU'))
  images = any(s.is_image for s in obs_space.values())
  if precision == 'auto':
    precision = 'bfloat16' if gpu or images else 'float32'
  if jit_compile == 'auto':
    jit_compile = gpu or not images
  if not isinstance(jit_compile, bool):
    raise ValueError(f"Agent.jit_compile={jit_compile!r}; use True, False or "
                     "'auto'.")
  return precision, jit_compile


def _finite(metrics):
  """True when the loss and the gradient norm are finite."""
  if isinstance(metrics, tuple):
    loss, grad_norm = metrics
  else:
    loss, grad_norm = metrics['opt/loss'], metrics['opt/grad_norm']
  return tf.math.is_finite(loss) & tf.math.is_finite(grad_norm)


def _replica_index():
  """This replica's index as a Python int (0 outside a strategy)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None:
    return 0
  index = tf.get_static_value(ctx.replica_id_in_sync_group)
  if index is None:
    raise RuntimeError('The replica id is not static in this strategy.')
  return int(index)
