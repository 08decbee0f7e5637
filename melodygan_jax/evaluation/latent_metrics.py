"""How close generated code sequences are to real ones, and whether they copy.

All functions take integer code sequences [num_sequences, steps, levels]
(residual quantization: one code per level per step), the codebooks
[levels, codebook_size, dim] and plain NumPy; they run on the host after
sampling. Histograms are per level; order (bigrams) is judged on the first
level, which carries the coarse content; copies are runs of whole steps.
"""
import numpy as np
import scipy.linalg


def code_histogram(codes: np.ndarray, codebook_size: int) -> np.ndarray:
  """[..., levels] codes -> [levels, codebook_size] frequencies, each row summing to 1."""
  codes = np.asarray(codes)
  codes = codes.reshape(-1, codes.shape[-1])
  counts = np.stack([np.bincount(codes[:, level], minlength=codebook_size)
                     for level in range(codes.shape[1])]).astype(np.float64)
  return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def latents_of(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
  """[..., levels] codes -> [..., dim]: the sum of each level's entry."""
  codes = np.asarray(codes)
  return sum(np.asarray(codebooks[level])[codes[..., level]] for level in range(codes.shape[-1]))


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> float:
  """sqrt of the JS divergence in bits: 0 (same) to 1 (disjoint)."""
  m = 0.5 * (p + q)

  def kl(a, b):
    mask = a > 0
    return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))
  return float(np.sqrt(max(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0)))


def bigram_js_distance(codes_a: np.ndarray, codes_b: np.ndarray) -> float:
  """JS distance between the histograms of consecutive first-level code pairs.

  Unlike the code histogram, this sees order: shuffling a sequence's codes in
  time changes it, so i.i.d. codes score badly however right their frequencies.
  """
  def pair_counts(codes):
    codes = np.asarray(codes)[..., 0].astype(np.int64)
    pairs = codes[:, :-1] * 2**20 + codes[:, 1:]  # One key per (code, next code).
    keys, counts = np.unique(pairs, return_counts=True)
    return dict(zip(keys.tolist(), counts.tolist()))
  counts_a, counts_b = pair_counts(codes_a), pair_counts(codes_b)
  keys = sorted(set(counts_a) | set(counts_b))
  p = np.array([counts_a.get(k, 0) for k in keys], np.float64)
  q = np.array([counts_b.get(k, 0) for k in keys], np.float64)
  return jensen_shannon_distance(p / max(p.sum(), 1), q / max(q.sum(), 1))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to two sets of feature rows."""
  mean_a, mean_b = features_a.mean(0), features_b.mean(0)
  cov_a = np.atleast_2d(np.cov(features_a, rowvar=False))
  cov_b = np.atleast_2d(np.cov(features_b, rowvar=False))
  covmean, _ = scipy.linalg.sqrtm(cov_a @ cov_b, disp=False)
  covmean = np.real(covmean)
  return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * covmean))


def sequence_features(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
  """Per sequence: mean and std over time of its latent vectors, [num, 2 * dim]."""
  latents = latents_of(codes, codebooks)
  return np.concatenate([latents.mean(1), latents.std(1)], axis=-1)


def distinct_share(codes: np.ndarray) -> float:
  """Share of distinct sequences: 1 = all different, 1/num = mode collapse."""
  codes = np.asarray(codes)
  return len({row.tobytes() for row in codes}) / max(len(codes), 1)


def _ngrams(sequences: np.ndarray, length: int) -> set[bytes]:
  found = set()
  for row in sequences:
    row_bytes = row.astype(np.int32)
    for start in range(len(row) - length + 1):
      found.add(row_bytes[start:start + length].tobytes())
  return found


def longest_copied_runs(generated: np.ndarray, training: np.ndarray) -> np.ndarray:
  """For each generated sequence, the longest run of codes found verbatim in training.

  Binary search on the run length, with the set of training n-grams of each
  length tried (a run of n implies runs of every shorter length).
  """
  generated = np.asarray(generated).astype(np.int32)
  training = np.asarray(training).astype(np.int32)
  max_length = min(generated.shape[1], training.shape[1])
  cache = {}

  def has_run(row, length):
    if length not in cache:
      cache[length] = _ngrams(training, length)
    grams = cache[length]
    return any(row[s:s + length].tobytes() in grams for s in range(len(row) - length + 1))

  longest = np.zeros(len(generated), np.int64)
  for index, row in enumerate(generated):
    low, high = 0, max_length  # Invariant: a run of `low` exists; none longer than `high`.
    while low < high:
      mid = (low + high + 1) // 2
      if has_run(row, mid):
        low = mid
      else:
        high = mid - 1
    longest[index] = low
  return longest


def compare(generated: np.ndarray, real: np.ndarray, training: np.ndarray,
            codebooks: np.ndarray) -> dict:
  """All metrics of `generated` against held-out `real` (and `training` for copies).

  'code_js_distance' is the mean over levels of each level's histogram distance.
  """
  codebook_size = np.asarray(codebooks).shape[1]
  runs = longest_copied_runs(generated, training) / generated.shape[1]
  generated_histogram = code_histogram(generated, codebook_size)
  real_histogram = code_histogram(real, codebook_size)
  return {
      'code_js_distance': float(np.mean([
          jensen_shannon_distance(g, r) for g, r in zip(generated_histogram, real_histogram)])),
      'bigram_js_distance': bigram_js_distance(generated, real),
      'latent_frechet': frechet_distance(sequence_features(generated, codebooks),
                                         sequence_features(real, codebooks)),
      'distinct_share': distinct_share(generated),
      'copied_run_mean': float(runs.mean()),
      'copied_run_p90': float(np.percentile(runs, 90)),
      'copied_run_max': float(runs.max()),
  }


def baseline_codes(kind: str, training: np.ndarray, codebook_size: int, shape,
                   seed: int = 0) -> np.ndarray:
  """'uniform' codes, or 'iid' draws from each level's training code frequencies.

  `shape` is [num, steps, levels].
  """
  rng = np.random.default_rng(seed)
  if kind == 'uniform':
    return rng.integers(0, codebook_size, size=shape)
  if kind == 'iid':
    histogram = code_histogram(training, codebook_size)
    return np.stack([rng.choice(codebook_size, size=shape[:-1], p=histogram[level])
                     for level in range(shape[-1])], axis=-1)
  raise ValueError(f'unknown baseline {kind!r}')
