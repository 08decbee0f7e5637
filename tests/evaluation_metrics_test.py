"""Tests of melodygan_jax.evaluation: distances, n-grams, reconstruction, musicnn."""
import functools
import importlib.util
import itertools
import warnings

import numpy as np
import pytest
import scipy.linalg

from melodygan_jax.evaluation import clip_plans
from melodygan_jax.evaluation import distances
from melodygan_jax.evaluation import latent_metrics
from melodygan_jax.evaluation import memorization
from melodygan_jax.evaluation import ngrams
from melodygan_jax.evaluation import reconstruction
from melodygan_jax.evaluation import rhythm_following

SAMPLE_RATE_HZ = 22_050


def analytic_frechet(mean_a, cov_a, mean_b, cov_b):
  root = scipy.linalg.sqrtm(cov_a @ cov_b).real
  return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def random_covariance(rng, dim):
  factor = rng.standard_normal((dim, dim))
  return factor @ factor.T / dim + 0.1 * np.eye(dim)


# --- Fréchet distance, FAD∞ ---------------------------------------------------

def test_frechet_of_identical_sets_is_zero():
  features = np.random.default_rng(0).standard_normal((300, 13))
  assert abs(distances.frechet_distance(features, features)) < 1e-9


def test_frechet_of_fits_matches_scipy_on_non_commuting_covariances():
  rng = np.random.default_rng(1)
  mean_a, mean_b = rng.standard_normal(7), rng.standard_normal(7)
  cov_a, cov_b = random_covariance(rng, 7), random_covariance(rng, 7)
  assert distances.frechet_distance_of_fits(mean_a, cov_a, mean_b, cov_b) == pytest.approx(
      analytic_frechet(mean_a, cov_a, mean_b, cov_b), rel=1e-9)


def test_frechet_of_shifted_gaussians_is_the_analytic_value():
  rng = np.random.default_rng(2)
  dim, count = 5, 40_000
  mean_b = np.full(dim, 0.4)
  cov_a, cov_b = random_covariance(rng, dim), random_covariance(rng, dim)
  features_a = rng.multivariate_normal(np.zeros(dim), cov_a, count)
  features_b = rng.multivariate_normal(mean_b, cov_b, count)
  expected = analytic_frechet(np.zeros(dim), cov_a, mean_b, cov_b)
  assert distances.frechet_distance(features_a, features_b) == pytest.approx(expected, rel=0.03)


def test_frechet_is_finite_with_fewer_clips_than_dimensions():
  rng = np.random.default_rng(3)
  value = distances.frechet_distance(rng.standard_normal((11, 40)), rng.standard_normal((11, 40)))
  assert np.isfinite(value) and value > 0


def test_frechet_of_fewer_rows_than_dimensions_equals_the_fits_way():
  # The small [n_a, n_b] matrix's singular values give tr (C_a C_b)^½ as the [dim, dim]
  # eigendecompositions do, with and without the bootstrap's repeat counts (to 1e-6: those
  # add the square roots of their zero eigenvalues' rounding, about 1e-8 each).
  rng = np.random.default_rng(5)
  a, b = rng.standard_normal((9, 30)), 0.5 * rng.standard_normal((12, 30)) + 0.3
  counts_a = rng.integers(0, 3, 9).astype(float)
  counts_a[:2] = 1.0
  counts_b = rng.integers(0, 3, 12).astype(float)
  counts_b[:2] = 1.0
  for weights_a, weights_b in ((None, None), (counts_a, counts_b)):
    fits = distances.frechet_distance_of_fits(*distances._weighted_fit(a, weights_a),
                                              *distances._weighted_fit(b, weights_b))
    assert distances.frechet_distance_of_rows(a, b, weights_a, weights_b) == pytest.approx(
        fits, rel=1e-6)
  repeated = np.repeat(a, counts_a.astype(int), axis=0)  # The counts as copies of rows.
  assert distances.frechet_distance_of_rows(a, b, counts_a) == pytest.approx(
      distances.frechet_distance_of_fits(*distances.gaussian_fit(repeated),
                                         *distances.gaussian_fit(b)), rel=1e-6)


def test_frechet_refuses_unequal_sizes_unless_asked_to_subsample():
  rng = np.random.default_rng(4)
  a, b = rng.standard_normal((50, 3)), rng.standard_normal((70, 3))
  with pytest.raises(ValueError, match='50 and 70'):
    distances.frechet_distance(a, b)
  subsampled = distances.frechet_distance(a, b, subsample_to_min=True, seed=7)
  # The distance of 50 rows of each, the larger set's drawn without replacement (seeded).
  rng = np.random.default_rng(7)
  rng.choice(50, 50, replace=False)  # The smaller set's draw: all of its rows.
  rows = np.sort(rng.choice(70, 50, replace=False))
  assert subsampled == pytest.approx(distances.frechet_distance(a, b[rows]))
  assert subsampled == distances.frechet_distance(a, b, subsample_to_min=True, seed=7)


