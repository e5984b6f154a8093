"""Chunked sequence replay (spec §1.7, §4.2, §4.3): storage in `buffer`,
item selection in `selectors`, the on-disk format in `disk`."""
from dreamer_tf.replay.buffer import Replay  # noqa: F401
from dreamer_tf.replay.buffer import WEIGHT  # noqa: F401
from dreamer_tf.replay.disk import ReplayCorruptError  # noqa: F401
from dreamer_tf.replay.disk import ReplayMissingError  # noqa: F401
