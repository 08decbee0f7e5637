"""evaluate: intervals, equal counts, floor and baselines on the tiny trained runs."""
import dataclasses
import json

import numpy as np
import pytest

from data_prep import prepare
from melodygan_jax.evaluation import clip_analysis
from melodygan_jax.evaluation import clip_plans
from melodygan_jax.evaluation import codec_metrics
from melodygan_jax.evaluation import evaluate
from melodygan_jax.evaluation import intervals
from melodygan_jax.evaluation import latent_metrics
from melodygan_jax.evaluation import music_profile

# 3 of the 4 corpus songs held out at this fraction (hash split): the floor needs 2.
VALIDATION_FRACTION = 0.4
# The two-sample classifier learns for a few steps only: these tests check the shape
# of what evaluate writes; two_sample_test.py checks that the classifier tells sets apart.
OPTIONS = evaluate.EvaluationOptions(clip_seconds=3.0, num_visqol=2, num_resamples=30,
                                     batch_size=4, c2st_steps=20)
SETS = ('floor', 'vqvae_reconstruction', 'griffin_lim', 'gan', 'baseline_iid',
        'baseline_uniform')


@pytest.fixture(scope='module')
def held_out_dir(corpus_dir, tmp_path_factory):
  """The test corpus prepared again with three songs held out."""
  path = tmp_path_factory.mktemp('held_out')
  prepare.prepare(prepare.PrepareOptions(
      input_dir=str(corpus_dir / 'songs'), output_dir=str(path),
      song=prepare.song_lib.SongOptions(segment_frames=64),
      validation_fraction=VALIDATION_FRACTION, num_workers=1, show_progress=False))
  return path


@pytest.fixture(scope='module')
def metrics(trained_vqvae, trained_gan, held_out_dir):
  return evaluate.evaluate(str(trained_vqvae[0]), str(held_out_dir), str(trained_gan[0]),
                           OPTIONS)


def test_every_set_has_intervals_and_the_same_count(metrics):
  num_clips = metrics['audio/num_clips']
  assert num_clips >= 2
  for name in SETS:
    assert metrics[f'{name}/num_clips'] == num_clips, name
    for figure in ('fad', 'fad_infinity', 'kad', 'frechet_mfcc', 'frechet_encoder'):
      entry = metrics[f'{name}/{figure}']
      assert set(entry) == {'value', 'low', 'high'}, (name, figure)
      assert np.isfinite(list(entry.values())).all() and entry['low'] <= entry['high']
    assert np.isfinite(metrics[f'{name}/fad_infinity_r2'])
  for name in ('vqvae_reconstruction', 'griffin_lim'):
    for score in ('visqol', 'mr_stft_distance', 'mel_distance'):
      entry = metrics[f'{name}/{score}']
      assert entry['low'] <= entry['value'] <= entry['high'], (name, score)
  for figure in ('log_mel_l1', 'mel_spectral_convergence', 'mel_cepstral_distortion_db'):
    entry = metrics[f'vqvae/{figure}']
    assert entry['low'] <= entry['value'] <= entry['high']
  json.dumps(metrics)  # The file evaluate writes.


def test_every_set_has_a_profile_and_a_two_sample_auc(metrics):
  num_clips = metrics['audio/num_clips']
  # Real music and its copies: both halves; generated sets: half B's count.
  real_derived = ('floor', 'vqvae_reconstruction', 'griffin_lim')
  for name in SETS + ('training',):
    profile = metrics[f'{name}/profile']
    assert list(profile) == list(music_profile.PROFILE_ENTRIES), name
    count = (2 * num_clips if name in real_derived
             else metrics['audio/num_training_clips'] if name == 'training' else num_clips)
    for entry, summary in profile.items():
      assert len(summary['per_clip']) == count, (name, entry)
      if entry == 'bar_repetition':  # 3 s clips: too short for bars, null with a note.
        assert summary['value'] is None and 'clip_seconds=3' in summary['note']
        continue
      if summary['value'] is not None:
        assert summary['low'] <= summary['value'] <= summary['high'], (name, entry)
    if name == 'training':
      continue
    auc = metrics[f'{name}/c2st_auc']
    assert 0.0 <= auc['low'] <= auc['value'] <= auc['high'] <= 1.0, name
  assert all(abs(summary['z_vs_floor']) < 1e-9
             for summary in metrics['floor/profile'].values() if summary['z_vs_floor'] is not None)
  lines = evaluate.summary_lines(metrics)
  assert any(line.startswith('gan/profile/pulse_clarity ') for line in lines)
  assert any(line.startswith('gan/c2st_auc ') for line in lines)