def test_extrapolation_recovers_the_asymptote_of_a_one_over_n_bias():
  counts = np.arange(100, 2001, 100)
  noise = np.random.default_rng(5).normal(0, 1e-4, len(counts))
  fit = distances.extrapolate_to_infinite_n(counts, 3.0 + 70.0 / counts + noise)
  assert fit.value == pytest.approx(3.0, abs=1e-3)
  assert fit.slope == pytest.approx(70.0, rel=1e-2)
  assert fit.r2 > 0.999


def test_fad_infinity_removes_the_sample_size_bias():
  rng = np.random.default_rng(6)
  dim = 8
  mean_b = np.full(dim, 0.15)
  reference = rng.standard_normal((100_000, dim))  # Its own bias: ~dim / 1e5.
  evaluated = rng.normal(mean_b, 1.0, (3000, dim))
  expected = float(np.sum(mean_b**2))  # Same covariance: only the means differ.
  result = distances.fad_infinity(reference, evaluated, num_points=12, min_n=200, seed=0)
  smallest_n_fad = result.points[0][1]
  assert smallest_n_fad - expected > 0.02  # The bias FAD∞ must remove is there...
  assert result.value == pytest.approx(expected, abs=0.01)  # ...and removed.
  assert result.slope > 0 and result.r2 > 0.8


def test_fad_infinity_of_a_set_too_small_for_two_sizes_is_nan_not_a_guess():
  rng = np.random.default_rng(7)
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # numpy's RankWarning of a line through one point.
    result = distances.fad_infinity(rng.standard_normal((50, 3)), rng.standard_normal((2, 3)),
                                    min_n=2)
  assert np.isnan([result.value, result.slope, result.r2]).all()
  assert [n for n, _ in result.points] == [2]  # The one FAD it could compute, kept.
  assert np.isfinite(distances.fad_infinity(rng.standard_normal((50, 3)),
                                            rng.standard_normal((3, 3)), min_n=2).value)


# --- KAD, bootstrap, floor, memorization ----------------------------------

def naive_kad(x, y, bandwidth):
  def k(a, b):
    return np.exp(-np.sum((a - b) ** 2) / (2 * bandwidth**2))
  m, n = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
  return 100 * (xx + yy - 2 * xy)


def test_kad_equals_the_naive_unbiased_estimator():
  rng = np.random.default_rng(7)
  x, y = rng.standard_normal((9, 3)), rng.standard_normal((13, 3)) + 0.3
  assert distances.kernel_audio_distance(x, y, bandwidth=1.7) == pytest.approx(
      naive_kad(x, y, 1.7), rel=1e-9)
  median = distances.median_pairwise_distance(x)
  assert distances.kernel_audio_distance(x, y) == pytest.approx(naive_kad(x, y, median),
                                                                rel=1e-9)


def test_kid_equals_the_naive_unbiased_estimator():
  rng = np.random.default_rng(16)
  x, y = rng.standard_normal((9, 3)), rng.standard_normal((12, 3)) + 0.5
  k = lambda a, b: (a @ b / 3 + 1) ** 3
  m, n = len(x), len(y)
  expected = (sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
              + sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
              - 2 * sum(k(a, b) for a in x for b in y) / (m * n))
  assert distances.kernel_inception_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_kad_is_unbiased_for_one_distribution_and_grows_with_a_shift():
  rng = np.random.default_rng(8)
  null = [distances.kernel_audio_distance(rng.standard_normal((60, 4)),
                                          rng.standard_normal((60, 4)), bandwidth=2.0)
          for _ in range(40)]
  standard_error = np.std(null) / np.sqrt(len(null))
  assert abs(np.mean(null)) < 3 * standard_error
  assert min(null) < 0  # Unbiased, so some draws fall below zero.
  shifted = [np.mean([distances.kernel_audio_distance(
      rng.standard_normal((60, 4)), rng.standard_normal((60, 4)) + shift, bandwidth=2.0)
      for _ in range(5)]) for shift in (0.5, 1.0, 2.0)]
  assert max(null) < shifted[0] < shifted[1] < shifted[2]


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_clips():
  rng = np.random.default_rng(9)
  widths = []
  for count in (60, 480):
    a, b = rng.standard_normal((count, 4)), rng.standard_normal((count, 4)) + 0.7
    interval = distances.kad_interval(a, b, bandwidth=2.0, num_resamples=60, seed=0)
    assert interval.low <= interval.value <= interval.high
    widths.append(interval.high - interval.low)
    fad = distances.fad_interval(a, b, num_resamples=60)
    assert fad.low <= fad.value <= fad.high
  assert widths[1] < 0.6 * widths[0]
  again = distances.kad_interval(a, b, bandwidth=2.0, num_resamples=60, seed=0)
  assert (again.low, again.high) == (interval.low, interval.high)


