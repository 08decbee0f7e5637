"""The GAN's data: the frozen VQ-VAE's codes of every segment, encoded once.

They live in GAN_WORKDIR/latents.npz with latents.json naming the VQ-VAE
(workdir and step) and data they came from: the VQ-VAE is fixed, so its codes
never change, and encoding on the fly would spend most of each GAN step in the
encoder. A cache made from another VQ-VAE is an error, never silently reused.
"""
import dataclasses
from typing import Callable

from absl import logging
import jax
import numpy as np

from melodygan_jax import atomic_files

LATENTS_FILENAME = 'latents.npz'


class LatentCacheError(ValueError):
  """A cache that does not belong to this run; str() names both sources."""


@dataclasses.dataclass
class LatentData:
  """Code sequences of whole segments, [num_segments, segment_steps, levels] int32."""
  train_codes: np.ndarray
  validation_codes: np.ndarray
  codebooks: np.ndarray  # [levels, codebook_size, codebook_dim] float32.


def real_crops(codes: np.ndarray, steps: int) -> np.ndarray:
  """Every non-overlapping crop of `steps` steps of every segment, [n, steps, levels]."""
  per_segment = codes.shape[1] // steps
  return codes[:, :per_segment * steps].reshape((-1, steps) + codes.shape[2:])


def load_or_encode_latents(workdir: str, source: dict,
                           encode: Callable[[], LatentData]) -> LatentData:
  """The cached codes of WORKDIR/latents.npz, or `encode()` them now and cache them.

  Every process calls this (encoding is collective); process 0 writes.

  Args:
    workdir: the GAN run.
    source: what the codes are made from (VQ-VAE workdir and step, data set,
      stems, feature version); a cache of another source is refused.
    encode: computes the codes when there is no cache.

  Raises:
    LatentCacheError: the cache was made from another VQ-VAE or data set than
      the one configured (resuming would mix two codebooks).
  """
  path = atomic_files.as_path(workdir) / LATENTS_FILENAME
  source_path = path.with_suffix('.json')
  if path.exists() and source_path.exists():
    cached_source = atomic_files.read_json(source_path)
    if cached_source != source:
      raise LatentCacheError(
          f'{workdir} was trained on the codes of {cached_source["vqvae_workdir"]} (step '
          f'{cached_source["vqvae_step"]}), but config.vqvae_workdir is {source["vqvae_workdir"]} '
          f'(step {source["vqvae_step"]}): use a new --workdir')
    cached = atomic_files.read_npz(path)
    return LatentData(cached['train_codes'], cached['validation_codes'], cached['codebooks'])
  data = encode()
  if jax.process_index() == 0:
    atomic_files.write_npz(path, train_codes=data.train_codes,
                           validation_codes=data.validation_codes, codebooks=data.codebooks)
    atomic_files.write_json(source_path, source)
    logging.info('wrote the latent cache %s: %d train and %d validation segments', path,
                 len(data.train_codes), len(data.validation_codes))
  return data
