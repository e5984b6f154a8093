"""What a DeepSea run's world model knows about the grid, per checkpoint.

  python -m launch.probe_deepsea --logdirs='runs/xp/snapshots/baseline-seed0/s*'
  python -m launch.probe_deepsea --logdirs=runs/deepsea --cells --probe_out=probe.jsonl

For each run directory (its config.gin and newest checkpoint, as
launch.evaluate reads them; globs are sorted) prints one JSON line: the
directory, its policy steps and updates, and the summary of
dreamer_tf/analysis/deepsea_probe.py: the fraction of reachable cells
whose posterior decodes to the right cell (`reconstruct`; to a cell of
the right row: `reconstruct_row`), of one-step
imagined moves that decode to where the environment moves (`imagine`, and
`imagine_diagonal_right` for the right moves along the diagonal, the path to
the treasure), the reward predicted for the treasure step and for the left
move there, the actor's mean probability of moving right on the diagonal
and its mean entropy over the cells (`actor_entropy`),
the posterior's entropy (nats) and, with an ensemble, its disagreement on
the diagonal's right moves vs every other move (`cells` is the number of
reachable cells). --cells adds `per_cell`, a row per cell.
--probe_out also writes the lines to a file.

With an ensemble, `disagreement_replay_novelty` ranks its disagreement by
each move's count in the run's replay up to the checkpoint's policy steps
(dreamer_tf/analysis/replay_moves.py). The replay is <logdir>/replay, or
--replay for checkpoint snapshots, which have none (pass the run's, e.g.
runs/deepsea/replay; a replay of another run is refused).

A snapshot taken with `launch.snapshot --priorities` holds the replay's
step priorities at its checkpoint; with the replay, the line adds
`priority_diagonal`: per diagonal row, how the priorities of the steps at
(r, r) compared with the mean (> 1: prioritized replay favoured them),
`priority_diagonal_steps` and `priority_unset` (replay_moves.py
`diagonal_priorities`).

--novelty_steps=N (e.g. 3000; 0 = off) adds `novelty`: whether a fresh
ensemble of each target ('stoch', 'embed'), trained N steps on the
checkpoint's posteriors of uniform random episodes (fresh samples every
step; disagreement averaged over --samples per cell) from which the right
moves of the diagonal from row --novelty_hold_out_from on are removed,
disagrees more on rarer moves (novelty_correlation > 0; dreamer_tf/
analysis/ensemble_novelty.py).
A few minutes per checkpoint on 2 cores at N = 3000.
"""
import contextlib
import glob
import json
import os
import re

from absl import app
from absl import flags

from dreamer_tf.analysis import replay_moves
from dreamer_tf.envs.deepsea import MAPPING_SEED
from dreamer_tf.run import record as record_lib
from dreamer_tf.run import snapshots
from launch import errors

flags.DEFINE_multi_string(
    'logdirs', [], 'Glob(s) of run directories to probe (each with '
    'config.gin and ckpt/, e.g. checkpoint snapshots of one run).')
flags.DEFINE_integer('samples', 8, 'Latent samples per path.', lower_bound=1)
flags.DEFINE_bool('cells', False, 'Add the per-cell rows to each line '
                  '(key per_cell).')
flags.DEFINE_integer('probe_seed', 0, 'Seed of the latent samples.',
                     lower_bound=0, upper_bound=2**31 - 1)
flags.DEFINE_string('probe_out', None, 'Also write the JSON lines here.')
flags.DEFINE_integer('novelty_steps', 0, 'Training steps of the fresh '
                     'ensembles of the novelty experiment; 0 skips it.',
                     lower_bound=0)
flags.DEFINE_integer('novelty_episodes', 1500, 'Uniform random episodes '
                     'the novelty ensembles train on.', lower_bound=16)
flags.DEFINE_integer('novelty_hold_out_from', 4, 'First diagonal row whose '
                     'right move the novelty data never contains.',
                     lower_bound=1)
flags.DEFINE_string('replay', None, "The probed run's replay directory, "
                    'for the replay counts of run directories without one '
                    '(snapshots); <logdir>/replay comes first.')
FLAGS = flags.FLAGS


def run_dirs(patterns):
  """Sorted run directories matching the globs, without snapshot copies
  still being written; a user error naming the first glob that matches
  none (or if no glob is given)."""
  if not patterns:
    raise ValueError('--logdirs is required: a DeepSea run directory or a '
                     'glob of its checkpoint snapshots.')
  dirs = set()
  for pattern in patterns:
    matched = [d for d in glob.glob(pattern)
               if os.path.isfile(os.path.join(d, 'config.gin'))]
    found = {d for d in matched if not snapshots.is_partial(d)}
    if matched and not found:
      raise ValueError(
          f'--logdirs={pattern} matches only snapshot copies still being '
          f'written ({", ".join(sorted(matched))}): wait until '
          'launch.snapshot has finished them.')
    if not found:
      raise ValueError(
          f'--logdirs={pattern} matches no run directory (one with a '
          'config.gin): pass the --logdir of a DeepSea training run, or a '
          'glob of its checkpoint snapshots.')
    dirs |= found
  return sorted(dirs)


def deepsea_size(env):
  """N of a 'deepsea:N' env id; a user error for another env."""
  match = re.fullmatch(r'deepsea:([0-9]+)', env)
  if not match:
    raise ValueError(f'The run trained on {env!r}; the probe reads DeepSea '
                     "runs ('deepsea:<N>') only.")
  return int(match.group(1))


