"""How close generated code sequences are to real ones, and whether they copy.

All functions take integer code sequences [num_sequences, steps, levels]
(residual quantization: one code per level per step), the codebooks
[levels, codebook_size, dim] and plain NumPy; they run on the host after
sampling. Histograms are per level; order (bigrams) is judged on the first
level, which carries the coarse content; distinct sequences and copies are
of whole steps (all levels equal). The counting is the vectorized one of
`ngrams`, which works on [num_sequences, steps] tokens.
"""
import numpy as np

from melodygan_jax.evaluation import distances
from melodygan_jax.evaluation import ngrams

jensen_shannon_distance = ngrams.jensen_shannon_distance


def _as_level_codes(codes: np.ndarray, name: str) -> np.ndarray:
  codes = np.asarray(codes)
  if codes.ndim != 3 or not np.issubdtype(codes.dtype, np.integer):
    raise ValueError(f'{name}: expected integer codes [num_sequences, steps, levels], got '
                     f'{codes.dtype} {codes.shape}')
  return codes


def code_histogram(codes: np.ndarray, codebook_size: int) -> np.ndarray:
  """[..., levels] codes -> [levels, codebook_size] frequencies, each row summing to 1."""
  codes = np.asarray(codes)
  flat = codes.reshape(-1, codes.shape[-1])
  return np.stack([ngrams.code_histogram(flat[:, level][None], codebook_size)
                   for level in range(flat.shape[1])])


def level_js_distance(codes_a: np.ndarray, codes_b: np.ndarray, codebook_size: int) -> float:
  """Mean over levels of the JS distance between each level's code histograms."""
  return float(np.mean([jensen_shannon_distance(p, q) for p, q in zip(
      code_histogram(codes_a, codebook_size), code_histogram(codes_b, codebook_size))]))


def bigram_js_distance(codes_a: np.ndarray, codes_b: np.ndarray, codebook_size: int) -> float:
  """JS distance between the histograms of consecutive first-level code pairs.

  Unlike the code histogram, this sees order: shuffling a sequence's codes in
  time changes it, so i.i.d. codes score badly however right their frequencies.
  """
  first_a = _as_level_codes(codes_a, 'codes_a')[..., 0]
  first_b = _as_level_codes(codes_b, 'codes_b')[..., 0]
  return ngrams.ngram_js_distance(first_a, first_b, 2, codebook_size)


def step_tokens(*code_sets: np.ndarray) -> list[np.ndarray]:
  """One integer per distinct step (all levels), shared across the sets: [num, steps] each."""
  code_sets = [_as_level_codes(codes, 'codes') for codes in code_sets]
  levels = code_sets[0].shape[-1]
  rows = np.concatenate([codes.reshape(-1, levels) for codes in code_sets]).astype(np.int32)
  _, tokens = np.unique(rows, axis=0, return_inverse=True)
  tokens = tokens.reshape(-1)
  out, first = [], 0
  for codes in code_sets:
    size = codes.shape[0] * codes.shape[1]
    out.append(tokens[first:first + size].reshape(codes.shape[:2]))
    first += size
  return out


def distinct_share(codes: np.ndarray) -> float:
  """Share of distinct sequences (all levels): 1 = all different, 1/num = collapse."""
  codes = _as_level_codes(codes, 'codes')
  return ngrams.distinct_share(codes.reshape(len(codes), -1))


def copied_run_statistics(generated: np.ndarray, training: np.ndarray) -> dict:
  """Longest runs of whole steps copied from training, as shares of the length."""
  generated_tokens, training_tokens = step_tokens(generated, training)
  return ngrams.copied_run_statistics(generated_tokens, training_tokens)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to two sets of feature rows [n, dim]."""
  return distances.frechet_distance(features_a, features_b, subsample_to_min=True)


def latents_of(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
  """[..., levels] codes -> [..., dim]: the sum of each level's entry."""
  codes = np.asarray(codes)
  codebooks = np.asarray(codebooks)
  return sum(codebooks[level][codes[..., level]] for level in range(codes.shape[-1]))


