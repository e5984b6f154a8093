"""Atomic checkpoints: round trip, corruption fallback, disk-full safety."""
import os

import numpy as np
import pytest

from dreamer_tf.run import checkpoint as ckpt_lib


def test_round_trip_and_keep(tmp_path):
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=2)
  for i in range(3):
    ckpt.save([np.full(3, i, np.float32), np.arange(i + 1)], dict(step=i))
  assert ckpt.names() == ['ckpt-000001', 'ckpt-000002']
  tensors, state = ckpt.load()
  assert state['step'] == 2
  np.testing.assert_array_equal(tensors[0], [2, 2, 2])
  np.testing.assert_array_equal(tensors[1], [0, 1, 2])
  assert (tmp_path / 'latest').read_text() == 'ckpt-000002'


def test_corrupt_newest_falls_back_to_previous(tmp_path):
  ckpt = ckpt_lib.Checkpointer(str(tmp_path))
  ckpt.save([np.ones(4)], dict(step=1))
  path = ckpt.save([np.ones(4) * 2], dict(step=2))
  tensor_file = os.path.join(path, 'tensors.npz')
  with open(tensor_file, 'r+b') as f:
    f.truncate(os.path.getsize(tensor_file) // 2)
  with pytest.warns(UserWarning, match='ckpt-000001'):
    tensors, state = ckpt.load()
  assert state['step'] == 1


def test_all_corrupt_raises_naming_them(tmp_path):
  ckpt = ckpt_lib.Checkpointer(str(tmp_path))
  path = ckpt.save([np.ones(4)], dict(step=1))
  with open(os.path.join(path, 'state.json'), 'w') as f:
    f.write('{"broken')
  with pytest.warns(UserWarning):
    with pytest.raises(ckpt_lib.CheckpointError, match='ckpt-000000'):
      ckpt.load()


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
  """A full disk during the write leaves the last good checkpoint intact."""
  ckpt = ckpt_lib.Checkpointer(str(tmp_path))
  ckpt.save([np.ones(2)], dict(step=1))

  def disk_full(*args, **kwargs):
    raise OSError(28, 'No space left on device')
  monkeypatch.setattr(np, 'savez', disk_full)
  with pytest.raises(OSError, match='No space'):
    ckpt.save([np.zeros(2)], dict(step=2))
  monkeypatch.undo()
  assert ckpt.names() == ['ckpt-000000']
  assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]
  _, state = ckpt.load()
  assert state['step'] == 1


def test_empty_directory_loads_none(tmp_path):
  assert ckpt_lib.Checkpointer(str(tmp_path / 'new')).load() is None


def test_signature_diff_names_bindings():
  diff = ckpt_lib.signature_diff({'RSSM.deter': 512, 'a': 1},
                                 {'RSSM.deter': 1024, 'a': 1})
  assert diff == ["RSSM.deter: checkpoint 512 vs now 1024"]


class _Part:
  """A checkpoint part holding any state."""

  def __init__(self, state=None):
    self.state = state

  def get_state(self):
    return self.state

  def set_state(self, state):
    self.state = state


def test_named_parts_round_trip_arrays_lists_and_json(tmp_path):
  saved = dict(
      a=_Part(dict(x=np.arange(3), values=[np.ones(2), np.zeros((2, 2))],
                   count=5, nested={'k': [1, 2]})),
      b=_Part({'obs/image': np.full((2, 4), 7, np.uint8), 'env/0': np.ones(
          3, np.uint8), 'env/12345': np.zeros(1)}))
  ckpt_lib.Checkpoint(str(tmp_path), saved).save()
  restored = dict(a=_Part(), b=_Part())
  state = ckpt_lib.Checkpoint(str(tmp_path), restored).load()
  assert state['format'] == ckpt_lib.FORMAT
  a, b = restored['a'].state, restored['b'].state
  np.testing.assert_array_equal(a['x'], np.arange(3))
  assert [v.shape for v in a['values']] == [(2,), (2, 2)]
  assert a['count'] == 5 and a['nested'] == {'k': [1, 2]}
  assert b['obs/image'].dtype == np.uint8 and b['env/0'].shape == (3,)
  assert b['env/12345'].shape == (1,)  # Not mistaken for a list item.
  assert ckpt_lib.read(str(tmp_path))['a']['count'] == 5


def test_a_checkpoint_of_the_flat_layout_or_without_a_part_is_refused(
    tmp_path):
  ckpt_lib.Checkpointer(str(tmp_path / 'old')).save(
      [np.zeros(2)], dict(agent_tensors=1, loop_arrays=[]))
  with pytest.raises(ckpt_lib.CheckpointError, match='before 0.2'):
    ckpt_lib.Checkpoint(str(tmp_path / 'old'), dict(a=_Part())).load()
  ckpt_lib.Checkpoint(str(tmp_path / 'new'), dict(a=_Part({}))).save()
  with pytest.raises(ckpt_lib.CheckpointError, match="no 'b' part"):
    ckpt_lib.Checkpoint(str(tmp_path / 'new'),
                        dict(a=_Part(), b=_Part())).load()