def test_fast_intervals_equal_the_generic_bootstrap():
  rng = np.random.default_rng(14)
  a, b = rng.standard_normal((40, 5)), rng.standard_normal((40, 5)) + 0.4
  kad = functools.partial(distances.kernel_audio_distance, bandwidth=1.9)
  generic = distances.bootstrap_interval(kad, a, b, num_resamples=25, seed=3,
                                         pass_source_ids=True)
  fast = distances.kad_interval(a, b, bandwidth=1.9, num_resamples=25, seed=3)
  np.testing.assert_allclose([fast.value, fast.low, fast.high],
                             [generic.value, generic.low, generic.high], rtol=1e-9)
  generic = distances.bootstrap_interval(distances.frechet_distance, a, b, num_resamples=25,
                                         seed=4)
  fast = distances.fad_interval(a, b, num_resamples=25, seed=4)
  np.testing.assert_allclose([fast.value, fast.low, fast.high],
                             [generic.value, generic.low, generic.high], rtol=1e-9)


def test_split_halves_are_disjoint_equal_and_keep_groups_apart():
  groups = np.repeat(np.arange(7), [5, 9, 3, 8, 6, 4, 7])
  half_a, half_b = clip_plans.split_halves(len(groups), groups, seed=3)
  assert len(half_a) == len(half_b) > 10
  assert not set(half_a) & set(half_b)
  assert not set(groups[half_a]) & set(groups[half_b])


def test_context_distance_ratio_is_low_for_kept_contexts_and_near_one_for_shuffled():
  rng = np.random.default_rng(0)
  codebooks = rng.standard_normal((2, 16, 4))
  # Each sequence holds to a few codes of its own; its second half keeps them.
  own = [rng.choice(16, size=(3, 2)) for _ in range(40)]
  sequences = np.stack([codes[rng.integers(3, size=24)] for codes in own])
  halves = sequences[:, :12], sequences[:, 12:]
  kept = latent_metrics.context_distance_ratio(*halves, codebooks)
  shuffled = latent_metrics.context_distance_ratio(halves[0], halves[1][rng.permutation(40)],
                                                   codebooks)
  assert kept < 0.5 and 0.8 < shuffled < 1.2, (kept, shuffled)
  with pytest.raises(ValueError, match='need at least 2'):
    latent_metrics.context_distance_ratio(halves[0][:1], halves[1][:1], codebooks)


def test_memorization_flags_copies_of_training_clips():
  rng = np.random.default_rng(10)
  training = rng.standard_normal((500, 6))
  held_out = rng.standard_normal((200, 6))
  novel = rng.standard_normal((40, 6))
  copies = training[[3, 77, 410]] + 1e-3
  result = memorization.memorization(np.concatenate([novel, copies]), training, held_out)
  assert result.too_close[-3:].all()
  assert list(result.nearest_training_index[-3:]) == [3, 77, 410]
  assert result.too_close[:-3].mean() < 0.2
  assert result.threshold == pytest.approx(np.percentile(result.held_out_distance, 5))


# --- code n-grams -----------------------------------------------------------

def naive_ngrams(codes, length):
  counts = {}
  for row in codes:
    for start in range(len(row) - length + 1):
      key = tuple(int(c) for c in row[start:start + length])
      counts[key] = counts.get(key, 0) + 1
  return counts


def naive_js_distance(counts_a, counts_b):
  keys = sorted(set(counts_a) | set(counts_b))
  p = np.array([counts_a.get(k, 0) for k in keys], float)
  q = np.array([counts_b.get(k, 0) for k in keys], float)
  p, q, m = p / p.sum(), q / q.sum(), (p / p.sum() + q / q.sum()) / 2
  kl = lambda a: sum(a[i] * np.log2(a[i] / m[i]) for i in range(len(a)) if a[i] > 0)
  return np.sqrt(0.5 * kl(p) + 0.5 * kl(q))


def naive_longest_copied_run(row, training):
  best = 0
  for start, end in itertools.combinations(range(len(row) + 1), 2):
    run = list(row[start:end])
    if end - start > best and any(
        run == list(t[s:s + len(run)]) for t in training for s in range(len(t) - len(run) + 1)):
      best = end - start
  return best


