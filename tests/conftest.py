"""Shared test helpers: tiny model configs and synthetic replay batches."""
import json
import multiprocessing
import os
import shutil
import socket
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# The launchers the tests start (`python -m launch.train ...`) share one
# XLA compile cache per test session, so that a rerun of a command (a
# resume) loads what its first run compiled (dreamer_tf/run/compile_cache.py).
# Set DREAMER_TF_COMPILE_CACHE to keep one across sessions.
_SESSION_CACHE = None
if not os.environ.get('DREAMER_TF_COMPILE_CACHE'):
  _SESSION_CACHE = tempfile.mkdtemp(prefix='dreamer_tf_test_xla_')
  os.environ['DREAMER_TF_COMPILE_CACHE'] = _SESSION_CACHE


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if _SESSION_CACHE:
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


import gin
import numpy as np
import pytest


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The longest modules start first, longest first (seconds measured on 2
# cores, 2026-11-27; a module runs on one worker under `--dist loadscope`),
# and the many short ones fill in after them, so no long module runs alone
# at the end. xdist would otherwise order modules by their number of tests,
# which put the fault-injection module (2 tests, ~7 min) last.
LONGEST_FIRST = (
    'tests/model/test_placement.py',  # ~580 s
    'tests/tools/test_fault_injection.py',  # ~430 s
    'tests/run/test_train.py',  # ~400 s
    'tests/test_learning.py',  # ~340 s
    'tests/run/test_distribute.py',  # ~340 s
    'tests/run/test_workers.py',  # ~280 s
    'tests/parity/test_official_parity.py',  # ~180 s (official code only)
)


def pytest_configure(config):
  if hasattr(config.option, 'loadscopereorder'):  # pytest-xdist
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
  def rank(item):
    module = item.nodeid.split('::')[0]
    return (LONGEST_FIRST.index(module) if module in LONGEST_FIRST
            else len(LONGEST_FIRST))
  items.sort(key=rank)


# A tiny model for plumbing tests (seconds to compile and run on 2 cores).
# XLA is off: compiling the tiny update takes XLA ~45 s on 2 cores and
# tracing without it ~10 s, and a plumbing test runs a few dozen updates of
# ~0.1 s. A test of the XLA path binds Agent.jit_compile itself; every
# launcher run of the debug suite (tools/fault_injection.py, the exact-
# resume and launch tests) compiles with XLA (`auto` for vector inputs).
TINY = [
    'RSSM.deter = 64', 'RSSM.hidden = 16', 'RSSM.classes = 4',
    'RSSM.stoch = 4', 'WorldModel.depth = 2', 'WorldModel.units = 16',
    'Actor.units = 16', 'Critic.units = 16', 'Actor.layers = 1',
    'Critic.layers = 1', 'WorldModel.enc_layers = 1',
    'WorldModel.dec_layers = 1', 'Agent.jit_compile = False',
]


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def bind(*bindings):
  gin.parse_config_files_and_bindings([], list(bindings))


def run_isolated(fn, *args):
  """Runs `fn(*args)` in a fresh spawned process; re-raises its exception.

  MuJoCo's EGL renderer aborts a process that has loaded TensorFlow, which
  other test modules do; training renders in spawned env workers for the
  same reason. `fn` must be a module-level function.
  """
  context = multiprocessing.get_context('spawn')
  with context.Pool(1) as pool:
    return pool.apply(fn, args)


def make_batch(agent, batch=None, rng=None):
  """Random replay batch [B, C + T] matching the agent's spaces."""
  from dreamer_tf.model import batches  # pylint: disable=import-outside-toplevel
  return batches.random_batch(agent, rng or np.random.default_rng(0), batch)


def assert_same(got, expected):
  """Observation lists equal exactly: vectors/images, rewards and flags."""
  assert len(got) == len(expected)
  for t, (g, e) in enumerate(zip(got, expected)):
    assert set(g) == set(e)
    for key in e:
      np.testing.assert_array_equal(g[key], e[key], err_msg=f'{key} at {t}')


def free_ports(count):
  """`count` TCP ports on 127.0.0.1 that were free a moment ago."""
  sockets = [socket.socket() for _ in range(count)]
  for sock in sockets:
    sock.bind(('127.0.0.1', 0))
  ports = [sock.getsockname()[1] for sock in sockets]
  for sock in sockets:
    sock.close()
  return ports


def tf_config(ports, index):
  """TF_CONFIG of worker `index` of a cluster on 127.0.0.1:`ports`."""
  return json.dumps({
      'cluster': {'worker': [f'127.0.0.1:{p}' for p in ports]},
      'task': {'type': 'worker', 'index': index}})
