"""The listening page: row splitting, references from the middle, profiles beside the floor."""
import numpy as np
from matplotlib import image as plt_image

from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.audio import music_structure
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import records
from melodygan_jax.data import reference_clips
from melodygan_jax.generation import listening_page


def test_a_ten_second_sample_is_one_row_with_no_black_row(tmp_path):
  # steps_for_seconds(10) codes of stride 4 decode to 864 frames; a row holds 861.
  ten_seconds = np.random.default_rng(0).standard_normal((864, contract.NUM_MELS))
  rows = listening_page.write_spectrogram(tmp_path / 'ten.png', ten_seconds.astype(np.float32))
  assert rows == 1
  assert plt_image.imread(tmp_path / 'ten.png').shape[0] == (
      contract.NUM_MELS * listening_page.PIXELS_PER_BAND)
  # A clip that runs on past a row by more than the overhang still gets its row.
  longer = np.zeros((listening_page.frames_per_row() + 40, contract.NUM_MELS), np.float32)
  assert listening_page.write_spectrogram(tmp_path / 'longer.png', longer) == 2


def test_references_come_from_the_middle_of_each_song_as_long_as_the_samples(prepared_dir):
  meta = input_pipeline.load_dataset_meta(str(prepared_dir))
  split_files = meta.split_files[records.VALIDATION_SPLIT]
  clips = reference_clips.held_out_clips(str(prepared_dir), split_files, meta.segment_frames,
                                         num_clips=1, seconds=2.5)
  assert clips
  clip = clips[0]
  whole = audio_io.read_mono(reference_clips.clean_wavs(str(prepared_dir))[clip.source])
  assert len(clip.samples) == round(2.5 * contract.SAMPLE_RATE_HZ)
  middle_start_s = (len(whole) - len(clip.samples)) / 2 / contract.SAMPLE_RATE_HZ
  assert abs(clip.start_s - middle_start_s) < 1e-3 and clip.start_s > 2.0
  assert clip.log_mel.shape == (contract.num_frames(len(clip.samples)), contract.NUM_MELS)


def test_a_samples_profile_is_shown_beside_the_floors_range(tmp_path):
  time = np.arange(6 * contract.SAMPLE_RATE_HZ) / contract.SAMPLE_RATE_HZ
  audio_io.write_wav(tmp_path / 'tone.wav', 0.3 * np.sin(2 * np.pi * 440.0 * time))
  floor = {entry: {'value': 0.5, 'low': 0.4, 'high': 0.6, 'z_vs_floor': 0.0,
                   'per_clip': [0.2, 0.4, 0.6, None, 0.8]}
           for entry in music_structure.PROFILE_ENTRIES}
  metrics = {'floor/profile': floor, 'gan/c2st_auc': {'value': 0.9, 'low': 0.8, 'high': 0.95}}
  note = listening_page.profile_note(tmp_path / 'tone.wav', metrics)
  assert 'real clips (p10-p90)' in note and 'pulse_clarity' in note
  assert note.count('<tr>') == 1 + len(music_structure.PROFILE_ENTRIES)
  assert 'null' in note  # bar_repetition of a 6 s clip.
  alone = listening_page.profile_note(tmp_path / 'tone.wav')
  assert 'real clips' not in alone and 'chroma_stability' in alone
  table = listening_page.metrics_table(metrics)
  assert 'floor/profile/pulse_clarity' in table and 'per_clip' not in table
  assert 'gan/c2st_auc' in table and '[0.8, 0.95]' in table
