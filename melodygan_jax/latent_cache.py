"""The GAN's data: the frozen VQ-VAE's codes of every segment, encoded once.

They live in GAN_WORKDIR/latents.npz with latents.json naming the VQ-VAE
(workdir and step) and data they came from: the VQ-VAE is fixed, so its codes
never change, and encoding on the fly would spend most of each GAN step in the
encoder. A cache made from another VQ-VAE is an error, never silently reused.
"""
import dataclasses
import os
import pathlib

import jax
import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax import input_pipeline
from melodygan_jax import parallel
from melodygan_jax import pretrained
from melodygan_jax import records

LATENTS_FILENAME = 'latents.npz'


@dataclasses.dataclass
class LatentData:
  """Code sequences of whole segments, [num_segments, segment_steps] int32."""
  train_codes: np.ndarray
  validation_codes: np.ndarray
  codebook: np.ndarray  # [codebook_size, codebook_dim] float32.


def real_crops(codes: np.ndarray, steps: int) -> np.ndarray:
  """Every non-overlapping crop of `steps` codes of every segment."""
  per_segment = codes.shape[1] // steps
  return codes[:, :per_segment * steps].reshape(-1, steps)


def encode_split(vqvae: pretrained.LoadedVQVAE, data, meta, split: str, mesh) -> np.ndarray:
  """Codes of every whole segment of a split, [num_segments, segment_steps]."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  batch_size = 8 * jax.device_count()
  codes, weights = [], []
  for local in input_pipeline.sequential_batches(
      data, meta, split, batch_size // jax.process_count(), crop_frames=meta.segment_frames,
      process_index=jax.process_index(), process_count=jax.process_count()):
    batch = parallel.global_batch(local, mesh)
    batch_codes = vqvae.jit_encode_to_codes(vqvae.state, batch['mel'])
    codes.append(np.asarray(multihost_utils.process_allgather(batch_codes, tiled=True)))
    weights.append(np.asarray(multihost_utils.process_allgather(batch['weight'], tiled=True)))
  if not codes:
    return np.zeros((0, meta.segment_frames // vqvae.time_stride), np.int32)
  return np.concatenate(codes)[np.concatenate(weights) > 0].astype(np.int32)


def load_or_encode_latents(config, workdir: str, vqvae: pretrained.LoadedVQVAE,
                           mesh) -> LatentData:
  """The cached codes of WORKDIR/latents.npz, or encode them now and cache them.

  Raises:
    pretrained.WorkdirError: the cache was made from another VQ-VAE than the
      one configured (resuming would mix two codebooks).
  """
  source = {'vqvae_workdir': os.path.abspath(vqvae.workdir), 'vqvae_step': vqvae.step,
            'dataset_dir': os.path.abspath(config.data.dataset_dir),
            'stems': list(config.data.stems)}
  path = pathlib.Path(workdir) / LATENTS_FILENAME
  source_path = path.with_suffix('.json')
  if path.exists() and source_path.exists():
    cached_source = atomic_files.read_json(source_path)
    if cached_source != source:
      raise pretrained.WorkdirError(
          f'{workdir} was trained on the codes of {cached_source["vqvae_workdir"]} (step '
          f'{cached_source["vqvae_step"]}), but config.vqvae_workdir is {source["vqvae_workdir"]} '
          f'(step {source["vqvae_step"]}): use a new --workdir')
    with np.load(path) as cached:
      return LatentData(cached['train_codes'], cached['validation_codes'], cached['codebook'])
  meta = input_pipeline.load_dataset_meta(config.data.dataset_dir)
  vqvae.replicate_on(mesh)
  data = LatentData(
      train_codes=encode_split(vqvae, config.data, meta, records.TRAIN_SPLIT, mesh),
      validation_codes=encode_split(vqvae, config.data, meta, records.VALIDATION_SPLIT, mesh),
      codebook=np.asarray(vqvae.codebook, np.float32))
  if jax.process_index() == 0:
    with atomic_files.atomic_path(path) as tmp_path:
      np.savez(tmp_path, train_codes=data.train_codes, validation_codes=data.validation_codes,
               codebook=data.codebook)
    atomic_files.write_json(source_path, source)
  return data
