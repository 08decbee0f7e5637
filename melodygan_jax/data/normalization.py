"""Per-stem log-mel normalization: the one place models' inputs are scaled.

A data set's stats.json holds, per stem kind, the train split's per-band
log-mel mean and std; models see (log_mel - mean) / std, and every decode
un-normalizes with the same numbers. A run copies them into its workdir
(`NORMALIZATION_FILENAME`) at start, so it samples and reconstructs without
the data set.
"""
import dataclasses

import numpy as np

from melodygan_jax import errors
from melodygan_jax.audio import contract

NORMALIZATION_FILENAME = 'normalization.json'


def normalize_with(log_mel, mean, std):
  """(log_mel - mean) / std: plain arithmetic, so NumPy, JAX and tf.data all use this one."""
  return (log_mel - mean) / std


def denormalize_with(normalized, mean, std):
  """The inverse of `normalize_with`."""
  return normalized * std + mean


class NormalizationError(errors.UserError, ValueError):
  """Statistics that cannot be used; str() names the source and the problem."""


@dataclasses.dataclass(frozen=True)
class Normalization:
  """Per-stem log-mel statistics, each [NUM_MELS] float32."""
  mean: dict[str, np.ndarray]
  std: dict[str, np.ndarray]
  feature_version: int
  source: str = ''  # Where they were read, for error messages.

  @classmethod
  def from_stats(cls, stats: dict, source: str = '') -> 'Normalization':
    """From a stats.json (or normalization.json) dict.

    Raises:
      NormalizationError: features of another version than this code's.
    """
    version = int(stats.get('feature_version', 1))
    if version != contract.FEATURE_VERSION:
      raise NormalizationError(
          f'{source}: features of version {version}, but this code computes version '
          f'{contract.FEATURE_VERSION} ({contract.FEATURE_DESCRIPTION}); re-run '
          'python -m data_prep.prepare (its cache makes that cheap) and retrain')
    if 'stems' not in stats:
      raise NormalizationError(f'{source}: no per-stem statistics')
    mean = {stem: np.asarray(entry['log_mel_mean'], np.float32)
            for stem, entry in stats['stems'].items()}
    std = {stem: np.asarray(entry['log_mel_std'], np.float32)
           for stem, entry in stats['stems'].items()}
    return cls(mean=mean, std=std, feature_version=version, source=source)

  def to_json(self) -> dict:
    return {'feature_version': self.feature_version,
            'stems': {stem: {'log_mel_mean': self.mean[stem].tolist(),
                             'log_mel_std': self.std[stem].tolist()} for stem in self.mean}}

  @property
  def stems(self) -> tuple[str, ...]:
    return tuple(self.mean)

  def of(self, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of one stem kind."""
    if stem not in self.mean:
      raise NormalizationError(f'{self.source}: no {stem!r} statistics '
                               f'(has {", ".join(self.mean)})')
    return self.mean[stem], self.std[stem]

  def stacked(self, stems) -> tuple[np.ndarray, np.ndarray]:
    """Means and stds of `stems`, each [len(stems), NUM_MELS], indexed by stem id."""
    pairs = [self.of(stem) for stem in stems]
    return (np.stack([mean for mean, _ in pairs]), np.stack([std for _, std in pairs]))

  def normalize(self, log_mel, stem: str) -> np.ndarray:
    mean, std = self.of(stem)
    return normalize_with(np.asarray(log_mel), mean, std).astype(np.float32)

  def denormalize(self, normalized, stem: str) -> np.ndarray:
    mean, std = self.of(stem)
    return denormalize_with(np.asarray(normalized), mean, std).astype(np.float32)
