"""Quiet start-up for the launchers: TensorFlow's C++ INFO lines off.

`launch/__init__.py` imports this module, so it runs before any launcher
(`python -m launch.<name>`) or the env workers it spawns (they re-import
the launcher's module) can load TensorFlow, which reads
TF_CPP_MIN_LOG_LEVEL (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL) once, at load.
A level the user set is kept (`TF_CPP_MIN_LOG_LEVEL=0 python -m
launch.train` shows everything). Otherwise:

* '1' with an NVIDIA driver: hides the INFO lines ("XLA service ...
  initialized", "disabling MLIR crash reproducer", "Compiled cluster using
  XLA", the CPU feature guard) and keeps the WARNING and ERROR lines a GPU
  user acts on (CUDA/cuDNN libraries that fail to load, a failed cuInit).
* '3' without one: on a CPU machine a whole `launch.train` run logs no
  WARNING line and one ERROR line, "failed call to cuInit" (TensorFlow's
  CUDA build finding no GPU), which '1' or '2' would still print; real
  failures raise Python exceptions that carry their message.

TensorFlow's "Could not find cuda drivers on your machine" (INFO) is
printed before the level is read and stays, and so, on CPUs where
TensorFlow turns oneDNN on by default (AVX-512 VNNI, AMX), does "oneDNN
custom operations are on". oneDNN stays on (TF_ENABLE_ONEDNN_OPTS is left
alone). matplotlib's INFO records
("generated new fontManager"), which absl's INFO verbosity would print,
are hidden too; `--logger_levels=matplotlib:INFO` shows them.
"""
import logging
import os

# Where an NVIDIA driver shows itself: Linux, and WSL 2's GPU device.
DRIVER_PATHS = ('/proc/driver/nvidia/version', '/dev/dxg')


def has_nvidia_driver():
  """True when an NVIDIA GPU driver is loaded on this machine."""
  return any(os.path.exists(p) for p in DRIVER_PATHS)


def default_level():
  """The TF_CPP_MIN_LOG_LEVEL the launchers use when the user set none."""
  return '1' if has_nvidia_driver() else '3'


os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', default_level())
logging.getLogger('matplotlib').setLevel(logging.WARNING)
# TensorFlow's Python INFO records (a mirrored run's "Using MirroredStrategy
# ...", "Collective all_reduce ...", "Reduce to CPU:0 then broadcast" per
# metric) say nothing a user acts on; warnings and errors stay.
logging.getLogger('tensorflow').setLevel(logging.WARNING)
