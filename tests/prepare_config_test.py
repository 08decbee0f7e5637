"""prepare's settings as a config: old flags and --config. overrides alike, kept in the data set."""
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys

from absl import flags
import pytest

from configs import prepare as prepare_config_file
from data_prep import cleaning
from data_prep import prepare
from data_prep import prepare_config
from data_prep import separation
from melodygan_jax.data import records

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def parse(*args: str, config_file: str = prepare.DEFAULT_CONFIG):
  """The resolved config of a command line, parsed by prepare's own flags."""
  argv = ['prepare', f'--config={config_file}', *args]
  flag_values = flags.FlagValues()
  prepare.define_flags(flag_values, argv)
  flag_values(argv)
  return prepare.config_from_flags(flag_values), flag_values


def run_cli(*args):
  return subprocess.run([sys.executable, '-m', 'data_prep.prepare', *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=300, check=False)


def test_the_config_file_holds_the_options_defaults():
  config = prepare_config_file.get_config()
  assert set(config.cleaning) == {f.name for f in dataclasses.fields(cleaning.CleaningOptions)}
  assert set(config.separation.dsp) == {f.name for f in dataclasses.fields(separation.DspOptions)}
  config.input_dir, config.output_dir = 'in', 'out'
  assert prepare.options_from_config(config) == prepare.PrepareOptions(
      input_dir='in', output_dir='out', num_workers=os.cpu_count())


def changed_value(flag: flags.Flag, field_default):
  """A value other than the config's default, as the flag and the override write it."""
  if flag.name == 'separation':
    return 'dsp', 'dsp'
  if flag.name == 'stems':
    return 'mix,vocals', 'mix,vocals'
  if isinstance(field_default, bool):
    return None, str(not field_default)  # None: --noFLAG / --FLAG.
  if isinstance(field_default, (int, float)):
    return str(field_default + 3), str(field_default + 3)
  return 'elsewhere', 'elsewhere'


def test_each_old_flag_sets_the_field_its_override_sets():
  default, flag_values = parse()
  own_flags = {flag.name for flag in flag_values.get_flags_for_module(prepare.__name__)}
  assert own_flags - {'config'} == set(prepare_config.FLAG_FIELDS)
  for flag_name, field in prepare_config.FLAG_FIELDS.items():
    field_default = prepare_config.get_field(default, field)
    flag_value, override_value = changed_value(flag_values[flag_name], field_default)
    if flag_value is None:
      flag_arg = f'--{flag_name}' if not field_default else f'--no{flag_name}'
    else:
      flag_arg = f'--{flag_name}={flag_value}'
    from_flag, _ = parse(flag_arg)
    from_override, _ = parse(f'--config.{field}={override_value}')
    assert from_flag.to_dict() == from_override.to_dict(), flag_name
    assert prepare_config.get_field(from_flag, field) != field_default, flag_name
  assert parse('--stems=mix,vocals')[0].separation.stems == ('mix', 'vocals')


def test_a_flag_given_wins_over_the_config_file_and_an_absent_one_does_not(tmp_path):
  config_file = tmp_path / 'loud.py'
  config_file.write_text('from configs import prepare\n\n\ndef get_config():\n'
                         '  config = prepare.get_config()\n'
                         '  config.cleaning.target_lufs = -14.0\n'
                         '  return config\n')
  assert parse(config_file=str(config_file))[0].cleaning.target_lufs == -14.0
  assert parse('--target_lufs=-20', config_file=str(config_file))[0].cleaning.target_lufs == -20
  with pytest.raises(ValueError, match=r'^--target_lufs=-20.0 and --config.cleaning.target_lufs'
                     r'=-16.0 disagree: pass one of them$'):
    parse('--target_lufs=-20', '--config.cleaning.target_lufs=-16')


def test_bad_values_fail_before_any_work_in_one_line(tmp_path):
  songs = tmp_path / 'songs'
  songs.mkdir()
  out = tmp_path / 'out'
  for args, message in [
      (['--config.cleaning.noise_reduction=1.5'],
       'prepare: --config.cleaning.noise_reduction=1.5: must be in [0, 1]'),
      (['--noise_reduction=1.5'], 'prepare: --noise_reduction=1.5: must be in [0, 1]'),
      (['--config.dataset.segment_frames=4'],
       'prepare: --config.dataset.segment_frames=4: must be at least 16'),
      (['--config.cleaning.highpas_hz=30'],
       'prepare: --config.cleaning.highpas_hz: no such config field (did you mean highpass_hz?)'),
      (['--segment_frames=64', '--config.dataset.segment_frames=32'],
       'prepare: --segment_frames=64 and --config.dataset.segment_frames=32 disagree: '
       'pass one of them'),
  ]:
    result = run_cli(f'--input_dir={songs}', f'--output_dir={out}', *args)
    assert result.returncode != 0, args
    assert result.stderr.strip().splitlines() == [message], result.stderr
  assert not out.exists()


@pytest.fixture(scope='module')
def cli_prepared(corpus_dir, tmp_path_factory):
  """One demo song prepared from the command line with old flags and overrides mixed."""
  songs = tmp_path_factory.mktemp('one_song')
  shutil.copy(corpus_dir / 'songs' / 'song_00.wav', songs / 'song_00.wav')
  out = tmp_path_factory.mktemp('cli_prepared')
  result = run_cli(f'--input_dir={songs}', f'--output_dir={out}', '--num_workers=1',
                   '--config.dataset.segment_frames=32', '--highpass_hz=30',
                   '--config.cleaning.target_lufs=-20', '--config.run.show_progress=False')
  assert result.returncode == 0, result.stderr
  return songs, out


def test_the_data_set_holds_the_settings_it_was_made_with(cli_prepared):
  songs, out = cli_prepared
  settings = json.loads((out / prepare_config.FILENAME).read_text())
  config = prepare_config_file.get_config()
  config.input_dir, config.output_dir = str(songs), str(out)
  config.dataset.segment_frames = 32
  config.cleaning.highpass_hz = 30.0
  config.cleaning.target_lufs = -20.0
  config.run.num_workers = 1
  config.run.show_progress = False
  assert settings == json.loads(json.dumps(config.to_dict()))
  assert (out / records.STATS_FILENAME).exists()


def test_a_rerun_that_changes_the_features_is_refused(cli_prepared):
  songs, out = cli_prepared
  before = (out / prepare_config.FILENAME).read_text()
  result = run_cli(f'--input_dir={songs}', f'--output_dir={out}', '--segment_frames=64',
                   '--config.dataset.segment_frames=64', '--highpass_hz=30',
                   '--config.cleaning.target_lufs=-20')
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [
      f'prepare: --segment_frames=64: {out} holds a data set made with '
      f'dataset.segment_frames=32 ({prepare_config.FILENAME}); keep the setting, or write '
      'to another --output_dir']
  result = run_cli(f'--input_dir={songs}', f'--output_dir={out}',
                   '--config.dataset.segment_frames=32', '--config.separation.backend=dsp',
                   '--config.separation.stems=mix,vocals', '--highpass_hz=30',
                   '--config.cleaning.target_lufs=-20')
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith(
      f'prepare: --config.separation.backend=dsp: {out} holds a data set made with '
      'separation.backend=none (and 1 more setting(s))')
  assert (out / prepare_config.FILENAME).read_text() == before


def test_workers_and_runner_may_change_and_old_data_sets_are_accepted(cli_prepared, tmp_path):
  songs, out = cli_prepared
  copy = tmp_path / 'copy'
  shutil.copytree(out, copy)
  shards = {p.name: p.read_bytes() for p in records.dataset_path(copy).glob('*.tfrecord-*')}
  config = prepare_config_file.get_config()
  config.input_dir, config.output_dir = str(songs), str(copy)
  config.dataset.segment_frames = 32
  config.cleaning.highpass_hz = 30.0
  config.cleaning.target_lufs = -20.0
  config.run.num_workers = 2
  config.run.show_progress = False
  options = prepare.options_from_config(config)
  assert prepare.prepare(options)['run']['files_reused'] == 1
  assert json.loads((copy / prepare_config.FILENAME).read_text())['run']['num_workers'] == 2
  assert {p.name: p.read_bytes()
          for p in records.dataset_path(copy).glob('*.tfrecord-*')} == shards
  # A data set made before prepare_config.json existed: any settings, and the file is written.
  (copy / prepare_config.FILENAME).unlink()
  options = dataclasses.replace(options, shard_size_mb=64.0)
  prepare.check_options(options)
  prepare.prepare(options)
  assert json.loads((copy / prepare_config.FILENAME).read_text())['dataset'][
      'shard_size_mb'] == 64.0
