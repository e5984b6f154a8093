"""Space parsing and the checks that name unsupported spaces."""
import pytest

from dreamer_tf import spaces


def test_parse_obs_space_image_vector_and_several_keys():
  obs = spaces.parse_obs_space('64x64x3')
  assert obs['image'].is_image and obs['image'].dtype == 'uint8'
  assert set(obs) == {'image', 'reward', 'is_first', 'is_last', 'is_terminal'}
  vec = spaces.parse_obs_space('24')
  assert vec['vector'].shape == (24,) and vec['vector'].dtype == 'float32'
  both = spaces.parse_obs_space('image:64x64x3,state:5')
  assert spaces.model_keys(both) == ['image', 'state']


def test_parse_act_space():
  assert spaces.parse_act_space('discrete:18')['action'].classes == 18
  cont = spaces.parse_act_space('continuous:6')['action']
  assert cont.shape == (6,) and not cont.discrete and cont.size == 6
  assert spaces.parse_act_space('discrete:4')['action'].size == 4


@pytest.mark.parametrize('text', ['64x64', 'abc', '3x'])
def test_bad_obs_text_is_explained(text):
  with pytest.raises(ValueError, match='HxWxC|must be'):
    spaces.parse_obs_space(text)


def test_bad_act_text_is_explained():
  with pytest.raises(ValueError, match='discrete:N or continuous:N'):
    spaces.parse_act_space('box:3')


def test_checks_name_the_offending_key():
  with pytest.raises(ValueError, match='no model input'):
    spaces.check_obs_space({'reward': spaces.Space((), 'float32')})
  with pytest.raises(ValueError, match="'action'.*flat vector"):
    spaces.check_act_space({'action': spaces.Space((2, 2), 'float32')})
  with pytest.raises(ValueError, match='>= 2 classes'):
    spaces.Space((), 'int32', classes=1)
  obs = spaces.parse_obs_space('5')
  obs['log/extra'] = spaces.Space((3, 3), 'float32')  # ignored: log/ key
  spaces.check_obs_space(obs)
