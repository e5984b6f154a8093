"""Reading finished and running runs: score files, curves, bootstrap bands,
Atari normalisation, achievements. No TensorFlow."""
