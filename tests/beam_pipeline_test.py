"""prepare as an Apache Beam pipeline (DirectRunner) writes the local path's data set."""
import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from data_prep import prepare
from melodygan_jax.data import records

pytest.importorskip('apache_beam')

BAD_FILES = {'notes.txt': 'not a readable audio file', 'cut.wav': 'truncated'}


def read_records(output_dir):
  """Every record of every split, as comparable tuples sorted by source, stem and start."""
  found = []
  for path in sorted(records.dataset_path(output_dir).glob('*.tfrecord-*')):
    split = path.name.split('-')[1].split('.')[0]
    for serialized in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
      example = tf.train.Example.FromString(serialized).features.feature
      found.append((example['source'].bytes_list.value[0].decode(),
                    example['stem'].bytes_list.value[0].decode(),
                    round(example['start_s'].float_list.value[0], 4), split,
                    example['mel'].bytes_list.value[0], example['mfcc'].bytes_list.value[0]))
  return sorted(found)


@pytest.fixture(scope='module')
def beam_run(corpus_dir, tmp_path_factory):
  """The demo songs plus two bad files, prepared on the DirectRunner."""
  input_dir = tmp_path_factory.mktemp('beam_in')
  for song in (corpus_dir / 'songs').glob('*.wav'):
    shutil.copy(song, input_dir / song.name)
  (input_dir / 'notes.txt').write_text('not audio\n')
  whole = (corpus_dir / 'songs' / 'song_00.wav').read_bytes()
  (input_dir / 'cut.wav').write_bytes(whole[:len(whole) // 3])
  output_dir = tmp_path_factory.mktemp('beam_out')
  options = prepare.PrepareOptions(
      input_dir=str(input_dir), output_dir=str(output_dir), runner='direct',
      song=prepare.song_lib.SongOptions(segment_frames=64), validation_fraction=0.25,
      show_progress=False)
  return options, prepare.prepare(options)


def test_beam_writes_the_records_and_stats_of_the_local_path(beam_run, prepared_dir):
  options, report = beam_run
  local, beam = read_records(prepared_dir), read_records(options.output_dir)
  assert beam and len(beam) == len(local)
  assert beam == local  # Same sources, stems, starts, splits and feature bytes.
  # In the same order too: each shard file is the local one, byte for byte.
  shard_files = lambda folder: {path.name: path.read_bytes() for path in
                                records.dataset_path(folder).glob('*.tfrecord-*')}
  assert shard_files(options.output_dir) == shard_files(prepared_dir)
  local_stats = json.loads((prepared_dir / 'stats.json').read_text())
  beam_stats = json.loads((pathlib.Path(options.output_dir) / 'stats.json').read_text())
  assert beam_stats['splits'] == local_stats['splits']
  assert beam_stats['shard_stem_counts'] == local_stats['shard_stem_counts']
  for name in ('log_mel_mean', 'log_mel_std', 'mfcc_mean', 'mfcc_std'):
    np.testing.assert_allclose(beam_stats['stems']['mix'][name],
                               local_stats['stems']['mix'][name], atol=1e-6)
  # The same TFDS layout: the reader sees the same splits and sizes.
  local_info = json.loads((records.dataset_path(prepared_dir) / 'dataset_info.json').read_text())
  beam_info = json.loads((records.dataset_path(options.output_dir) /
                          'dataset_info.json').read_text())
  assert beam_info['splits'] == local_info['splits']
  assert report['run']['runner'] == 'DirectRunner'


def test_beam_skips_and_reports_bad_files_as_the_local_path_does(beam_run, prepared_dir):
  _, report = beam_run
  outcomes = {o['source']: o for o in report['files']}
  assert report['num_used'] == 4 and report['num_skipped'] == len(BAD_FILES)
  for name, fragment in BAD_FILES.items():
    assert outcomes[name]['status'] == 'skipped'
    assert fragment in outcomes[name]['reason'] and '\n' not in outcomes[name]['reason']
  local = {o['source']: o for o in json.loads((prepared_dir / 'report.json').read_text())['files']}
  for source, outcome in local.items():
    for field in ('status', 'split', 'num_segments', 'clean_duration_s', 'stems'):
      assert outcomes[source][field] == outcome[field], (source, field)
  assert report['run']['files_processed'] == 6 and report['run']['worker_peak_rss_mb'] > 0
  assert report['audio_hours'] == pytest.approx(4 * 9.0 / 3600, rel=1e-3)


def test_a_rerun_on_beam_reuses_finished_files_and_writes_the_same_shards(beam_run):
  options, _ = beam_run
  folder = records.dataset_path(options.output_dir)
  before = {p.name: p.read_bytes() for p in folder.glob('*.tfrecord-*')}
  report = prepare.prepare(options)
  assert report['run']['files_reused'] == 6 and report['run']['files_processed'] == 0
  assert {p.name: p.read_bytes() for p in folder.glob('*.tfrecord-*')} == before


def test_unknown_runner_is_one_line():
  with pytest.raises(ValueError, match=r'^--runner=spark2: choose one of direct, dataflow'):
    prepare.check_options(prepare.PrepareOptions(input_dir='.', output_dir='out',
                                                 runner='spark2'))
  with pytest.raises(ValueError, match=r'^--beam_options needs --runner'):
    prepare.check_options(prepare.PrepareOptions(input_dir='.', output_dir='out',
                                                 beam_options='--project=p'))
