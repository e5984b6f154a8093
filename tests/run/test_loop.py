"""The training loop's parts (`dreamer_tf/run/loop.py`); the loop itself
runs end to end in tests/run/test_train.py."""
from dreamer_tf.run import loop as loop_lib


def test_train_ratio_counts_replayed_steps_per_policy_step():
  ratio = loop_lib.TrainRatio(64, batch_steps=16 * 64)
  assert ratio.due(1000) == 0  # Training starts here: no catch-up burst.
  assert ratio.due(1000 + 15) == 0
  assert ratio.due(1000 + 16) == 1
  ratio.updates += 1
  assert ratio.due(1000 + 160) == 9
  ratio.updates += 9
  restored = loop_lib.TrainRatio(64, 16 * 64)
  restored.restore(ratio.state())
  assert restored.due(1000 + 320) == 10
