"""User errors end every launcher with one line and no traceback
(launch/errors.py); --debug shows the traceback; a bug keeps it.

Each case runs `python -m launch.<name>` in a subprocess with a timeout (a
launcher that hangs after an error fails the test) and fails before any
model is built: most before TensorFlow loads.
"""
import os
import subprocess
import sys

import gin
import pytest

from dreamer_tf.run import checkpoint
from dreamer_tf.run import record
from launch import errors
from tests.conftest import ROOT

TINY = ['--gin_file=gin_configs/suites/gym.gin',
        '--gin_file=gin_configs/suites/debug.gin']
TIMEOUT = 120


def launch(name, *argv):
  """The finished `python -m launch.<name> argv` (CompletedProcess)."""
  return subprocess.run(
      [sys.executable, '-m', f'launch.{name}', *argv], cwd=ROOT,
      capture_output=True, text=True, timeout=TIMEOUT, check=False)


def read_only_dir(tmp_path):
  """A directory this process cannot create files in (root ignores
  permission bits, but not sysfs); skips the test if there is none."""
  directory = tmp_path / 'read_only'
  directory.mkdir()
  directory.chmod(0o555)
  for candidate in (str(directory), '/sys'):
    probe = os.path.join(candidate, 'probe')
    try:
      os.mkdir(probe)
    except OSError:
      return candidate
    os.rmdir(probe)
  pytest.skip('no read-only directory for this user')


# case: (launcher, argv, words of the message: the first one starts it).
# {tmp} is a fresh directory holding a file `file`, a directory `notes`
# with a file in it, and `cartpole`, a run directory of gym:CartPole-v1
# without a checkpoint.
CASES = {
    'wrong_type_of_a_binding': (
        'train', TINY + ['--logdir={tmp}/run', "--gin_param=RSSM.deter='big'"],
        ["launch.train: RSSM.deter = 'big'", 'takes an integer',
         'not a str']),
    'non_numeric_steps': (
        'train', TINY + ['--logdir={tmp}/run', "--gin_param=train.steps='abc'"],
        ["launch.train: train.steps = 'abc'", 'takes an integer',
         'train.steps = 100000']),
    'negative_seed': (
        'train', TINY + ['--logdir={tmp}/run', '--seed=-1'],
        ['Flags parsing error: flag --seed=-1', '[0, 999999]']),
    'logdir_is_a_file': (
        'train', TINY + ['--logdir={tmp}/file'],
        ['launch.train: --logdir={tmp}/file is a file, not a directory']),
    'logdir_below_a_file': (
        'train', TINY + ['--logdir={tmp}/file/run'],
        ['launch.train: --logdir={tmp}/file/run cannot be created',
         '{tmp}/file is a file', 'Pass a --logdir']),
    'compile_cache_below_a_file': (
        'train', TINY + ['--logdir={tmp}/run',
                         '--compile_cache={tmp}/file/cache'],
        ['launch.train: --compile_cache={tmp}/file/cache cannot be created',
         'Pass a directory you can write to', '--compile_cache= to run']),
    'evaluate_with_a_compile_cache_below_a_file': (
        'evaluate', ['--logdir={tmp}', '--compile_cache={tmp}/file/cache'],
        ['launch.evaluate: --compile_cache={tmp}/file/cache cannot be']),
    'evaluate_a_directory_that_is_no_run': (
        'evaluate', ['--logdir={tmp}/nowhere'],
        ['launch.evaluate: {tmp}/nowhere/config.gin does not exist',
         '--logdir of a training run']),
    'evaluate_zero_episodes': (
        'evaluate', ['--logdir={tmp}', '--episodes=0'],
        ['Flags parsing error: flag --episodes=0']),
    'export_into_a_foreign_directory': (
        'export', ['--logdir={tmp}/nowhere', '--out={tmp}/notes'],
        ['launch.export: {tmp}/notes is not empty',
         'new or empty directory as --out', '--overwrite']),
    'summary_bad_space': (
        'summary', ['--obs_space=abc'],
        ["launch.summary: Cannot parse observation space 'abc'"]),
    'plot_no_runs': (
        'plot', ['--runs={tmp}/nowhere', '--out={tmp}/plots'],
        ['launch.plot: No run directories match']),
    'tables_bad_window': (
        'tables', ['--runs={tmp}', '--window=1'],
        ['launch.tables: --window needs lo,hi']),
    'results_without_root': (
        'results', [], ['launch.results: --root is required']),
    'results_no_sweep_root': (
        'results', ['--root={tmp}/nowhere'],
        ["launch.results: No sweep root '{tmp}/nowhere'"]),
    'sweep_bad_seeds': (
        'sweep', ['--root={tmp}/sweep', '--tasks=gym:CartPole-v1',
                  '--seeds=x', '--mode=print'],
        ["launch.sweep: Bad seeds 'x'"]),
    'sweep_unknown_experiment': (
        'sweep', ['--root={tmp}/sweep', '--tasks=gym:CartPole-v1',
                  '--experiments=nope', '--mode=print'],
        ["launch.sweep: Unknown experiment 'nope'", 'baseline']),
    'probe_no_run': (
        'probe_deepsea', ['--logdirs={tmp}/nowhere*'],
        ['launch.probe_deepsea: --logdirs=', 'matches no run directory']),
    'snapshot_not_a_run': (
        'snapshot', ['--logdir={tmp}/notes', '--once'],
        ['launch.snapshot: {tmp}/notes has no config.gin or run.json',
         '--logdir of a training run']),
    'probe_not_deepsea': (
        'probe_deepsea', ['--logdirs={tmp}/cartpole'],
        ["launch.probe_deepsea: The run trained on 'gym:CartPole-v1'",
         "'deepsea:<N>'"]),
    # Refused at once, not after the measurements.
    'benchmark_output_in_a_missing_directory': (
        'benchmark', ['--output={tmp}/missing/bench.json'],
        ['launch.benchmark: --output={tmp}/missing/bench.json: the directory',
         'does not exist; create it first']),
    'benchmark_output_is_a_directory': (
        'benchmark', ['--output={tmp}/notes'],
        ['launch.benchmark: --output={tmp}/notes: cannot write a file there',
         'name a writable file']),
}


