"""LaProp with adaptive gradient clipping and linear warm-up (spec §1.6, §3.8).

Per parameter tensor θ with gradient g and update count k (from 0):
  1. AGC:      g <- g / max(1, ||g|| / (clip * max(pmin, ||θ||)))
  2. RMS:      ν <- β2 ν + (1 - β2) g²;  ĝ = g / (sqrt(ν / (1 - β2^{k+1})) + ε)
  3. momentum: μ <- β1 μ + (1 - β1) ĝ;    m = μ / (1 - β1^{k+1})
  4. step:     θ <- θ - η_k m,  η_k = lr min(k, warmup) / warmup

A Keras 3 optimizer: under a `tf.distribute` strategy, `apply` all-reduces
(sums) the per-replica gradients first and only then calls `update_step`, so
the norm-based clipping sees the global gradient (unlike Keras' own
`clipnorm`, which clips each replica's gradient before the reduction).
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
  """AGC -> RMS normalisation -> momentum -> -lr, one Keras optimizer."""

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

  def get_config(self):
    config = super().get_config()
    config.update(agc_clip=self.agc_clip, agc_pmin=self.agc_pmin,
                  beta1=self.beta1, beta2=self.beta2, epsilon=self.epsilon)
    return config
