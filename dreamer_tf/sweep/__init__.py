"""Many runs at once: a sweep's plan (tasks x grid points x seeds) and the
local runner with status and index. No TensorFlow."""
