"""The run record <logdir>/run.json (`dreamer_tf/run/record.py`)."""
import json

import pytest

from dreamer_tf.run import record as record_lib


def _record(**changes):
  fields = dict(env='dmc:walker_walk', env_kwargs={'repeat': 2},
                frames_per_step=2, seed=3, num_envs=4, steps=1000,
                train_ratio=512.0)
  fields.update(changes)
  return record_lib.RunRecord(**fields)


def test_written_once_and_read_back(tmp_path):
  written = record_lib.write(str(tmp_path), _record())
  assert written.created  # Stamped on the first write.
  loaded = record_lib.load(str(tmp_path))
  assert loaded == written and loaded.frames == 2000
  on_disk = json.loads((tmp_path / 'run.json').read_text())
  assert on_disk['frames'] == 2000 and on_disk['env'] == 'dmc:walker_walk'


def test_a_resume_may_extend_the_budget_but_not_change_the_experiment(
    tmp_path):
  first = record_lib.write(str(tmp_path), _record())
  longer = record_lib.write(str(tmp_path), _record(steps=5000))
  assert longer.steps == 5000 and longer.created == first.created
  for change in (dict(seed=4), dict(env='dmc:walker_run'),
                 dict(env_kwargs={'repeat': 1}, frames_per_step=1)):
    with pytest.raises(record_lib.RunRecordError,
                       match=f'(?s){list(change)[0]}: run.json.*new --logdir'):
      record_lib.write(str(tmp_path), _record(**change))
  assert record_lib.load(str(tmp_path)).steps == 5000


def test_runs_without_run_json_are_read_from_config_gin(tmp_path):
  (tmp_path / 'config.gin').write_text(
      "train.env = 'atari100k:Pong'\ntrain.seed = 7\ntrain.steps = 100\n")
  record = record_lib.load(str(tmp_path))
  assert (record.env, record.seed, record.frames_per_step, record.steps) == (
      'atari100k:Pong', 7, 4, 100)
  # Unbound: the default env; the seed from the directory name.
  run = tmp_path / 'cartpole-5'
  run.mkdir()
  (run / 'config.gin').write_text('LaProp.lr = 1e-4\n')
  record = record_lib.load(str(run))
  assert (record.env, record.seed) == ('gym:CartPole-v1', 5)


def test_no_record_and_a_broken_record_are_errors(tmp_path):
  with pytest.raises(record_lib.RunRecordError, match='no run.json and no'):
    record_lib.load(str(tmp_path))
  (tmp_path / 'run.json').write_text('{"env": ')
  with pytest.raises(record_lib.RunRecordError, match='not a valid run'):
    record_lib.load(str(tmp_path))
