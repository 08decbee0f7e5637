"""Vectorized statistics of code sequences: n-gram histograms, JS distance, copies.

Codes are integer arrays [num_sequences, steps] in [0, codebook_size). The
definitions match the set-based ones they replace: n-grams never cross a
sequence boundary; the JS distance is sqrt of the Jensen-Shannon divergence
in bits (0 same, 1 disjoint); the distinct share counts identical whole
sequences once; a copied run is a run of consecutive codes of a generated
sequence found verbatim, at any offset, inside one training sequence.
"""
import numpy as np


def _as_codes(codes: np.ndarray, name: str) -> np.ndarray:
  codes = np.asarray(codes)
  if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
    raise ValueError(f'{name}: expected integer codes [num_sequences, steps], got '
                     f'{codes.dtype} {codes.shape}')
  if codes.size and codes.min() < 0:
    raise ValueError(f'{name}: codes must be >= 0')
  return codes.astype(np.int64)


def ngram_keys(codes: np.ndarray, length: int, codebook_size: int) -> np.ndarray:
  """One exact int64 key per n-gram: sum_j code[i + j] * codebook_size^(length - 1 - j).

  Args:
    codes: [num_sequences, steps].
    length: n (1 = codes, 2 = consecutive pairs, ...).
    codebook_size: K; K^length must stay below 2^63 so keys stay exact.

  Returns:
    [num_sequences * (steps - length + 1)] int64 keys, sequence by sequence.
  """
  codes = _as_codes(codes, 'codes')
  if codebook_size ** length >= 2**63:
    raise ValueError(f'{codebook_size}^{length} n-gram keys do not fit in int64')
  windows = codes.shape[1] - length + 1
  if windows <= 0:
    return np.zeros(0, np.int64)
  keys = np.zeros((codes.shape[0], windows), np.int64)
  for offset in range(length):
    keys = keys * codebook_size + codes[:, offset:offset + windows]
  return keys.reshape(-1)


