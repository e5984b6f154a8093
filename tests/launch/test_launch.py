"""The absl launchers: summary JSON and benchmark plumbing."""
import json
import os
import subprocess
import sys

import gin

from dreamer_tf import config
from launch import summary
from dreamer_tf import spaces
from tests.conftest import ROOT


def test_summary_prints_json_counts_for_vector_preset():
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.summary',
       '--gin_file=gin_configs/sizes/size1m.gin', '--obs_space=24',
       '--action_space=continuous:6'],
      capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout)
  assert result['total'] == 640_867
  assert result['params']['total'] == 640_867
  assert set(result['params']) >= {'encoder', 'rssm', 'decoder', 'actor',
                                   'critic'}
  memory = result['memory_per_update_estimate']
  assert memory['params_bytes'] == 4 * 640_867
  assert memory['total_bytes'] > memory['activation_bytes'] > 0


def test_summary_image_size12m_in_process():
  gin.clear_config()
  config.parse([os.path.join(ROOT, 'gin_configs', 'sizes', 'size12m.gin')])
  result = summary.summarize(spaces.parse_obs_space('64x64x3'),
                             spaces.parse_act_space('discrete:18'))
  assert result['total'] == 10_498_772
  assert result['precision'] == 'bfloat16'  # 'auto' on CPU with images


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
                 'launch.export', 'launch.plot', 'launch.tables'):
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