def test_floor_sits_below_the_uniform_baseline(metrics):
  for figure in ('fad', 'kad'):
    assert metrics[f'floor/{figure}']['value'] < metrics[f'baseline_uniform/{figure}']['value'], (
        figure)
  # The inversion alone loses less than codec + inversion: its floor.
  assert (metrics['griffin_lim/mr_stft_distance']['value']
          < metrics['vqvae_reconstruction/mr_stft_distance']['value'])
  assert (metrics['griffin_lim/mel_distance']['value']
          < metrics['vqvae_reconstruction/mel_distance']['value'])
  # The codec beats the trivial one that outputs the mean spectrum for every frame.
  assert (metrics['vqvae/mel_spectral_convergence']['value']
          < metrics['baseline_mean_spectrum/mel_spectral_convergence']['value'])
  assert 0.0 <= metrics['gan/too_close_to_training_share'] <= 1.0
  assert metrics['gan/codes_distinct_share'] > 0.5


def test_halves_hold_whole_files_and_equal_counts(trained_vqvae, held_out_dir):
  from melodygan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  meta = input_pipeline.load_dataset_meta(str(held_out_dir))
  half_a, half_b, training = evaluate.real_clip_plans(meta, str(held_out_dir), 3 * 22_050,
                                                      OPTIONS)
  assert len(half_a) == len(half_b) >= 2
  assert not {c.source for c in half_a} & {c.source for c in half_b}
  assert not {c.source for c in half_a + half_b} & {c.source for c in training}
  # The sources of a split as stats.json lists them are the ones the shards hold.
  scanned = dataclasses.replace(meta, stats={k: v for k, v in meta.stats.items()
                                             if k != 'splits'})
  for split in ('train', 'validation'):
    assert clip_plans.split_sources(meta, split) == clip_plans.split_sources(scanned, split)
  capped = evaluate.real_clip_plans(
      meta, str(held_out_dir), 3 * 22_050, evaluate.EvaluationOptions(max_clips=4))
  assert len(capped[2]) <= 4 and len(capped[0]) + len(capped[1]) <= 4
  # The training cap alone: the memorization check's clips, not the held-out halves.
  few_training = evaluate.real_clip_plans(
      meta, str(held_out_dir), 3 * 22_050, evaluate.EvaluationOptions(max_training_clips=2))
  assert len(training) > 2 and len(few_training[2]) == 2
  assert few_training[0] == half_a and few_training[1] == half_b
  # 5 s clips: one a song, three songs, halves of one clip: no interval within a set.
  with pytest.raises(evaluate.EvaluationError, match='1 5 s clip.s. a half.*needs 2'):
    evaluate.real_clip_plans(meta, str(held_out_dir), 5 * 22_050,
                             evaluate.EvaluationOptions(clip_seconds=5.0))


def test_a_capped_code_stream_is_a_spread_of_the_whole_one(trained_vqvae, prepared_dir):
  from melodygan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from melodygan_jax.runs import loading  # pylint: disable=g-import-not-at-top
  vqvae = loading.load_vqvae(str(trained_vqvae[0]))
  meta = input_pipeline.load_dataset_meta(str(prepared_dir))
  data = vqvae.config.data
  data.dataset_dir = str(prepared_dir)
  full = evaluate.stream_codes(vqvae, meta, data, 'train', None)
  # Batches of 16 segments; a cap of 17 takes every k-th batch (k = segments // cap) until
  # it has 17: the first batch and one segment of batch k, not of the next batch.
  stride = len(full) // 17
  assert stride >= 2 and len(full) > 16 * stride, len(full)
  capped = evaluate.stream_codes(vqvae, meta, data, 'train', 17)
  np.testing.assert_array_equal(capped, np.concatenate([full[:16], full[16 * stride:][:1]]))


def test_one_held_out_file_is_refused_in_one_line(trained_vqvae, prepared_dir):
  with pytest.raises(evaluate.EvaluationError, match='floor needs two'):
    evaluate.evaluate(str(trained_vqvae[0]), str(prepared_dir), options=OPTIONS)
  with pytest.raises(evaluate.EvaluationError, match='shorter than one 3 s'):
    evaluate.evaluate(str(trained_vqvae[0]), str(prepared_dir),
                      options=evaluate.EvaluationOptions(clip_seconds=2.0))


def test_plan_spreads_a_cap_over_every_file(tmp_path):
  import soundfile  # pylint: disable=g-import-not-at-top
  wavs = {}
  for name, seconds in (('a.wav', 10), ('b.wav', 4)):
    wavs[name] = tmp_path / name
    soundfile.write(str(wavs[name]), np.zeros(seconds * 100, np.float32), 100)
  plan = clip_plans.plan_clips(wavs, ['a.wav', 'b.wav'], 100, max_clips=4)
  assert len(plan) == 4
  assert sorted(c.source for c in plan).count('b.wav') >= 1
  assert len({(c.source, c.start_sample) for c in plan}) == 4  # No clip twice.
  assert all(c.start_sample + 100 <= 1000 for c in plan if c.source == 'a.wav')