def fill(text, tmp):
  return text.replace('{tmp}', str(tmp))


def assert_one_clear_message(proc, words):
  """Exit status != 0, no traceback, and `words` in stderr."""
  assert proc.returncode != 0, proc.stdout[-2000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-4000:]
  for word in words:
    assert word in proc.stderr, (word, proc.stderr[-2000:])


@pytest.fixture
def tmp(tmp_path):
  (tmp_path / 'file').write_text('not a directory\n')
  (tmp_path / 'notes').mkdir()
  (tmp_path / 'notes' / 'todo.txt').write_text('a file of the user\n')
  (tmp_path / 'cartpole').mkdir()  # A run directory of another env.
  (tmp_path / 'cartpole' / 'config.gin').write_text('')
  record.write(str(tmp_path / 'cartpole'), record.RunRecord(
      env='gym:CartPole-v1', env_kwargs={}, frames_per_step=1, seed=0))
  return tmp_path


@pytest.mark.parametrize('case', sorted(CASES))
def test_user_error_is_one_message_without_traceback(case, tmp):
  name, argv, words = CASES[case]
  proc = launch(name, *[fill(a, tmp) for a in argv])
  assert_one_clear_message(proc, [fill(w, tmp) for w in words])


def test_read_only_logdir_names_the_directory_and_does_not_hang(tmp_path):
  parent = read_only_dir(tmp_path)
  proc = launch('train', *TINY, f'--logdir={parent}/run')  # Has a timeout.
  assert_one_clear_message(proc, [f'{parent} is not writable',
                                  'Pass a --logdir'])


def test_unknown_env_id_names_it_and_how_to_list_them(tmp_path):
  proc = launch('train', *TINY, f'--logdir={tmp_path}/run',
                "--gin_param=train.env='gym:NoSuchEnv-v0'")
  assert_one_clear_message(proc, ["'NoSuchEnv-v0'", 'pprint_registry'])
  assert 'picklable' not in proc.stderr


def test_debug_shows_the_traceback(tmp):
  proc = launch('train', *TINY, f'--logdir={tmp}/file', '--debug')
  assert proc.returncode != 0
  assert 'Traceback' in proc.stderr
  assert 'UserError: --logdir=' in proc.stderr


# In-process: which errors are the user's.


def failing_main(error):
  """A launcher main that raises `error`, decorated."""

  @errors.exits_on_user_error('launch.test')
  def main(argv):
    del argv
    raise error

  return main


def test_user_errors_exit_with_the_launcher_name_and_message():
  for error, text in [
      (errors.UserError('--out is required.'), '--out is required.'),
      (checkpoint.CheckpointError('No checkpoint in x/ckpt.'),
       'No checkpoint in x/ckpt.'),
      (PermissionError(13, 'Permission denied', '/x/run.lock'),
       'Permission denied: /x/run.lock')]:
    with pytest.raises(SystemExit) as exit_info:
      failing_main(error)([])
    assert exit_info.value.code == f'launch.test: {text}'


