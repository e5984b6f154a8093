"""LaProp + AGC + warm-up (spec §3.8) against hand-computed references."""
import numpy as np
import pytest
import tensorflow as tf

from dreamer_tf.model import optim


def test_agc_fixture():
  w = optim.agc(tf.constant([10.0, 0.1, -0.2]), tf.constant([1.0, -2, 0.5]))
  np.testing.assert_allclose(w, [0.687215, 0.006872, -0.013744], atol=1e-6)
  b = optim.agc(tf.constant([0.5]), tf.constant([0.0]))
  np.testing.assert_allclose(b, [0.0003], atol=1e-9)


def test_agc_leaves_small_gradients_alone():
  g = tf.constant([0.01, -0.02])
  np.testing.assert_array_equal(optim.agc(g, tf.constant([1.0, 1.0])), g)


def test_warmup_schedule():
  sched = optim.WarmupSchedule(4e-5, 1000)
  assert float(sched(0)) == 0.0
  assert float(sched(500)) == pytest.approx(2e-5)
  assert float(sched(5000)) == pytest.approx(4e-5)
  assert float(optim.WarmupSchedule(1e-3, 0)(0)) == pytest.approx(1e-3)


def _reference(params, grads_seq, lr, warmup, clip=0.3, b1=0.9, b2=0.999,
               eps=1e-20):
  """NumPy transcription of spec §3.8 for one tensor."""
  theta = np.array(params, np.float64)
  nu = np.zeros_like(theta)
  mu = np.zeros_like(theta)
  for k, g in enumerate(grads_seq):
    g = np.array(g, np.float64)
    upper = clip * max(1e-3, np.linalg.norm(theta))
    g = g / max(1.0, np.linalg.norm(g) / upper)
    nu = b2 * nu + (1 - b2) * g * g
    g = g / (np.sqrt(nu / (1 - b2 ** (k + 1))) + eps)
    mu = b1 * mu + (1 - b1) * g
    m = mu / (1 - b1 ** (k + 1))
    eta = lr * min(k, warmup) / warmup if warmup else lr
    theta = theta - eta * m
  return theta


@pytest.mark.parametrize('warmup', [0, 2])
def test_laprop_matches_reference(warmup):
  rng = np.random.default_rng(0)
  start = rng.normal(size=5).astype(np.float32)
  grads = [rng.normal(size=5).astype(np.float32) * s for s in (1, 5, 0.1, 2)]
  var = tf.Variable(start)
  opt = optim.LaProp(lr=0.01, warmup=warmup)
  for g in grads:
    opt.apply([tf.constant(g)], [var])
  np.testing.assert_allclose(var.numpy(), _reference(start, grads, 0.01,
                                                     warmup), rtol=1e-5)
  assert int(opt.iterations) == 4


def test_first_update_is_zero_during_warmup():
  var = tf.Variable([1.0, 2.0])
  optim.LaProp(warmup=1000).apply([tf.constant([3.0, -1.0])], [var])
  np.testing.assert_array_equal(var.numpy(), [1.0, 2.0])


def test_laprop_compiles_with_xla():
  var = tf.Variable(tf.ones([3, 2]))
  opt = optim.LaProp(lr=0.1, warmup=0)
  opt.build([var])

  @tf.function(jit_compile=True)
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.square(var))
    opt.apply(tape.gradient(loss, [var]), [var])
  step()
  step()
  assert np.all(var.numpy() < 1.0)


class _PerTensor(optim.LaProp):
  """LaProp through Keras' own per-tensor loop over `update_step`."""

  def _backend_update_step(self, grads, trainable_variables, learning_rate):
    # pylint: disable-next=bad-super-call
    super(optim.LaProp, self)._backend_update_step(
        grads, trainable_variables, learning_rate)


class _Counting(optim.LaProp):
  """LaProp counting its one-pass updates (traced or eager)."""
  calls = 0

  def _update_all(self, *args):
    self.calls += 1
    return super()._update_all(*args)


@pytest.mark.parametrize('agc_clip', [0.3, 0.0])
@pytest.mark.parametrize('jit_compile', [False, True])
def test_all_tensors_at_once_equals_update_step_per_tensor(agc_clip,
                                                           jit_compile):
  """`apply` (all tensors in one pass) does update_step's arithmetic: the
  parameters and moments agree bit for bit over steps with clipping on
  and off, one tensor clipped hard, one not at all, one scalar."""
  rng = np.random.default_rng(1)
  shapes = [(3, 4), (5,), (), (2, 3, 2)]
  starts = [rng.normal(size=s).astype(np.float32) for s in shapes]
  starts[1][:] = 0.0  # ||θ|| = 0: AGC's pmin floor.
  scales = [100.0, 1.0, 1e-4, 3.0]
  runs = []
  for cls in (_Counting, _PerTensor):
    variables = [tf.Variable(s) for s in starts]
    opt = cls(lr=0.01, warmup=2, agc_clip=agc_clip)
    opt.build(variables)
    step = tf.function(lambda g, o=opt, v=variables: o.apply(g, v),
                       jit_compile=jit_compile, autograph=False)
    draw = np.random.default_rng(2)
    for _ in range(4):
      step([tf.constant(draw.normal(size=s).astype(np.float32) * c)
            for s, c in zip(shapes, scales)])
    runs.append([v.numpy() for v in variables + opt._nu + opt._mu])  # pylint: disable=protected-access
    assert int(opt.iterations) == 4
    # The one-pass path ran (a Keras rename would leave both on its loop).
    assert (opt.calls >= 1) if cls is _Counting else not hasattr(opt, 'calls')
  for fused, reference in zip(*runs):
    np.testing.assert_array_equal(fused, reference)
