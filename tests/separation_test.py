"""Separation backends on the demo corpus, scored against its true stems."""
import json
import pathlib
import subprocess
import sys

import librosa
import ml_collections
import numpy as np
import pytest
import soundfile
import tensorflow_datasets as tfds

from configs import common
from data_prep import demo_corpus
from data_prep import prepare
from data_prep import score_separation
from data_prep import separation
from data_prep import song
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import records


@pytest.fixture(scope='module')
def demo_songs(tmp_path_factory):
  """The first two songs of the demo corpus, full length (30 s): REPET-SIM needs
  a song long enough to repeat itself."""
  path = tmp_path_factory.mktemp('demo_songs')
  demo_corpus.build_corpus(path, num_songs=2, seconds=30.0, seed=0)
  return path


def test_dsp_improves_both_stems_over_the_mixture(demo_songs):
  corpus_dir = demo_songs
  improvements = {stem: [] for stem in score_separation.STEMS}
  for name in ('song_00', 'song_01'):
    mix, _ = soundfile.read(corpus_dir / 'songs' / f'{name}.wav', dtype='float32')
    references = {stem: soundfile.read(corpus_dir / 'stems' / name / f'{stem}.wav',
                                       dtype='float32')[0] for stem in score_separation.STEMS}
    vocals = separation.dsp_vocals(mix, separation.DspOptions())
    separated = score_separation.score(references, {'vocals': vocals, 'instrumental': mix - vocals})
    baseline = score_separation.score(references, {'vocals': mix, 'instrumental': mix})
    for stem in score_separation.STEMS:
      improvements[stem].append(separated[stem]['sdr'] - baseline[stem]['sdr'])
  print(f'dsp SDR improvement over the mixture, dB: {improvements}')
  assert np.mean(improvements['vocals']) > 6.0
  assert np.mean(improvements['instrumental']) > 0.5


