"""absl launchers (`python -m launch.<name>`).

Importing the package quiets TensorFlow's C++ start-up lines before any
launcher can load TensorFlow (launch/quiet.py).
"""
from launch import quiet  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL)