def test_memorization_flags_copies_of_training_clips():
  rng = np.random.default_rng(0)
  sets = clip_analysis.FeatureSets()
  training = rng.normal(size=(40, 5))
  sets.add('training', {'musicnn': training})
  sets.add('floor', {'musicnn': rng.normal(size=(20, 5))})
  sets.add('copies', {'musicnn': training[:10] + 1e-6})
  sets.add('new', {'musicnn': rng.normal(size=(10, 5)) + 4.0})
  found = evaluate.memorization_metrics(sets, ['copies', 'new'])
  assert found['copies/too_close_to_training_share'] == 1.0
  assert found['new/too_close_to_training_share'] == 0.0


def test_mean_interval_covers_the_mean_and_shrinks_with_more_clips():
  rng = np.random.default_rng(0)
  small = intervals.mean_interval(rng.normal(3.0, 1.0, 20), 200)
  large = intervals.mean_interval(rng.normal(3.0, 1.0, 2000), 200)
  assert small.low < 3.0 < small.high and large.low < 3.0 < large.high
  assert large.high - large.low < 0.3 * (small.high - small.low)
  assert evaluate.format_figure({'value': 1.0, 'low': 0.5, 'high': 2.0}) == '1 [0.5, 2]'


def test_mean_interval_draws_whole_songs():
  # 6 songs of 30 clips each: the clips of a song share its level, so the songs, not
  # the 180 clips, say how well the mean is known.
  rng = np.random.default_rng(0)
  levels = rng.normal(0.5, 0.15, 6)
  values = np.repeat(levels, 30) + rng.normal(0.0, 0.02, 180)
  songs = np.repeat(np.arange(6), 30)
  by_clip = intervals.mean_interval(values, 500)
  by_song = intervals.mean_interval(values, 500, groups=songs)
  assert by_song.value == by_clip.value == pytest.approx(values.mean())
  assert by_song.high - by_song.low > 4 * (by_clip.high - by_clip.low)
  # The song-level spread of 6 means: the interval is about 2 standard errors wide each way.
  standard_error = levels.std(ddof=1) / np.sqrt(6)
  assert 2.0 * standard_error < by_song.high - by_song.low < 6.0 * standard_error
  # One clip a song: the same as drawing clips.
  single = intervals.mean_interval(values[:20], 500, groups=np.arange(20))
  plain = intervals.mean_interval(values[:20], 500)
  assert single.low == pytest.approx(plain.low) and single.high == pytest.approx(plain.high)


def test_latent_metrics_match_set_based_definitions():
  rng = np.random.default_rng(0)
  generated = rng.integers(0, 5, (6, 12, 2))  # [sequences, steps, levels]
  training = rng.integers(0, 5, (4, 12, 2))
  training[0, 2:9] = generated[1, 3:10]  # A copied run of 7 whole steps.
  training[1, :, 0] = generated[2, :, 0]  # Only the first level: not a copy of steps.

  def longest(row):
    steps = lambda codes: [tuple(step) for step in codes]
    grams = {tuple(steps(t)[s:s + n]) for t in training for n in range(1, 13)
             for s in range(13 - n)}
    return max((n for n in range(1, 13) for s in range(13 - n)
                if tuple(steps(row)[s:s + n]) in grams), default=0)
  expected = [longest(row) / 12 for row in generated]
  runs = latent_metrics.copied_run_statistics(generated, training)
  assert runs['copied_run_max'] == pytest.approx(max(expected))
  assert runs['copied_run_mean'] == pytest.approx(np.mean(expected))
  assert expected[1] >= 7 / 12 and expected[2] < 1.0
  assert latent_metrics.bigram_js_distance(generated, generated, 5) == 0.0
  # The same codes in another order: the histogram cannot tell, the bigrams can.
  ordered = np.sort(generated, axis=1)
  assert latent_metrics.level_js_distance(generated, ordered, 5) == pytest.approx(0.0, abs=1e-7)
  assert latent_metrics.bigram_js_distance(generated, ordered, 5) > 0.3
  counts = np.array([[0.0, 3.0, 1.0], [1.0, 0.0, 0.0]])
  drawn = latent_metrics.baseline_codes('iid', None, 3, (2000, 1, 2), code_counts=counts)
  assert not (drawn[..., 0] == 0).any() and abs((drawn[..., 0] == 1).mean() - 0.75) < 0.05
  assert (drawn[..., 1] == 0).all()


def test_mel_cepstral_distortion_is_zero_only_for_equal_cepstra():
  frames = np.random.default_rng(0).standard_normal((30, 20))
  assert codec_metrics.mel_cepstral_distortion(frames, frames) == 0.0
  shifted = frames.copy()
  shifted[:, 1] += 1.0  # c1 one unit off in every frame: 0.5 * sqrt(2) dB (librosa's dB cepstra).
  assert codec_metrics.mel_cepstral_distortion(frames, shifted) == pytest.approx(0.5 * np.sqrt(2))
  shifted_c0 = frames.copy()
  shifted_c0[:, 0] += 5.0  # c0 (overall level) is left out.
  assert codec_metrics.mel_cepstral_distortion(frames, shifted_c0) == 0.0
