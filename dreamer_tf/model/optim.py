"""LaProp with adaptive gradient clipping and linear warm-up (spec §1.6, §3.8).

Per parameter tensor θ with gradient g and update count k (from 0):
  1. AGC:      g <- g / max(1, ||g|| / (clip * max(pmin, ||θ||)))
  2. RMS:      ν <- β2 ν + (1 - β2) g²;  ĝ = g / (sqrt(ν / (1 - β2^{k+1})) + ε)
  3. momentum: μ <- β1 μ + (1 - β1) ĝ;    m = μ / (1 - β1^{k+1})
  4. step:     θ <- θ - η_k m,  η_k = lr min(k, warmup) / warmup

A Keras 3 optimizer: under a `tf.distribute` strategy, `apply` all-reduces
(sums) the per-replica gradients first and only then updates, so the
norm-based clipping sees the global gradient (unlike Keras' own `clipnorm`,
which clips each replica's gradient before the reduction).

`apply` updates all tensors in one pass (`LaProp._backend_update_step`):
the scalars of a step (η_k, 1 - β^{k+1}, the constants) are built once, not
once per tensor, and the AGC norms of all tensors are compared as one
vector. The arithmetic per element is `update_step`'s, which stays as the
per-tensor reference (tests/model/test_optim.py checks the two agree bit
for bit); what changes is the traced graph: ~20 ops per tensor instead of
~50, which for the size1m agent's 81 tensors cut the update's trace time
(docs/benchmarks/, README "Speed").
"""
import gin
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable('dreamer_tf')
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """η_k = lr * min(k, warmup) / warmup (constant lr when warmup is 0)."""

  def __init__(self, lr, warmup):
    self.lr, self.warmup = float(lr), int(warmup)

  def __call__(self, step):
    if not self.warmup:
      return tf.constant(self.lr, tf.float32)
    step = tf.cast(step, tf.float32)
    return self.lr * tf.minimum(step, float(self.warmup)) / self.warmup

  def get_config(self):
    return dict(lr=self.lr, warmup=self.warmup)


def agc(grad, param, clip=0.3, pmin=1e-3):
  """Adaptive gradient clipping of one tensor (spec §3.8 step 1)."""
  gnorm = tf.norm(tf.reshape(grad, [-1]))
  pnorm = tf.norm(tf.reshape(param, [-1]))
  upper = clip * tf.maximum(pmin, pnorm)
  return grad / tf.maximum(1.0, gnorm / upper)


