"""data_prep.prepare end to end: the data set, bad inputs, resume after kill -9."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyloudnorm
import pytest
import soundfile
import tensorflow_datasets as tfds

from data_prep import cleaning
from data_prep import prepare
from data_prep import shards
from data_prep import workers
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.audio import loudness
from melodygan_jax.data import records

PREPARE_FLAGS = ['--segment_frames=64', '--validation_fraction=0.25']
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_cli(*args, **kwargs):
  return subprocess.Popen([sys.executable, '-m', 'data_prep.prepare', *args], cwd=REPO_ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def shard_bytes(output_dir):
  folder = records.dataset_path(output_dir)
  return {p.name: p.read_bytes() for p in sorted(folder.glob('*.tfrecord-*'))}


def test_tfds_opens_the_data_set(prepared_dir):
  builder = tfds.builder_from_directory(str(records.dataset_path(prepared_dir)))
  train = builder.info.splits['train'].num_examples
  validation = builder.info.splits['validation'].num_examples
  assert train > 0 and validation > 0
  example = next(iter(tfds.as_numpy(builder.as_dataset(split='validation'))))
  assert example['mel'].shape == (64, contract.NUM_MELS) and example['mel'].dtype == np.float32
  assert example['mfcc'].shape == (64, 20)
  assert example['stem'] == b'mix'
  assert example['source'].decode().startswith('song_')
  assert example['start_s'] >= 0.0
  assert np.isfinite(example['mel']).all()


def test_splits_are_disjoint_by_source(prepared_dir):
  builder = tfds.builder_from_directory(str(records.dataset_path(prepared_dir)))
  sources = {split: {ex['source'] for ex in tfds.as_numpy(builder.as_dataset(split=split))}
             for split in ('train', 'validation')}
  assert sources['train'] and sources['validation']
  assert not sources['train'] & sources['validation']
  stats = json.loads((prepared_dir / 'stats.json').read_text())
  for split, names in sources.items():
    assert {stats['splits'][name.decode()] for name in names} == {split}


def test_stats_are_the_train_split_statistics(prepared_dir):
  builder = tfds.builder_from_directory(str(records.dataset_path(prepared_dir)))
  mels = np.concatenate([ex['mel'] for ex in tfds.as_numpy(builder.as_dataset(split='train'))])
  stats = json.loads((prepared_dir / 'stats.json').read_text())['stems']['mix']
  np.testing.assert_allclose(stats['log_mel_mean'], mels.mean(0), atol=1e-4)
  np.testing.assert_allclose(stats['log_mel_std'], mels.std(0), rtol=1e-3, atol=1e-4)
  assert stats['num_frames'] == len(mels)


def test_clean_wavs_are_normalized_16_bit_mono(prepared_dir):
  report = json.loads((prepared_dir / 'report.json').read_text())
  meter = pyloudnorm.Meter(22050)
  for outcome in report['files']:
    path = prepared_dir / 'clean' / outcome['source']
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, 'PCM_16')
    samples, _ = soundfile.read(path)
    lufs = meter.integrated_loudness(samples)
    # At the target, or below it where the true-peak ceiling (-1 dBTP) held the gain back.
    if abs(lufs - (-18.0)) > 0.1:
      assert lufs < -18.0
      assert abs(loudness.true_peak_dbtp(samples.astype(np.float32)) - (-1.0)) < 0.05
    assert abs(info.duration - outcome['clean_duration_s']) < 1e-3


def test_validation_split_is_stable_per_source():
  sources = [f'album/song_{i}.flac' for i in range(200)]
  splits = shards.assign_splits(sources, 0.2)
  assert 20 < list(splits.values()).count('validation') < 60
  # Adding songs never moves an existing one.
  more = shards.assign_splits(sources + ['new/one.mp3', 'new/two.mp3'], 0.2)
  assert all(more[s] == splits[s] for s in sources)
  assert list(shards.assign_splits(['a.wav', 'b.wav'], 0.01).values()).count('validation') == 1


@pytest.fixture(scope='module')
def messy_dir(tmp_path_factory, corpus_dir):
  """One good song in three formats among every kind of bad file."""
  folder = tmp_path_factory.mktemp('messy')
  good = corpus_dir / 'songs' / 'song_00.wav'
  samples, rate = soundfile.read(good, dtype='float32')
  stereo_48k = np.stack([samples, samples], 1)
  (folder / 'album').mkdir()
  soundfile.write(folder / 'album' / 'stereo.wav', audio_io.resample(samples, rate, 48000)
                  [:, None].repeat(2, 1), 48000, subtype='PCM_24')
  subprocess.run([audio_io.ffmpeg_executable(), '-v', 'error', '-i', str(good), '-c:a', 'aac',
                  str(folder / 'album' / 'song.m4a')], check=True)
  soundfile.write(folder / 'song.ogg', stereo_48k, rate, format='OGG', subtype='VORBIS')
  soundfile.write(folder / 'short.wav', samples[:2205], rate)
  soundfile.write(folder / 'silence.wav', np.zeros(rate * 5, np.float32), rate)
  soundfile.write(folder / 'nan.wav', np.full(rate * 5, np.nan, np.float32), rate,
                  subtype='FLOAT')
  (folder / 'random.wav').write_bytes(np.random.default_rng(0).bytes(20000))
  (folder / 'notes.txt').write_text('not audio\n')
  (folder / 'empty.mp3').write_bytes(b'')
  whole = good.read_bytes()
  (folder / 'cut.wav').write_bytes(whole[:len(whole) // 3])
  (folder / 'gone.ogg').symlink_to(folder / 'moved away.ogg')  # A dangling link.
  return folder


EXPECTED_REASONS = {
    'short.wav': 'too short',
    'silence.wav': 'silent',
    'nan.wav': 'NaN',
    'random.wav': 'not a readable audio file',
    'notes.txt': 'not a readable audio file',
    'empty.mp3': 'empty file',
    'cut.wav': 'truncated',
    'gone.ogg': 'a broken symbolic link',
}


def test_bad_files_are_skipped_and_reported(messy_dir, tmp_path):
  options = prepare.PrepareOptions(
      input_dir=str(messy_dir), output_dir=str(tmp_path), num_workers=2, show_progress=False,
      song=prepare.song_lib.SongOptions(segment_frames=64))
  report = prepare.prepare(options)
  outcomes = {o['source']: o for o in report['files']}
  assert {s for s, o in outcomes.items() if o['status'] == 'used'} == {
      'album/stereo.wav', 'album/song.m4a', 'song.ogg'}
  for name, fragment in EXPECTED_REASONS.items():
    assert outcomes[name]['status'] == 'skipped'
    assert fragment in outcomes[name]['reason'] and '\n' not in outcomes[name]['reason']
  assert outcomes['album/stereo.wav']['sample_rate_hz'] == 48000
  assert outcomes['album/stereo.wav']['channels'] == 2
  # Sub-folders are mirrored; every used file has its clean WAV.
  assert (tmp_path / 'clean' / 'album' / 'stereo.wav').exists()
  assert (tmp_path / 'clean' / 'album' / 'song.wav').exists()
  stats = json.loads((tmp_path / 'stats.json').read_text())
  assert all(np.isfinite(stats['stems']['mix']['log_mel_mean']))


def test_cli_exit_status_and_one_line_errors(messy_dir, tmp_path):
  only_bad = tmp_path / 'bad'
  only_bad.mkdir()
  for name in EXPECTED_REASONS:
    shutil.copy(messy_dir / name, only_bad / name, follow_symlinks=False)
  result = run_cli(f'--input_dir={only_bad}', f'--output_dir={tmp_path / "out"}',
                   '--num_workers=1')
  stdout, stderr = result.communicate(timeout=120)
  assert result.returncode != 0
  assert '0 files used' in stdout and f'{len(EXPECTED_REASONS)} skipped' in stdout
  assert 'no usable audio' in stderr
  report = json.loads((tmp_path / 'out' / 'report.json').read_text())
  assert report['num_skipped'] == len(EXPECTED_REASONS)

  result = run_cli(f'--input_dir={tmp_path / "missing"}', f'--output_dir={tmp_path / "o"}')
  _, stderr = result.communicate(timeout=60)
  assert result.returncode != 0
  assert stderr.strip().splitlines()[-1] == (
      f'prepare: --input_dir={tmp_path / "missing"}: no such folder')
  result = run_cli(f'--input_dir={only_bad}', f'--output_dir={tmp_path / "o"}',
                   '--separation=magic')
  _, stderr = result.communicate(timeout=60)
  assert result.returncode != 0 and '--separation' in stderr
  result = run_cli(f'--input_dir={only_bad}', f'--output_dir={tmp_path / "o"}',
                   '--highpass_hz=2000')
  _, stderr = result.communicate(timeout=60)
  assert result.returncode != 0
  assert stderr.strip().splitlines()[-1].startswith('prepare: --highpass_hz=2000.0: must be in')
  assert not (tmp_path / 'o').exists()


def kill_when_finished(process, output_dir, num_finished):
  """Kills the whole run (parent and workers, as kill -9 of the job would) once
  `num_finished` files are done; returns how many were done."""
  work_dir = output_dir / 'work'
  deadline = time.time() + 120
  while len(list(work_dir.glob('*.json'))) < num_finished and time.time() < deadline:
    time.sleep(0.005)
  assert process.poll() is None, 'prepare finished before it could be killed'
  os.killpg(process.pid, signal.SIGKILL)
  process.wait()
  time.sleep(0.2)  # Let the killed workers' exits settle before counting.
  return len(list(work_dir.glob('*.json')))


@pytest.mark.end_to_end
def test_kill_9_at_several_points_and_resume_gives_identical_shards(
    corpus_dir, prepared_dir, tmp_path):
  """Every file is processed in the same numeric environment (single-threaded
  BLAS in a worker), whether workers are 1 or 2 and however many files are left."""
  output_dir = tmp_path / 'resumed'
  args = [f'--input_dir={corpus_dir / "songs"}', f'--output_dir={output_dir}', *PREPARE_FLAGS]
  assert 1 <= kill_when_finished(run_cli(*args, '--num_workers=1', start_new_session=True),
                                 output_dir, 1) < 3
  # Two workers can finish the 3rd and the 4th file between two polls: then the kill
  # lands while the data set is being written, another point a run can die at.
  assert 3 <= kill_when_finished(run_cli(*args, '--num_workers=2', start_new_session=True),
                                 output_dir, 3) <= 4
  assert not (output_dir / 'stats.json').exists()

  process = run_cli(*args, '--num_workers=2')  # The file left, if any, and the data set.
  stdout, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr
  assert '4 files used' in stdout
  resumed, uninterrupted = shard_bytes(output_dir), shard_bytes(prepared_dir)
  assert resumed.keys() == uninterrupted.keys() and resumed
  for name in resumed:
    assert resumed[name] == uninterrupted[name], name
  assert json.loads((output_dir / 'stats.json').read_text()) == json.loads(
      (prepared_dir / 'stats.json').read_text())
  assert not [p for p in output_dir.rglob('*') if '.tmp' in p.name]


@pytest.mark.multiprocess
def test_a_dead_worker_loses_no_file(corpus_dir, tmp_path):
  executor = workers.make_executor(2)
  victim = next(iter(executor._processes.values()))  # pylint: disable=protected-access
  os.kill(victim.pid, signal.SIGKILL)  # As the OOM killer would.
  victim.join()
  report = prepare.prepare(prepare.PrepareOptions(
      input_dir=str(corpus_dir / 'songs'), output_dir=str(tmp_path), show_progress=False,
      song=prepare.song_lib.SongOptions(segment_frames=64)), executor=executor)
  executor.shutdown()
  assert report['num_used'] == 4 and report['num_skipped'] == 0


def test_symlinked_folders_are_followed_and_each_file_used_once(tmp_path):
  input_dir, elsewhere = tmp_path / 'songs', tmp_path / 'elsewhere'
  (input_dir / 'album').mkdir(parents=True)
  (elsewhere / 'live').mkdir(parents=True)
  (input_dir / 'album' / 'a.wav').write_bytes(b'a')
  (elsewhere / 'live' / 'b.wav').write_bytes(b'b')
  (input_dir / 'linked').symlink_to(elsewhere)                     # A folder kept elsewhere.
  (input_dir / 'again').symlink_to(input_dir / 'album')            # The same folder twice.
  (input_dir / 'album' / 'loop').symlink_to(input_dir)             # A cycle.
  (elsewhere / 'live' / 'up').symlink_to(elsewhere)                # A cycle in the linked tree.
  (input_dir / 'alias.wav').symlink_to(input_dir / 'album' / 'a.wav')  # A file twice.
  os.link(input_dir / 'album' / 'a.wav', input_dir / 'album' / 'z.wav')  # A hard link.
  (input_dir / 'gone.wav').symlink_to(tmp_path / 'deleted.wav')    # A broken link: reported.
  tasks = prepare.make_tasks(prepare.PrepareOptions(
      input_dir=str(input_dir), output_dir=str(tmp_path / 'out')))
  assert sorted(task.source for task in tasks) == ['album/a.wav', 'gone.wav', 'linked/live/b.wav']
  outcome = prepare.song_lib.process_song(next(t for t in tasks if t.source == 'gone.wav'))
  assert outcome['status'] == 'skipped' and 'broken symbolic link' in outcome['reason']


def test_a_dc_offset_never_reaches_the_clean_wav(tmp_path):
  """Real soundtracks carry offsets of up to 0.3: the worker removes them before cleaning."""
  input_dir = tmp_path / 'songs'
  input_dir.mkdir()
  t = np.arange(4 * 48_000) / 48_000
  tone = 0.3 * np.sin(2 * np.pi * 220.0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
  soundfile.write(input_dir / 'offset.wav', np.stack([tone + 0.25, tone + 0.2], 1), 48_000)
  means = {}
  for highpass_hz in (20.0, 0.0):
    options = prepare.PrepareOptions(
        input_dir=str(input_dir), output_dir=str(tmp_path / f'out_{highpass_hz:g}'),
        song=prepare.song_lib.SongOptions(
            segment_frames=64, cleaning=cleaning.CleaningOptions(highpass_hz=highpass_hz)))
    task, = prepare.make_tasks(options)
    assert prepare.song_lib.process_song(task)['status'] == 'used'
    clean, _ = soundfile.read(task.clean_path)
    means[highpass_hz] = clean.mean()
  assert abs(means[20.0]) < 1e-3 and means[0.0] > 0.05, means