def tone(frequencies_hz, seconds, rate=22050, vibrato_hz=0.0, harmonics=6):
  """A harmonic tone per row of `frequencies_hz` (one f0 per 0.5 s), summed."""
  t = np.arange(int(seconds * rate)) / rate
  total = np.zeros_like(t)
  for f0s in np.atleast_2d(frequencies_hz):
    f0 = np.repeat(f0s, int(np.ceil(len(t) / len(f0s))))[:len(t)]
    f0 = f0 * (1 + 0.02 * np.sin(2 * np.pi * vibrato_hz * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    total += sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
  return (total / np.abs(total).max()).astype(np.float32)


def panned_stereo_song(seconds=8.0, seed=0):
  """A sung-like centred tone over a changing chord panned hard left and right
  and a centred sub-bass: the answer is known by construction."""
  rng = np.random.default_rng(seed)
  steps = int(seconds * 2)
  voice = 0.5 * tone(rng.choice([196, 220, 247, 262, 294], steps), seconds, vibrato_hz=5.5)
  left = 0.5 * tone(rng.choice([330, 349, 392, 440], (2, steps)), seconds)
  right = 0.5 * tone(rng.choice([523, 587, 659], (2, steps)), seconds)
  bass = 0.5 * tone([[41.2] * steps], seconds, harmonics=1)  # Below the vocal band.
  instrumental_lr = np.stack([left + bass, right + bass])
  return voice, instrumental_lr


def test_dsp_takes_the_centred_voice_and_leaves_panned_and_bass_parts(tmp_path):
  voice, instrumental_lr = panned_stereo_song()
  stereo = voice[None] + instrumental_lr
  mix = stereo.mean(0)
  references = {'vocals': voice, 'instrumental': instrumental_lr.mean(0)}
  vocals = separation.dsp_vocals(stereo, separation.DspOptions())
  separated = score_separation.score(references, {'vocals': vocals, 'instrumental': mix - vocals})
  baseline = score_separation.score(references, {'vocals': mix, 'instrumental': mix})
  gains = {stem: separated[stem]['si_sdr'] - baseline[stem]['si_sdr']
           for stem in score_separation.STEMS}
  print(f'stereo dsp SI-SDR improvement, dB: {gains}')
  assert gains['vocals'] > 10.0 and gains['instrumental'] > 7.0  # No centre mask: 8.5, 6.0.
  # The centred sub-bass is out of the vocal band: almost none of it in the vocals.
  bass_bins = librosa.fft_frequencies(sr=22050, n_fft=2048) < 60
  vocal_spectrum = np.abs(librosa.stft(vocals, n_fft=2048))[bass_bins].sum()
  mix_spectrum = np.abs(librosa.stft(mix, n_fft=2048))[bass_bins].sum()
  assert vocal_spectrum < 0.01 * mix_spectrum

  # prepare hands a stereo file's two channels to the separator.
  songs = tmp_path / 'songs'
  songs.mkdir()
  soundfile.write(songs / 'panned.wav', stereo.T / 2, 22050)
  soundfile.write(songs / 'mono.wav', mix / 2, 22050)
  prepare.prepare(prepare.PrepareOptions(
      input_dir=str(songs), output_dir=str(tmp_path / 'out'), show_progress=False,
      song=song.SongOptions(separation=separation.SeparationOptions(
          backend='dsp', stems=('mix', 'vocals', 'instrumental')))))
  clean = tmp_path / 'out' / 'clean'
  from_stereo = score_separation.si_sdr(voice, soundfile.read(clean / 'panned.vocals.wav')[0])
  from_mono = score_separation.si_sdr(voice, soundfile.read(clean / 'mono.vocals.wav')[0])
  assert from_stereo > from_mono + 2.5  # Separated from the mono mix, they would be equal.


@pytest.fixture(scope='module')
def dsp_dataset(corpus_dir, tmp_path_factory):
  output = tmp_path_factory.mktemp('dsp')
  report = prepare.prepare(prepare.PrepareOptions(
      input_dir=str(corpus_dir / 'songs'), output_dir=str(output), show_progress=False,
      validation_fraction=0.25, song=song.SongOptions(
          segment_frames=64, separation=separation.SeparationOptions(
              backend='dsp', stems=('mix', 'vocals', 'instrumental')))))
  assert report['num_used'] == 4
  return output


def test_dataset_holds_the_asked_stems_and_the_pipeline_selects_them(dsp_dataset, corpus_dir):
  for name in ('song_00.wav', 'song_00.vocals.wav', 'song_00.instrumental.wav'):
    info = soundfile.info(dsp_dataset / 'clean' / name)
    assert (info.subtype, info.samplerate) == ('PCM_16', 22050)
  builder = tfds.builder_from_directory(str(records.dataset_path(dsp_dataset)))
  stems_by_source = {}
  for split in ('train', 'validation'):
    for example in tfds.as_numpy(builder.as_dataset(split=split)):
      stems_by_source.setdefault(example['source'], {}).setdefault(split, set()).add(
          example['stem'].decode())
  assert len(stems_by_source) == 4
  for splits in stems_by_source.values():
    assert len(splits) == 1  # Every stem of a song in one split.
    assert next(iter(splits.values())) == {'mix', 'vocals', 'instrumental'}
  stats = json.loads((dsp_dataset / 'stats.json').read_text())
  assert set(stats['stems']) == {'mix', 'vocals', 'instrumental'}
  # Vocals are quieter than the mix in most bands: their own normalization.
  assert np.mean(stats['stems']['vocals']['log_mel_mean']) < np.mean(
      stats['stems']['mix']['log_mel_mean'])

  data = common.data_config()
  data.dataset_dir, data.crop_frames, data.shuffle_buffer = str(dsp_dataset), 32, 32
  data.stems = ('vocals', 'instrumental')
  meta = input_pipeline.load_dataset_meta(data.dataset_dir)
  input_pipeline.check_data_config(data, meta)
  batch = next(input_pipeline.train_batches(data, meta, 24, seed=0))
  assert set(batch['stem'].tolist()) == {0, 1}
  # In device memory, the mixes left out: the same records in the same order, the same crops.
  table = input_pipeline.load_train_table(data, meta)
  assert len(table.mel) == meta.num_records('train', data.stems) < len(table.record_row)
  positions = next(input_pipeline.train_positions(data, meta, table, 24, seed=0))
  np.testing.assert_array_equal(positions['stem'], batch['stem'])
  np.testing.assert_array_equal(
      np.stack([table.mel[row, start:start + 32]
                for row, start in zip(positions['row'], positions['start'])]), batch['mel'])
  only_vocals = ml_collections.ConfigDict(data.to_dict())
  only_vocals.stems = ('vocals',)
  batches = input_pipeline.sequential_batches(only_vocals, meta, 'validation', 8)
  assert sum(b['weight'].sum() for b in batches) == meta.num_records('validation', ('vocals',)) * 2


def write_song_with_stems(corpus_dir, name, mix_path, stem_paths):
  mix, rate = soundfile.read(corpus_dir / 'songs' / f'{name}.wav', dtype='float32')
  vocals, _ = soundfile.read(corpus_dir / 'stems' / name / 'vocals.wav', dtype='float32')
  instrumental, _ = soundfile.read(corpus_dir / 'stems' / name / 'instrumental.wav',
                                   dtype='float32')
  mix_path.parent.mkdir(parents=True, exist_ok=True)
  soundfile.write(mix_path, mix, rate)
  parts = {'vocals': vocals, 'instrumental': instrumental, 'drums': 0.5 * instrumental,
           'bass': 0.25 * instrumental, 'other': 0.25 * instrumental}
  for stem, path in stem_paths.items():
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, parts[stem], rate)


def test_stems_backend_reads_uvr_demucs_and_simple_names(corpus_dir, tmp_path):
  songs = tmp_path / 'songs'
  write_song_with_stems(corpus_dir, 'song_00', songs / 'Alpha.wav', {
      'vocals': songs / '1_Alpha_(Vocals).wav', 'instrumental': songs / '1_Alpha_(Instrumental).wav'})
  write_song_with_stems(corpus_dir, 'song_01', songs / 'Beta.flac', {
      stem: songs / 'htdemucs' / 'Beta' / f'{stem}.wav'
      for stem in ('vocals', 'drums', 'bass', 'other')})
  write_song_with_stems(corpus_dir, 'song_02', songs / 'album' / 'Gamma.wav', {
      'vocals': songs / 'album' / 'Gamma.vocals.wav',
      'instrumental': songs / 'album' / 'Gamma.instrumental.wav'})
  write_song_with_stems(corpus_dir, 'song_03', songs / 'Delta.wav',
                        {'vocals': songs / 'Delta.vocals.wav'})  # No instrumental.
  output = tmp_path / 'out'
  report = prepare.prepare(prepare.PrepareOptions(
      input_dir=str(songs), output_dir=str(output), show_progress=False, num_workers=2,
      validation_fraction=0.3, song=song.SongOptions(
          segment_frames=64, separation=separation.SeparationOptions(
              backend='stems', stems=('mix', 'vocals', 'instrumental')))))
  outcomes = {o['source']: o for o in report['files']}
  assert set(outcomes) == {'Alpha.wav', 'Beta.flac', 'album/Gamma.wav', 'Delta.wav'}
  for source in ('Alpha.wav', 'Beta.flac', 'album/Gamma.wav'):
    assert outcomes[source]['status'] == 'used'
    assert outcomes[source]['stems'] == ['instrumental', 'mix', 'vocals']
  assert outcomes['Delta.wav']['status'] == 'skipped'
  assert 'no instrumental stem found' in outcomes['Delta.wav']['reason']
  # The stems got the mix's cleaning: they still add up to it.
  clean = output / 'clean' / 'album'
  mix = soundfile.read(clean / 'Gamma.wav')[0]
  total = soundfile.read(clean / 'Gamma.vocals.wav')[0] + soundfile.read(
      clean / 'Gamma.instrumental.wav')[0]
  assert np.abs(mix - total).max() < 3e-4
  demucs = soundfile.read(output / 'clean' / 'Beta.instrumental.wav')[0]
  mix_beta = soundfile.read(output / 'clean' / 'Beta.wav')[0]
  vocals_beta = soundfile.read(output / 'clean' / 'Beta.vocals.wav')[0]
  assert np.abs(mix_beta - demucs - vocals_beta).max() < 3e-4  # drums+bass+other summed.
  stats = json.loads((output / 'stats.json').read_text())
  assert set(stats['splits'].values()) == {'train', 'validation'}


def test_uvr_offline_without_model_or_without_package_fails_before_work(
    corpus_dir, tmp_path, monkeypatch):
  def uvr(model_dir):
    return separation.SeparationOptions(backend='uvr', stems=('mix', 'vocals'),
                                        uvr_model_dir=str(model_dir))
  monkeypatch.setattr(separation, 'model_host_reachable', lambda: False)  # Offline.
  with pytest.raises(ValueError, match=r'--uvr_model=UVR-MDX-NET-Inst_HQ_3.onnx not found in '
                     r'--uvr_model_dir=.* cannot be downloaded'):
    separation.check_options(uvr(tmp_path))
  # With network, a missing model is left for audio-separator to download.
  monkeypatch.setattr(separation, 'model_host_reachable', lambda: True)
  with pytest.raises(ValueError, match=r'needs the audio-separator package: pip install'):
    separation.check_options(uvr(tmp_path))
  monkeypatch.setattr(separation, 'model_host_reachable', lambda: False)
  (tmp_path / 'UVR-MDX-NET-Inst_HQ_3.onnx').write_bytes(b'weights')
  with pytest.raises(ValueError, match=r'needs the audio-separator package: pip install'):
    separation.check_options(uvr(tmp_path))
  result = subprocess.run(
      [sys.executable, '-m', 'data_prep.prepare', f'--input_dir={corpus_dir / "songs"}',
       f'--output_dir={tmp_path / "out"}', '--separation=uvr', '--stems=mix,vocals',
       f'--uvr_model_dir={tmp_path}'],
      capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith(
      'prepare: --separation=uvr needs the audio-separator package')
  assert not (tmp_path / 'out').exists()
  with pytest.raises(ValueError, match='without separation only "mix" exists'):
    separation.check_options(separation.SeparationOptions(stems=('mix', 'vocals')))


def test_score_separation_cli(demo_songs, tmp_path):
  prepare.prepare(prepare.PrepareOptions(
      input_dir=str(demo_songs / 'songs'), output_dir=str(tmp_path), show_progress=False,
      song=song.SongOptions(separation=separation.SeparationOptions(
          backend='dsp', stems=('mix', 'vocals', 'instrumental')))))
  result = subprocess.run(
      [sys.executable, '-m', 'data_prep.score_separation',
       f'--reference_dir={demo_songs / "stems"}', f'--estimate_dir={tmp_path / "clean"}'],
      capture_output=True, text=True, timeout=300, check=True)
  mean = json.loads(result.stdout.strip().splitlines()[-1])
  assert mean['vocals']['sdr_improvement'] > 6 and mean['instrumental']['sdr_improvement'] > 0.5
  assert mean['vocals']['si_sdr_improvement'] > 3
  assert all(np.isfinite(v) for row in mean.values() for v in row.values())


def stems_options(input_dir, output_dir, stems_dir=''):
  return prepare.PrepareOptions(
      input_dir=str(input_dir), output_dir=str(output_dir), song=song.SongOptions(
          separation=separation.SeparationOptions(
              backend='stems', stems=('mix', 'vocals', 'instrumental'), stems_dir=stems_dir)))


def touch(folder, *names):
  for name in names:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b'')


def test_stems_are_matched_by_relative_path(tmp_path):
  songs = tmp_path / 'songs'
  touch(songs, 'a/Song.wav', 'a/Song.vocals.wav', 'a/Song.instrumental.wav',
        'b/Song.wav', 'b/1_Song_(Vocals).wav', 'b/1_Song_(Instrumental).wav',
        'c/Song.flac', 'c/htdemucs/Song/vocals.wav', 'c/htdemucs/Song/no_vocals.wav',
        'Song.wav', 'htdemucs/Song/vocals.wav', 'htdemucs/Song/no_vocals.wav',
        'd/Other.wav')
  tasks = prepare.make_tasks(stems_options(songs, tmp_path / 'out'))
  stem_files = {task.source: {stem: [str(pathlib.Path(p).relative_to(songs)) for p in paths]
                              for stem, paths in task.stem_files.items()} for task in tasks}
  assert stem_files == {
      'a/Song.wav': {'vocals': ['a/Song.vocals.wav'], 'instrumental': ['a/Song.instrumental.wav']},
      'b/Song.wav': {'vocals': ['b/1_Song_(Vocals).wav'],
                     'instrumental': ['b/1_Song_(Instrumental).wav']},
      'c/Song.flac': {'vocals': ['c/htdemucs/Song/vocals.wav'],
                      'instrumental': ['c/htdemucs/Song/no_vocals.wav']},
      'Song.wav': {'vocals': ['htdemucs/Song/vocals.wav'],
                   'instrumental': ['htdemucs/Song/no_vocals.wav']},
      'd/Other.wav': {},
  }


def test_a_flat_stems_folder_matches_unambiguous_names_only(tmp_path):
  songs, stems = tmp_path / 'songs', tmp_path / 'uvr_output'
  touch(songs, 'album/Unique.wav', 'x/Twice.wav', 'y/Twice.wav')
  touch(stems, '1_Unique_(Vocals).wav', '1_Unique_(Instrumental).wav',
        '2_Twice_(Vocals).wav', '2_Twice_(Instrumental).wav')
  tasks = prepare.make_tasks(stems_options(songs, tmp_path / 'out', str(stems)))
  stem_files = {task.source: task.stem_files for task in tasks}
  assert stem_files['album/Unique.wav'] == {
      'vocals': (str(stems / '1_Unique_(Vocals).wav'),),
      'instrumental': (str(stems / '1_Unique_(Instrumental).wav'),)}
  # Two songs named Twice, one set of stems: whose they are is not guessed.
  assert stem_files['x/Twice.wav'] == stem_files['y/Twice.wav'] == {}