def ngram_histogram(codes: np.ndarray, length: int,
                    codebook_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Sparse n-gram counts: (sorted unique keys [u] int64, counts [u] int64)."""
  return np.unique(ngram_keys(codes, length, codebook_size), return_counts=True)


def code_histogram(codes: np.ndarray, codebook_size: int) -> np.ndarray:
  """[codebook_size] code frequencies summing to 1 (all zeros for no codes)."""
  counts = np.bincount(_as_codes(codes, 'codes').reshape(-1), minlength=codebook_size)
  return counts / max(counts.sum(), 1)


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> float:
  """sqrt of the JS divergence in bits of two aligned distributions: 0 to 1."""
  p = np.asarray(p, np.float64)
  q = np.asarray(q, np.float64)
  m = 0.5 * (p + q)

  def kl_to_m(a):
    mask = a > 0
    return np.sum(a[mask] * np.log2(a[mask] / m[mask]))
  return float(np.sqrt(max(0.5 * kl_to_m(p) + 0.5 * kl_to_m(q), 0.0)))


def sparse_js_distance(keys_a: np.ndarray, counts_a: np.ndarray, keys_b: np.ndarray,
                       counts_b: np.ndarray) -> float:
  """JS distance of two sparse histograms (keys need not match), aligned on the union."""
  union = np.union1d(keys_a, keys_b)
  p = np.zeros(len(union))
  q = np.zeros(len(union))
  p[np.searchsorted(union, keys_a)] = counts_a
  q[np.searchsorted(union, keys_b)] = counts_b
  return jensen_shannon_distance(p / max(p.sum(), 1), q / max(q.sum(), 1))


def ngram_js_distance(codes_a: np.ndarray, codes_b: np.ndarray, length: int,
                      codebook_size: int) -> float:
  """JS distance between the n-gram histograms of two sets of sequences.

  length=2 is the bigram distance: it sees order, so codes shuffled in time
  score badly however right their frequencies.
  """
  return sparse_js_distance(*ngram_histogram(codes_a, length, codebook_size),
                            *ngram_histogram(codes_b, length, codebook_size))


def distinct_share(codes: np.ndarray) -> float:
  """Share of distinct sequences: 1 = all different, 1/num = mode collapse."""
  codes = _as_codes(codes, 'codes')
  return len(np.unique(codes, axis=0)) / max(len(codes), 1)


_DENSE_NAMES = 2**25  # Up to this many possible names, a pair's key is its name (no sort).


def longest_copied_runs(generated: np.ndarray, training: np.ndarray) -> np.ndarray:
  """For each generated sequence, the longest run of codes found verbatim in training.

  Exact, with no per-position Python loop. Windows grow one code per round;
  each window of length L is named by its pair (name of its first L - 1
  codes, its last code): the pair's key while keys are few, else the key's
  rank among the live windows' keys, so names stay small and equal names
  mean equal code runs. A generated window lives while some training window
  has its name; a training window lives while some generated window has its
  name (a longer match must extend a shorter one). Rounds stop when no
  generated window lives, so they number the longest copy + 1, and the live
  sets shrink fast once L passes the typical shared run.

  Args:
    generated: [num_generated, steps_g] codes.
    training: [num_training, steps_t] codes (10^5 x 256 codes: ~1 GB at the
      first rounds, which touch every training position).

  Returns:
    [num_generated] int64 run lengths (0: not even one code in common).
  """
  generated = _as_codes(generated, 'generated')
  training = _as_codes(training, 'training')
  num_generated, steps_g = generated.shape
  steps_t = training.shape[1]
  longest = np.zeros(num_generated, np.int64)
  if generated.size == 0 or training.size == 0:
    return longest
  alphabet = int(max(generated.max(), training.max())) + 1
  position_type = np.int32 if max(generated.size, training.size) < 2**31 else np.int64
  flat_g = generated.reshape(-1).astype(np.int32)
  flat_t = training.reshape(-1).astype(np.int32)
  # Live windows: flat start position, name; all of length `length`.
  start_g = np.arange(flat_g.size, dtype=position_type)
  start_t = np.arange(flat_t.size, dtype=position_type)
  name_g, name_t = flat_g.astype(np.int64), flat_t.astype(np.int64)  # Length 1: the code.
  num_names = alphabet
  length = 1
  while True:
    in_t = np.zeros(num_names, bool)
    in_g = np.zeros(num_names, bool)
    in_t[name_t] = True
    in_g[name_g] = True
    keep_g, keep_t = in_t[name_g], in_g[name_t]
    start_g, name_g = start_g[keep_g], name_g[keep_g]
    start_t, name_t = start_t[keep_t], name_t[keep_t]
    if not start_g.size:
      return longest
    longest[start_g // steps_g] = length  # Lengths only grow, so plain assignment is a max.
    # Extend by one code those windows that do not run off their sequence's end.
    fits_g = start_g % steps_g + length < steps_g
    fits_t = start_t % steps_t + length < steps_t
    start_g, name_g = start_g[fits_g], name_g[fits_g]
    start_t, name_t = start_t[fits_t], name_t[fits_t]
    if not start_g.size or not start_t.size:
      return longest
    pair_g = name_g * alphabet + flat_g[start_g + length]
    pair_t = name_t * alphabet + flat_t[start_t + length]
    if num_names * alphabet <= _DENSE_NAMES:
      name_g, name_t, num_names = pair_g, pair_t, num_names * alphabet
    else:
      names, inverse = np.unique(np.concatenate([pair_g, pair_t]), return_inverse=True)
      name_g, name_t, num_names = inverse[:len(pair_g)], inverse[len(pair_g):], len(names)
    length += 1


def copied_run_statistics(generated: np.ndarray, training: np.ndarray) -> dict:
  """Longest copied runs as shares of the sequence length: mean, p90 and max."""
  generated = _as_codes(generated, 'generated')
  runs = longest_copied_runs(generated, training) / max(generated.shape[1], 1)
  return {'copied_run_mean': float(runs.mean()),
          'copied_run_p90': float(np.percentile(runs, 90)),
          'copied_run_max': float(runs.max())}