def env_settings(env_kwargs):
  """The probe's keyword arguments for a run's DeepSea env kwargs; a user
  error for the windy variant, whose moves are random."""
  if not env_kwargs.get('deterministic', True):
    raise ValueError('The run trained on the windy DeepSea '
                     '(deterministic=False): its moves are random, so the '
                     'probe has no true next cell. Probe deterministic runs.')
  return dict(mapping_seed=env_kwargs.get('mapping_seed', MAPPING_SEED),
              randomize_actions=env_kwargs.get('randomize_actions', True))


def check_hold_out(row, size):
  """A user error unless the held-out row leaves moves after it."""
  if not 1 <= row <= size - 2:
    raise ValueError(
        f'--novelty_hold_out_from={row}: a deepsea:{size} run has rows '
        f'1 .. {size - 2} to hold out from (a move from row {size - 1} '
        'ends the episode); pick one of them.')


def replay_of(logdir, record):
  """The replay to count a run's moves in: <logdir>/replay, else --replay
  (checked now: the run it belongs to, its env workers), else None. A user
  error for a multi-machine run, whose replays each hold one machine's
  share."""
  own = os.path.join(logdir, 'replay')
  replay = own if os.path.isdir(own) else FLAGS.replay
  if replay is None:
    return None
  if record.workers > 1:
    raise ValueError(
        f'{logdir} ran on {record.workers} machines: its replay holds one '
        "machine's share of the steps, so its moves cannot be counted. "
        'Probe it without a replay (no --replay, and move <logdir>/replay '
        'aside) for every other measure.')
  if replay == FLAGS.replay:
    owner = os.path.dirname(os.path.abspath(replay))
    try:
      theirs = record_lib.load(owner)
    except record_lib.RunRecordError:
      theirs = None  # A replay copied elsewhere: its workers are checked.
    if theirs is not None and (theirs.env, theirs.env_kwargs, theirs.seed) != (
        record.env, record.env_kwargs, record.seed):
      raise ValueError(
          f'--replay={replay} belongs to a run of {theirs.env} '
          f'{theirs.env_kwargs} seed {theirs.seed}, but {logdir} is a run of '
          f'{record.env} {record.env_kwargs} seed {record.seed}: pass the '
          "probed run's replay.")
    replay_moves.check(replay, envs=record.num_envs)
  return replay


@errors.exits_on_user_error('launch.probe_deepsea')
def main(argv):
  del argv
  with errors.user_input():
    dirs = run_dirs(FLAGS.logdirs)
    if FLAGS.replay and not os.path.isdir(FLAGS.replay):
      raise ValueError(f'--replay={FLAGS.replay} is not a directory; pass '
                       "the probed run's replay (e.g. runs/x/replay).")
    runs = []  # Every directory checked before TensorFlow loads.
    for logdir in dirs:
      record = record_lib.load(logdir)
      size = deepsea_size(record.env)
      if FLAGS.novelty_steps:
        check_hold_out(FLAGS.novelty_hold_out_from, size)
      replay = replay_of(logdir, record)
      saved = os.path.join(logdir, snapshots.PRIORITIES)
      if replay and os.path.isfile(saved):
        replay_moves.check_priorities(replay, saved)
      runs.append((logdir, size, env_settings(record.env_kwargs), replay,
                   record.num_envs))
  # pylint: disable=import-outside-toplevel
  from dreamer_tf.analysis import deepsea_probe
  from dreamer_tf.analysis import ensemble_novelty
  from dreamer_tf.envs import deepsea
  from dreamer_tf.run import evaluate
  with (open(FLAGS.probe_out, 'w') if FLAGS.probe_out
        else contextlib.nullcontext()) as out:
    for logdir, size, settings, replay, num_envs in runs:
      agent, states = evaluate.restore_agent(logdir)
      counters = states['counters']
      counts = None
      if replay and agent.ensemble is not None:
        mapping = deepsea.DeepSeaEnv(size=size, **settings).action_mapping
        with errors.user_input():
          counts = replay_moves.moves(replay, size, mapping,
                                      steps=counters['policy_steps'],
                                      envs=num_envs)
      result = deepsea_probe.probe(agent, size, samples=FLAGS.samples,
                                   seed=FLAGS.probe_seed, counts=counts,
                                   **settings)
      line = dict(logdir=logdir, policy_steps=counters['policy_steps'],
                  updates=counters['ratio']['updates'],
                  probe_seed=FLAGS.probe_seed, **result['summary'])
      saved = os.path.join(logdir, snapshots.PRIORITIES)
      if replay and os.path.isfile(saved):
        with errors.user_input():
          line.update(replay_moves.diagonal_priorities(replay, saved, size))
      if FLAGS.cells:
        line['per_cell'] = result['cells']
      if FLAGS.novelty_steps:
        line['novelty_settings'] = dict(
            steps=FLAGS.novelty_steps, episodes=FLAGS.novelty_episodes,
            samples=FLAGS.samples,
            hold_out_from=FLAGS.novelty_hold_out_from)
        line['novelty'] = ensemble_novelty.novelty(
            agent, size, episodes=FLAGS.novelty_episodes,
            samples=FLAGS.samples,
            steps=FLAGS.novelty_steps,
            hold_out_from=FLAGS.novelty_hold_out_from,
            seed=FLAGS.probe_seed, **settings)
      print(json.dumps(line), flush=True)
      if out:  # A line per directory: a later failure keeps the earlier.
        out.write(json.dumps(line) + '\n')
        out.flush()

if __name__ == '__main__':
  app.run(main)
