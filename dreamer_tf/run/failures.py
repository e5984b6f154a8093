"""Errors that stop a run at a consistent state (issue 15: nothing lost,
nothing silent).

An env that crash-loops or returns a non-finite or malformed observation
(`envs/parallel.py`) and too many skipped updates (`NonFiniteError`) leave
the run at its last good step: the driver changes nothing on a failed env
step and a skipped update changes no parameter. The loop therefore writes a
checkpoint of that state, notes the policy step on the error and re-raises
it (`run/loop.py`); the launchers print it as one message without a
traceback (`launch/errors.py`) and exit non-zero, and no `done.json` is
written. A `WorkerLostError` (multi-worker runs) stops a run the same way,
without a checkpoint. Free of TensorFlow, so the launchers can import it at
start.
"""
from dreamer_tf.envs import parallel


class NonFiniteError(FloatingPointError):
  """Too many updates were skipped for a non-finite loss or gradient."""


class WorkerLostError(RuntimeError):
  """Another worker of a multi-worker run died or stopped responding
  (`run/workers.py`). Not checkpointed: the workers resume together from
  the newest checkpoint all of them have."""


# Raised at a consistent state: checkpointed by the loop, then re-raised.
CHECKPOINTED_ERRORS = (parallel.CrashLoopError, parallel.EnvOutputError,
                       NonFiniteError)
# Stop a run with one message (launch/errors.py), checkpointed or not.
STOPPING_ERRORS = CHECKPOINTED_ERRORS + (WorkerLostError,)
