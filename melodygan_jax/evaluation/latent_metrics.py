"""How close generated code sequences are to real ones, and whether they copy.

All functions take integer code sequences [num_sequences, steps] and plain
NumPy; they run on the host after sampling. The n-gram counting, distinct
share and copied runs are the vectorized ones of `ngrams`; the names here are
kept for the GAN trainer's eval and `evaluate`.
"""
import numpy as np

from melodygan_jax.evaluation import distances
from melodygan_jax.evaluation import ngrams

code_histogram = ngrams.code_histogram
jensen_shannon_distance = ngrams.jensen_shannon_distance
distinct_share = ngrams.distinct_share
longest_copied_runs = ngrams.longest_copied_runs


def bigram_js_distance(codes_a: np.ndarray, codes_b: np.ndarray,
                       codebook_size: int | None = None) -> float:
  """JS distance between the histograms of consecutive code pairs.

  Unlike the code histogram, this sees order: shuffling a sequence's codes in
  time changes it, so i.i.d. codes score badly however right their frequencies.

  Args:
    codes_a, codes_b: [num_sequences, steps] codes.
    codebook_size: K (default: the largest code seen + 1; the distance does not depend on it).
  """
  if codebook_size is None:
    codebook_size = int(max(np.max(codes_a), np.max(codes_b))) + 1
  return ngrams.ngram_js_distance(codes_a, codes_b, 2, codebook_size)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to two sets of feature rows [n, dim]."""
  return distances.frechet_distance(features_a, features_b, subsample_to_min=True)


def sequence_features(codes: np.ndarray, codebook: np.ndarray) -> np.ndarray:
  """Per sequence: mean and std over time of its latent vectors, [num, 2 * dim]."""
  latents = np.asarray(codebook)[np.asarray(codes)]
  return np.concatenate([latents.mean(1), latents.std(1)], axis=-1)


def compare(generated: np.ndarray, real: np.ndarray, training: np.ndarray,
            codebook: np.ndarray) -> dict:
  """All metrics of `generated` against held-out `real` (and `training` for copies).

  Args:
    generated: [g, steps] codes. real: [r, steps] held-out codes. training: [t, steps_t].
    codebook: [codebook_size, dim] vectors.

  Returns:
    {'code_js_distance', 'bigram_js_distance', 'latent_frechet', 'distinct_share',
     'copied_run_mean', 'copied_run_p90', 'copied_run_max'} floats.
  """
  codebook_size = len(codebook)
  return {
      'code_js_distance': jensen_shannon_distance(code_histogram(generated, codebook_size),
                                                  code_histogram(real, codebook_size)),
      'bigram_js_distance': bigram_js_distance(generated, real, codebook_size),
      'latent_frechet': frechet_distance(sequence_features(generated, codebook),
                                         sequence_features(real, codebook)),
      'distinct_share': distinct_share(generated),
      **ngrams.copied_run_statistics(generated, training),
  }


def baseline_codes(kind: str, training: np.ndarray | None, codebook_size: int, shape,
                   seed: int = 0, code_counts: np.ndarray | None = None) -> np.ndarray:
  """'uniform' codes, or 'iid' draws from the training code frequencies.

  Args:
    kind: 'uniform' or 'iid'.
    training: training codes (any shape); unused with `code_counts`.
    codebook_size: K.
    shape: of the returned codes.
    seed: of the draws.
    code_counts: [codebook_size] training code counts, when they were counted streaming.
  """
  rng = np.random.default_rng(seed)
  if kind == 'uniform':
    return rng.integers(0, codebook_size, size=shape)
  if kind == 'iid':
    if code_counts is None:
      code_counts = np.bincount(np.asarray(training).reshape(-1), minlength=codebook_size)
    code_counts = np.asarray(code_counts, np.float64)
    return rng.choice(codebook_size, size=shape, p=code_counts / code_counts.sum())
  raise ValueError(f'unknown baseline {kind!r}')
