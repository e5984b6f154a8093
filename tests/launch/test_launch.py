"""The absl launchers: summary JSON and benchmark plumbing."""
import json
import os
import subprocess
import sys

import gin

from dreamer_tf import config
from dreamer_tf.model import agent as agent_lib
from dreamer_tf import spaces
from launch import quiet
from launch import summary
from tests.conftest import ROOT


# TensorFlow's C++ lines a launcher must not print by default, and the
# one it prints before reading any setting (launch/quiet.py).
NOISE = ('cpu_feature_guard', 'cuInit', 'service.cc', 'dump_mlir_util',
         'device_compiler', 'Compiled cluster')
# Printed before TensorFlow reads the level: the CUDA stub, absl's notice,
# and, on CPUs where TensorFlow turns oneDNN on by default (AVX-512 VNNI /
# AMX), oneDNN's notice.
UNAVOIDABLE = ('cudart_stub.cc', 'before absl::InitializeLog()',
               'oneDNN custom operations are on')


def without_tf_log_level():
  """The environment of a user who did not set TF_CPP_MIN_LOG_LEVEL (the
  test conftest sets it for the test process)."""
  env = dict(os.environ)
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)
  return env


def assert_quiet(stderr):
  lines = [l for l in stderr.splitlines()
           if not any(u in l for u in UNAVOIDABLE)]
  assert not [l for l in lines if any(n in l for n in NOISE)], stderr
  # No other C++ log lines either ('I0000 ...', 'E0000 ...').
  assert not [l for l in lines if l[:1] in 'IWE' and l[1:5].isdigit()], \
      stderr


def test_summary_prints_json_counts_for_vector_preset():
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.summary',
       '--gin_file=gin_configs/sizes/size1m.gin', '--obs_space=24',
       '--action_space=continuous:6'],
      capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
      env=without_tf_log_level())
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert_quiet(proc.stderr)
  result = json.loads(proc.stdout)
  assert result['total'] == 640_867
  assert result['params']['total'] == 640_867
  assert set(result['params']) >= {'encoder', 'rssm', 'decoder', 'actor',
                                   'critic'}
  memory = result['memory_per_update_estimate']
  assert memory['params_bytes'] == 4 * 640_867
  assert memory['total_bytes'] > memory['activation_bytes'] > 0


# What a launcher does: `python -m launch.<name>` imports the package
# first; then TensorFlow compiles a function with XLA.
XLA_SCRIPT = """
import os
import launch
import tensorflow as tf
@tf.function(jit_compile=True)
def square(x):
  return tf.reduce_sum(x * x)
print(os.environ['TF_CPP_MIN_LOG_LEVEL'], float(square(tf.ones(3))))
"""


def test_launchers_hide_tensorflow_info_lines_unless_the_user_asks():
  env = without_tf_log_level()
  proc = subprocess.run(
      [sys.executable, '-c', XLA_SCRIPT], capture_output=True, text=True,
      cwd=ROOT, timeout=300, check=True, env=env)
  assert proc.stdout.split() == [quiet.default_level(), '3.0']
  assert_quiet(proc.stderr)
  # A level the user set is kept: at 0 TensorFlow logs its XLA lines.
  proc = subprocess.run(
      [sys.executable, '-c', XLA_SCRIPT], capture_output=True, text=True,
      cwd=ROOT, timeout=300, check=True,
      env=dict(env, TF_CPP_MIN_LOG_LEVEL='0'))
  assert proc.stdout.split() == ['0', '3.0']
  assert 'service.cc' in proc.stderr and 'Compiled cluster' in proc.stderr


def test_default_log_level_keeps_warnings_where_there_is_a_gpu(
    tmp_path, monkeypatch):
  driver = tmp_path / 'version'
  monkeypatch.setattr(quiet, 'DRIVER_PATHS',
                      (str(tmp_path / 'dxg'), str(driver)))
  assert quiet.default_level() == '3'  # CPU only: not even cuInit's error.
  driver.write_text('NVRM version: 580')
  assert quiet.default_level() == '1'  # GPU: warnings and errors stay.


def test_embedded_default_is_a_short_first_run_of_the_gym_suite():
  from launch import train  # pylint: disable=import-outside-toplevel
  config.parse(train.DEFAULT_GIN)
  # Just past the benchmark's solve (~17.3k env steps), not gym.gin's 100k.
  assert gin.query_parameter('train.steps') == 20000
  assert gin.query_parameter('train.env') == 'gym:CartPole-v1'
  assert gin.query_parameter('train.num_envs') == 4
  gin.clear_config()
  config.parse([os.path.join(ROOT, 'gin_configs', 'suites', 'gym.gin')])
  assert gin.query_parameter('train.steps') == 100000


def test_summary_image_size12m_in_process():
  gin.clear_config()
  config.parse([os.path.join(ROOT, 'gin_configs', 'sizes', 'size12m.gin')])
  result = summary.summarize(spaces.parse_obs_space('64x64x3'),
                             spaces.parse_act_space('discrete:18'))
  assert result['total'] == 10_498_772
  # 'auto' on a CPU with images: bfloat16 where the CPU has it natively.
  assert result['precision'] == (
      'bfloat16' if agent_lib.cpu_has_native_bf16() else 'float32')


def test_summary_rejects_bad_gin_binding():
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.summary', '--gin_param=RSSM.detr=1'],
      capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
  assert proc.returncode != 0
  assert 'did you mean' in proc.stderr and 'RSSM.deter' in proc.stderr


def test_launchers_load_tensorflow_only_when_they_run():
  # Spawned env workers re-import the launcher's main module: importing it
  # must not load TensorFlow (0.7 GB per worker; dm_control's EGL renderer
  # aborts in a process that has loaded it).
  for module in ('launch.train', 'launch.sweep', 'launch.evaluate',
                 'launch.export', 'launch.plot', 'launch.tables',
                 'launch.results', 'launch.summary', 'launch.snapshot',
                 'launch.probe_deepsea'):
    out = subprocess.run(
        [sys.executable, '-c',
         f'import sys, {module}; print("tensorflow" in sys.modules)'],
        cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == 'False', module



def test_train_refuses_another_seed_on_resume_without_a_traceback(tmp_path):
  def launch(seed):
    return subprocess.run(
        [sys.executable, '-m', 'launch.train', f'--logdir={tmp_path}',
         f'--seed={seed}', '--gin_file=gin_configs/default.gin',
         '--gin_file=gin_configs/suites/debug.gin',
         '--gin_param=train.steps=8'],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
  assert launch(2).returncode == 0
  proc = launch(3)
  assert proc.returncode != 0
  assert 'launch.train: The checkpoint' in proc.stderr
  assert 'pass --seed=2' in proc.stderr and 'Traceback' not in proc.stderr
  assert 'train.seed = 2' in (tmp_path / 'config.gin').read_text()