def sequence_features(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
  """Per sequence: mean and std over time of its latent vectors, [num, 2 * dim]."""
  latents = latents_of(codes, codebooks)
  return np.concatenate([latents.mean(1), latents.std(1)], axis=-1)


def context_distance_ratio(contexts: np.ndarray, continuations: np.ndarray,
                           codebooks: np.ndarray) -> float:
  """How much closer each continuation is to its own context than to the others'.

  The distance between mean latent vectors (a sequence's average sound) of
  continuation i and context i, over its mean to every other context: 1 when a
  continuation is no closer to what it continues than to any other context,
  below 1 when it keeps its context's character (real crops' second halves
  give the floor).

  Args:
    contexts, continuations: [n, steps, levels] codes, n >= 2, row i of one
      continuing row i of the other (any lengths).
  """
  own_context = latents_of(contexts, codebooks).mean(axis=1)
  continuation = latents_of(continuations, codebooks).mean(axis=1)
  distance = np.linalg.norm(continuation[:, None] - own_context[None], axis=-1)
  count = len(distance)
  if count < 2:
    raise ValueError(f'context distance ratio: {count} sequence(s), need at least 2')
  others = (distance.sum() - np.trace(distance)) / (count * (count - 1))
  return float(np.mean(np.diag(distance)) / max(others, 1e-12))


def compare(generated: np.ndarray, real: np.ndarray, training: np.ndarray,
            codebooks: np.ndarray) -> dict:
  """All metrics of `generated` against held-out `real` (and `training` for copies).

  Args:
    generated: [g, steps, levels] codes. real: [r, steps, levels] held-out
      codes. training: [t, steps_t, levels].
    codebooks: [levels, codebook_size, dim] vectors.

  Returns:
    {'code_js_distance' (mean over levels), 'bigram_js_distance',
     'latent_frechet', 'distinct_share', 'copied_run_mean', 'copied_run_p90',
     'copied_run_max'} floats.
  """
  return {
      **distribution_metrics(generated, real, codebooks),
      'distinct_share': distinct_share(generated),
      **copied_run_statistics(generated, training),
  }


def distribution_metrics(generated: np.ndarray, real: np.ndarray,
                         codebooks: np.ndarray) -> dict:
  """`compare`'s distances between the two sets alone: {'code_js_distance',
  'bigram_js_distance', 'latent_frechet'}."""
  codebook_size = np.asarray(codebooks).shape[1]
  return {
      'code_js_distance': level_js_distance(generated, real, codebook_size),
      'bigram_js_distance': bigram_js_distance(generated, real, codebook_size),
      'latent_frechet': frechet_distance(sequence_features(generated, codebooks),
                                         sequence_features(real, codebooks)),
  }


def baseline_codes(kind: str, training: np.ndarray | None, codebook_size: int, shape,
                   seed: int = 0, code_counts: np.ndarray | None = None) -> np.ndarray:
  """'uniform' codes, or 'iid' draws from each level's training code frequencies.

  Args:
    kind: 'uniform' or 'iid'.
    training: training codes [..., levels]; unused with `code_counts`.
    codebook_size: K.
    shape: of the returned codes, [num, steps, levels].
    seed: of the draws.
    code_counts: [levels, codebook_size] training code counts, when they were
      counted streaming.
  """
  rng = np.random.default_rng(seed)
  if kind == 'uniform':
    return rng.integers(0, codebook_size, size=shape)
  if kind == 'iid':
    if code_counts is None:
      frequencies = code_histogram(training, codebook_size)
    else:
      code_counts = np.asarray(code_counts, np.float64)
      frequencies = code_counts / code_counts.sum(axis=1, keepdims=True)
    return np.stack([rng.choice(codebook_size, size=shape[:-1], p=frequencies[level])
                     for level in range(shape[-1])], axis=-1)
  raise ValueError(f'unknown baseline {kind!r}')