def test_ngram_statistics_equal_a_naive_reference():
  rng = np.random.default_rng(11)
  codes_a = rng.integers(0, 6, (25, 17))
  codes_b = rng.integers(0, 6, (19, 17)) ** 2 % 6  # Another distribution.
  for length in (1, 2, 3):
    keys, counts = ngrams.ngram_histogram(codes_a, length, 6)
    naive = naive_ngrams(codes_a, length)
    assert dict(zip(keys.tolist(), counts.tolist())) == {
        sum(c * 6 ** (length - 1 - j) for j, c in enumerate(k)): v for k, v in naive.items()}
    assert ngrams.ngram_js_distance(codes_a, codes_b, length, 6) == pytest.approx(
        naive_js_distance(naive, naive_ngrams(codes_b, length)), rel=1e-9)
  assert ngrams.ngram_js_distance(codes_a, codes_a, 2, 6) == 0.0
  assert ngrams.code_histogram(codes_a, 6) == pytest.approx(
      np.bincount(codes_a.ravel(), minlength=6) / codes_a.size)
  with_duplicates = np.concatenate([codes_a, codes_a[:5]])
  assert ngrams.distinct_share(with_duplicates) == pytest.approx(
      len({tuple(r) for r in with_duplicates}) / len(with_duplicates))


def test_longest_copied_runs_equal_a_naive_reference():
  rng = np.random.default_rng(12)
  training = rng.integers(0, 3, (13, 23))
  generated = rng.integers(0, 3, (11, 19))
  generated[4, 2:17] = training[7, 5:20]  # A planted copy of 15 codes.
  generated[9] = 5  # A code training never uses.
  runs = ngrams.longest_copied_runs(generated, training)
  assert runs.tolist() == [naive_longest_copied_run(row, training) for row in generated]
  assert runs[4] >= 15 and runs[9] == 0


def test_longest_copied_runs_with_a_large_codebook_equal_a_naive_reference():
  # 1000 codes: names are ranked (not dense keys) from the third code on.
  rng = np.random.default_rng(15)
  training = rng.integers(0, 1000, (6, 40))
  generated = rng.integers(0, 1000, (5, 26))
  generated[1, 3:23] = training[5, 10:30]
  generated[3, 0:4] = training[2, 36:40]
  generated[3, 10:17] = training[0, 0:7]
  runs = ngrams.longest_copied_runs(generated, training)
  assert runs.tolist() == [naive_longest_copied_run(row, training) for row in generated]
  assert runs[1] >= 20 and runs[3] >= 7


def test_copied_run_statistics_of_a_verbatim_copy():
  training = np.random.default_rng(13).integers(0, 512, (50, 64))
  stats = ngrams.copied_run_statistics(training[:10], training)
  assert stats == {'copied_run_mean': 1.0, 'copied_run_p90': 1.0, 'copied_run_max': 1.0}


# --- reconstruction ---------------------------------------------------------