def test_bugs_keep_their_traceback():
  # A ValueError outside `user_input` (e.g. a shape mismatch in the model)
  # and any other exception are not the user's.
  for error in (ValueError('Dimensions must be equal'), KeyError('deter'),
                OSError(5, 'Input/output error', '/x')):
    with pytest.raises(type(error)):
      failing_main(error)([])


@gin.configurable
def configurable_that_refuses(x=1):
  del x
  raise checkpoint.CheckpointError('The checkpoint belongs to seed 2.')


def test_gin_context_is_dropped_from_the_message():
  with pytest.raises(SystemExit) as exit_info:
    errors.exits_on_user_error('launch.test')(
        lambda argv: configurable_that_refuses())([])
  assert exit_info.value.code == (
      'launch.test: The checkpoint belongs to seed 2.')


def test_values_read_in_user_input_are_user_errors():
  def main(argv):
    del argv
    with errors.user_input():
      int('abc')

  with pytest.raises(SystemExit) as exit_info:
    errors.exits_on_user_error('launch.test')(main)([])
  assert exit_info.value.code == (
      "launch.test: invalid literal for int() with base 10: 'abc'")


def test_an_error_raised_while_handling_its_base_type_is_not_unwrapped():
  # Only gin's proxies are unwrapped, not a subclass (RunRecordError is a
  # ValueError) raised `from None` while a ValueError is handled.
  try:
    try:
      raise ValueError('inner')
    except ValueError:
      raise record.RunRecordError('outer') from None
  except record.RunRecordError as e:
    assert errors.unwrap(e) is e


@gin.configurable
def configurable_that_fails_reading(x=1):
  del x
  try:
    {}['deter']
  except KeyError as e:
    raise OSError(5, 'Input/output error', '/x') from e


def test_an_error_inside_a_configurable_keeps_its_cause():
  # gin's proxy would hide the KeyError: the original is re-raised.
  with pytest.raises(OSError) as info:
    errors.exits_on_user_error('launch.test')(
        lambda argv: configurable_that_fails_reading())([])
  assert isinstance(info.value.__cause__, KeyError)


CHILD = """
import os
import sys
from absl import app
from launch import errors

@errors.exits_on_user_error('launch.test')
def main(argv):
  del argv
  {body}

app.run(main)
"""
# Prints until its reader stops.
PRINTS_UNTIL_STOPPED = CHILD.format(body="""for i in range(10 ** 7):
    print(i)""")
# Prints ~20 KB at once (more than stdout's buffer, less than a pipe's),
# waits until its reader has gone (stdin's end), returns: the rest of the
# buffer is written after main.
PRINTS_THEN_RETURNS = CHILD.format(body="""print('\\n'.join(map(str, range(4000))))
  sys.stdin.read()""")
# Writes to a pipe of its own whose reader is gone; stdout is read.
BREAKS_ANOTHER_PIPE = CHILD.format(body="""reader, writer = os.pipe()
  os.close(reader)
  print('working', flush=True)
  os.write(writer, b'x')""")
CLOSED = 'launch.test: stopped: the reader of its standard output closed it.\n'


def child(script):
  """The running script, its stdio pipes; buffered stdout, as a user's
  Python has it (no PYTHONUNBUFFERED)."""
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONUNBUFFERED'}
  return subprocess.Popen(
      [sys.executable, '-c', script], cwd=ROOT, env=env, text=True,
      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize('script', [PRINTS_UNTIL_STOPPED,
                                    PRINTS_THEN_RETURNS],
                         ids=['in_main', 'in_the_buffer_after_main'])
def test_a_reader_that_stops_early_ends_the_launcher_with_one_line(script):
  # `python -m launch.tables ... | head`: no BrokenPipeError traceback,
  # neither from a print in main nor from the flush of what it left in
  # the buffer; status 141, as for a process that SIGPIPE ended.
  process = child(script)
  assert process.stdout.readline() == '0\n'
  process.stdout.close()
  stderr = process.communicate(timeout=TIMEOUT)[1]  # Closes stdin.
  assert (process.returncode, stderr) == (errors.CLOSED_STDOUT_STATUS,
                                          CLOSED)


def test_a_broken_pipe_other_than_stdout_keeps_its_traceback():
  # An env worker's pipe, say, while standard output is read.
  process = child(BREAKS_ANOTHER_PIPE)
  stdout, stderr = process.communicate(timeout=TIMEOUT)
  assert stdout == 'working\n' and process.returncode == 1
  assert 'Traceback' in stderr and 'BrokenPipeError' in stderr, stderr
  with pytest.raises(BrokenPipeError):  # Captured stdout is no pipe.
    failing_main(BrokenPipeError(32, 'Broken pipe'))([])
  assert not errors.stdout_reader_gone()
