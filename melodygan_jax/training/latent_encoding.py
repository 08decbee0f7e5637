"""The frozen VQ-VAE's codes of a data set: the GAN's training data.

Encoded once on every device of every host (each segment alone, as the
VQ-VAE was trained), joined into runs of adjacent segments, and cached in the
GAN's workdir (runs/latent_cache.py) with what they were encoded from.
"""
import os

import jax
import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax.audio import contract
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import records
from melodygan_jax.runs import latent_cache
from melodygan_jax.runs import loading
from melodygan_jax.training import parallel


def encode_split(vqvae: loading.LoadedVQVAE, data, meta, split: str,
                 mesh) -> latent_cache.CodeRuns:
  """Codes of every whole segment of a split, joined into runs of adjacent segments.

  Each segment is encoded alone (as the VQ-VAE was trained), then the codes of
  consecutive segments of one source and stem are concatenated.
  """
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  batch_size = 8 * jax.device_count()
  gathered = {'codes': [], 'weight': [], 'source_key': [], 'start_frame': []}
  for local in input_pipeline.sequential_batches(
      data, meta, split, batch_size // jax.process_count(), crop_frames=meta.segment_frames,
      process_index=jax.process_index(), process_count=jax.process_count(),
      with_positions=True):
    batch = parallel.global_batch(local, mesh)
    batch['codes'] = vqvae.jit_encode_to_codes(vqvae.state, batch['mel'])
    for name, values in gathered.items():
      values.append(np.asarray(multihost_utils.process_allgather(batch[name], tiled=True)))
  if not gathered['codes']:
    empty = np.zeros((0, meta.segment_frames // vqvae.time_stride, vqvae.num_levels), np.int32)
    return latent_cache.runs_of_sequences(empty)
  arrays = {name: np.concatenate(values) for name, values in gathered.items()}
  real = arrays['weight'] > 0
  keys = arrays['source_key'][real].astype(np.int64)
  return latent_cache.runs_from_segments(
      arrays['codes'][real].astype(np.int32), keys[:, 0] << 31 | keys[:, 1],
      arrays['start_frame'][real], meta.segment_frames)


def load_or_encode_latents(config, workdir: str, vqvae: loading.LoadedVQVAE,
                           mesh) -> latent_cache.LatentData:
  """The frozen VQ-VAE's codes of the data set, from the run's cache or encoded now."""
  source = {'vqvae_workdir': os.fspath(atomic_files.as_path(vqvae.workdir)),
            'vqvae_step': vqvae.step,
            'dataset_dir': os.fspath(atomic_files.as_path(config.data.dataset_dir)),
            'stems': list(config.data.stems), 'feature_version': contract.FEATURE_VERSION}

  def encode():
    meta = input_pipeline.load_dataset_meta(config.data.dataset_dir)
    vqvae.replicate_on(mesh)
    return latent_cache.LatentData(
        train=encode_split(vqvae, config.data, meta, records.TRAIN_SPLIT, mesh),
        validation=encode_split(vqvae, config.data, meta, records.VALIDATION_SPLIT, mesh),
        codebooks=np.asarray(vqvae.codebooks, np.float32))

  return latent_cache.load_or_encode_latents(workdir, source, encode)