@gin.configurable
class LaProp(keras.optimizers.Optimizer):
  """AGC -> RMS normalisation -> momentum -> -lr, one Keras optimizer.

  `update_step` is the per-tensor reference; `apply` runs `_update_all`
  (all tensors at once, the same arithmetic)."""

  def __init__(self, lr=4e-5, agc_clip=0.3, agc_pmin=1e-3, beta1=0.9,
               beta2=0.999, epsilon=1e-20, warmup=1000, name='laprop', **kw):
    super().__init__(
        learning_rate=WarmupSchedule(lr, warmup), name=name, **kw)
    self.agc_clip, self.agc_pmin = agc_clip, agc_pmin
    self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    self._nu = self.add_optimizer_variables(var_list, 'nu')
    self._mu = self.add_optimizer_variables(var_list, 'mu')

  def update_step(self, gradient, variable, learning_rate):
    index = self._get_variable_index(variable)
    nu, mu = self._nu[index], self._mu[index]
    step = tf.cast(self.iterations + 1, tf.float32)
    lr = tf.cast(learning_rate, variable.dtype)
    grad = tf.cast(gradient, variable.dtype)
    if self.agc_clip:
      grad = agc(grad, variable, self.agc_clip, self.agc_pmin)
    self.assign(nu, self.beta2 * nu + (1 - self.beta2) * tf.square(grad))
    nu_hat = nu / (1 - tf.pow(self.beta2, step))
    grad = grad / (tf.sqrt(nu_hat) + self.epsilon)
    self.assign(mu, self.beta1 * mu + (1 - self.beta1) * grad)
    mu_hat = mu / (1 - tf.pow(self.beta1, step))
    self.assign_sub(variable, lr * mu_hat)

  def _backend_update_step(self, grads, trainable_variables, learning_rate):
    """All tensors in one update (the module docstring): all-reduces the
    gradients when in a replica context (as Keras' own does), then runs
    `_update_all` once per device of the variables."""
    variables = [v.value if isinstance(v, keras.Variable) else v
                 for v in trainable_variables]
    grads_and_vars = self._all_reduce_sum_gradients(
        list(zip(grads, variables)))
    tf.__internal__.distribute.interim.maybe_merge_call(
        self._update_on_devices, self._distribution_strategy, grads_and_vars,
        learning_rate)

  def _update_on_devices(self, distribution, grads_and_vars, learning_rate):
    grads = [g for g, _ in grads_and_vars]
    variables = [v for _, v in grads_and_vars]
    indices = [self._get_variable_index(v) for v in variables]
    nus = [self._nu[i].value for i in indices]
    mus = [self._mu[i].value for i in indices]
    # One call per device: `update` runs the function under each device of
    # variables[0] (all are mirrored alike) with that device's gradients;
    # reads and assignments of a mirrored variable inside it are that
    # device's copy.
    distribution.extended.update(
        variables[0],
        lambda _, g, lr: self._update_all(g, variables, nus, mus, lr),
        args=(grads, learning_rate), group=False)

  def _update_all(self, grads, variables, nus, mus, learning_rate):
    """`update_step` on every tensor at once: same operations per element,
    with the step's scalars built once."""
    dtype = variables[0].dtype
    step = tf.cast(self.iterations + 1, tf.float32)
    lr = tf.cast(learning_rate, dtype)
    beta1, beta2 = tf.constant(self.beta1, dtype), tf.constant(self.beta2,
                                                               dtype)
    # 1 - β in Python (float64), as update_step's `(1 - self.beta2) * ...`.
    rest1 = tf.constant(1 - self.beta1, dtype)
    rest2 = tf.constant(1 - self.beta2, dtype)
    one = tf.constant(1.0, dtype)
    correct1 = one - tf.pow(beta1, step)
    correct2 = one - tf.pow(beta2, step)
    epsilon = tf.constant(self.epsilon, dtype)
    grads = [tf.cast(g, dtype) for g in grads]
    if self.agc_clip:
      grads = self._agc_all(grads, variables, dtype)
    for grad, variable, nu, mu in zip(grads, variables, nus, mus):
      nu_new = beta2 * nu + rest2 * tf.square(grad)
      nu.assign(nu_new)
      grad = grad / (tf.sqrt(nu_new / correct2) + epsilon)
      mu_new = beta1 * mu + rest1 * grad
      mu.assign(mu_new)
      variable.assign_sub(lr * (mu_new / correct1))

  def _agc_all(self, grads, variables, dtype):
    """`agc` of every tensor: the norms compared as one vector [N]."""
    gnorm = tf.sqrt(tf.stack([tf.reduce_sum(tf.square(g)) for g in grads]))
    pnorm = tf.sqrt(tf.stack([tf.reduce_sum(tf.square(v))
                              for v in variables]))
    upper = tf.constant(self.agc_clip, dtype) * tf.maximum(
        tf.constant(self.agc_pmin, dtype), pnorm)
    divisors = tf.unstack(tf.maximum(tf.constant(1.0, dtype), gnorm / upper))
    return [g / d for g, d in zip(grads, divisors)]

  def get_config(self):
    config = super().get_config()
    config.update(agc_clip=self.agc_clip, agc_pmin=self.agc_pmin,
                  beta1=self.beta1, beta2=self.beta2, epsilon=self.epsilon)
    return config