def synthetic_music(seconds, seed=0):
  t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
  rng = np.random.default_rng(seed)
  notes = 220 * 2 ** (rng.integers(0, 12, 8) / 12)
  note = notes[(t * 2).astype(int) % len(notes)]
  envelope = np.exp(-3 * (t % 0.5))
  return (0.4 * envelope * np.sin(2 * np.pi * np.cumsum(note) / SAMPLE_RATE_HZ)
          + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_spectral_distances_are_zero_for_identical_and_grow_with_distortion():
  clip = synthetic_music(1.0)
  noise = np.random.default_rng(1).standard_normal(len(clip)).astype(np.float32)
  assert reconstruction.multi_resolution_stft_distance(clip, clip)['total'] == 0.0
  assert reconstruction.mel_distance(clip, clip, SAMPLE_RATE_HZ) == 0.0
  stft = [reconstruction.multi_resolution_stft_distance(clip, clip + level * noise)
          for level in (0.003, 0.03)]
  mel = [reconstruction.mel_distance(clip, clip + level * noise, SAMPLE_RATE_HZ)
         for level in (0.003, 0.03)]
  assert 0 < stft[0]['spectral_convergence'] < stft[1]['spectral_convergence']
  assert 0 < stft[0]['log_magnitude_l1'] < stft[1]['log_magnitude_l1']
  assert 0 < mel[0] < mel[1]
  # Unequal lengths are trimmed: a padded copy is still identical.
  padded = np.concatenate([clip, np.zeros(300, np.float32)])
  assert reconstruction.multi_resolution_stft_distance(clip, padded)['total'] == 0.0


def test_visqol_scores_a_clip_against_itself_high_and_against_noise_lower():
  pytest.importorskip('visqol', reason='visqol-python is not installed')
  visqol = reconstruction.Visqol()
  clip = synthetic_music(3.0)
  noisy = clip + 0.05 * np.random.default_rng(2).standard_normal(len(clip)).astype(np.float32)
  itself = visqol.score(clip, clip, SAMPLE_RATE_HZ)
  degraded = visqol.score(clip, noisy, SAMPLE_RATE_HZ)
  assert itself > 4.5
  assert degraded < itself - 0.5


# --- musicnn embeddings -----------------------------------------------------

needs_musicnn = pytest.mark.skipif(
    importlib.util.find_spec('musicnn') is None,
    reason='musicnn is not installed (pip install --no-deps musicnn==0.1.0): its checkpoint '
           'holds the weights')


@pytest.fixture(scope='module')
def embedder():
  from melodygan_jax.evaluation import embeddings  # pylint: disable=g-import-not-at-top
  return embeddings.Embedder(batch_size=2)


def tone(seconds, frequency_hz=440.0):
  t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
  return (0.5 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


@needs_musicnn
def test_musicnn_embeds_a_tone_deterministically_and_apart_from_noise(embedder):
  noise = 0.3 * np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE_HZ).astype(np.float32)
  first = embedder.embed([tone(3.0)], SAMPLE_RATE_HZ)
  assert first.shape == (1, 200) and first.dtype == np.float32
  assert np.isfinite(first).all()
  np.testing.assert_array_equal(first, embedder.embed([tone(3.0)], SAMPLE_RATE_HZ))
  assert np.linalg.norm(first - embedder.embed([noise], SAMPLE_RATE_HZ)) > 1.0


@needs_musicnn
def test_musicnn_embedding_matches_musicnn_own_graph(embedder):
  # Mean penultimate layer of musicnn's TF1 graph (tf.compat.v1.layers, Saver
  # restore) on the same 6.5 s tone: benchmarks/musicnn_reference_check.py.
  reference_first_values = [-0.1772, -0.1245, -0.2848, -0.2751]
  ours = embedder.embed([tone(6.5)], SAMPLE_RATE_HZ)[0, :4]
  np.testing.assert_allclose(ours, reference_first_values, atol=2e-3)


@needs_musicnn
def test_musicnn_streams_clips_across_batches_like_one_at_a_time(embedder):
  from melodygan_jax.evaluation import embeddings  # pylint: disable=g-import-not-at-top
  clips = [tone(3.2, 220.0), tone(7.0, 330.0), tone(4.0, 550.0)]
  streamed = list(embedder.iter_patch_embeddings(iter(clips), SAMPLE_RATE_HZ))
  assert [len(patches) for patches in streamed] == [1, 2, 1]
  for clip, patches in zip(clips, streamed):
    alone = embedder.embed_patch_batch(embeddings.log_mel_patches(clip, SAMPLE_RATE_HZ))
    np.testing.assert_allclose(patches, alone, atol=1e-5)
  with pytest.raises(ValueError, match='shorter than'):
    embedder.embed([tone(2.0)], SAMPLE_RATE_HZ)


# --- rhythm following ---------------------------------------------------------

def test_rhythm_following_reads_how_much_of_the_given_pulse_comes_out():
  rng = np.random.default_rng(0)
  given = rng.uniform(0.1, 0.9, 300)
  half = rhythm_following.following(given, 0.2 + 0.5 * given + 0.02 * rng.standard_normal(300),
                                    num_resamples=200)
  slope, r = half['rhythm_following_slope'], half['rhythm_following_r']
  assert slope['low'] < 0.5 < slope['high'] and slope['high'] - slope['low'] < 0.05
  assert r['value'] > 0.95 and r['low'] <= r['value'] <= r['high']
  assert half['given_pulse_clarity'] == pytest.approx(given.mean())
  ignored = rhythm_following.following(given, rng.uniform(0.1, 0.9, 300), num_resamples=200)
  for figure in ('rhythm_following_slope', 'rhythm_following_r'):
    assert ignored[figure]['low'] < 0.0 < ignored[figure]['high']
  # Clips too short for a pulse (NaN) are left out, pairs kept together.
  played = 0.2 + 0.5 * given
  played[:100] = np.nan
  kept = rhythm_following.following(given, played, num_resamples=50)
  assert kept['rhythm_following_slope']['value'] == pytest.approx(0.5)
  assert kept['played_pulse_clarity'] == pytest.approx(np.mean(played[100:]))
  assert np.isnan(rhythm_following.following(given[:2], played[100:102], 50)[
      'rhythm_following_r']['value'])
