"""Image resizing shared by the adapters: Pillow bilinear (spec §5.1)."""
import numpy as np


def pillow():
  """PIL.Image, or an ImportError naming the fix."""
  try:
    from PIL import Image  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(
        "Pillow is not installed (needed to resize images): pip install -e "
        "'.[atari]' or pip install pillow") from e
  return Image


def resize(image, size):
  """[H, W, C] uint8 -> [*size, C] uint8 with Pillow's bilinear filter."""
  if image.shape[:2] == tuple(size):
    return image
  image_lib = pillow()
  wh = (size[1], size[0])
  if image.shape[-1] == 3:
    return np.asarray(image_lib.fromarray(image).resize(
        wh, image_lib.BILINEAR))
  return np.stack([
      np.asarray(image_lib.fromarray(image[..., c]).resize(
          wh, image_lib.BILINEAR))
      for c in range(image.shape[-1])], -1)
