"""Loading finished runs from their workdirs (config.json + Orbax checkpoint).

Sampling, reconstruction, evaluation and GAN training all start from a trained
VQ-VAE; `load_vqvae` gives them its model, weights and normalization stats,
or a one-line `WorkdirError` naming the path and what is missing.
"""
import dataclasses
import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from melodygan_jax import atomic_files
from melodygan_jax import checkpoints


class WorkdirError(ValueError):
  """A workdir that cannot be used; str() names the path and the problem."""


def read_config(workdir: str, expected_trainer: str) -> ml_collections.ConfigDict:
  """WORKDIR/config.json as a ConfigDict, checked to be of `expected_trainer`."""
  path = pathlib.Path(workdir or '') / 'config.json'
  if not workdir or not path.exists():
    raise WorkdirError(f'{workdir!r} is not a {expected_trainer} workdir: {path} is missing '
                       f'(train it first with configs/{expected_trainer}.py)')
  config = ml_collections.ConfigDict(atomic_files.read_json(path))
  if config.get('trainer') != expected_trainer:
    raise WorkdirError(f'{workdir} holds a {config.get("trainer")!r} run, not a '
                       f'{expected_trainer} run')
  return config


def latest_step(workdir: str) -> int | None:
  folder = pathlib.Path(workdir) / 'checkpoints'
  steps = [int(p.name) for p in folder.glob('*') if p.name.isdigit()] if folder.exists() else []
  return max(steps) if steps else None


@dataclasses.dataclass
class LoadedVQVAE:
  """A trained VQ-VAE, ready to encode and decode."""
  workdir: str
  config: ml_collections.ConfigDict
  step: int
  graphdef: nnx.GraphDef
  state: object  # trainers.vqvae.TrainState (params + codebook).
  stats: dict  # The data set's stats.json (normalization per stem).

  @property
  def time_stride(self) -> int:
    return int(np.prod(self.config.model.strides))

  @property
  def codebook(self) -> jax.Array:
    return self.state.codebook['quantizer']['codebook'][...]

  def model(self):
    return nnx.merge(self.graphdef, self.state.params, self.state.codebook)

  @functools.cached_property
  def jit_encode_to_codes(self):
    """[batch, frames, mels] normalized log-mel -> [batch, frames / stride] codes."""
    return jax.jit(lambda state, mel: nnx.merge(
        self.graphdef, state.params, state.codebook).encode_to_codes(mel))

  @functools.cached_property
  def jit_decode_codes(self):
    """[batch, steps] codes -> [batch, steps * stride, mels] normalized log-mel."""
    return jax.jit(lambda state, codes: nnx.merge(
        self.graphdef, state.params, state.codebook).decode_codes(codes))

  @functools.cached_property
  def jit_reconstruct(self):
    """[batch, frames, mels] normalized log-mel -> its reconstruction."""
    from melodygan_jax.trainers import vqvae as vqvae_trainer  # pylint: disable=g-import-not-at-top
    return jax.jit(functools.partial(vqvae_trainer.reconstruct, self.graphdef))

  @functools.cached_property
  def jit_decode_latents(self):
    return jax.jit(lambda state, latents: nnx.merge(
        self.graphdef, state.params, state.codebook).decode(latents))

  def replicate_on(self, mesh) -> None:
    """Puts the weights on every device of `mesh`, to run on batches sharded there."""
    from melodygan_jax import parallel  # pylint: disable=g-import-not-at-top
    self.state = jax.device_put(self.state, parallel.replicated(mesh))

  def normalization(self, stem: str) -> tuple[np.ndarray, np.ndarray]:
    if stem not in self.stats['stems']:
      raise WorkdirError(f'{self.workdir}: its data set has no {stem!r} statistics '
                         f'(has {", ".join(self.stats["stems"])})')
    entry = self.stats['stems'][stem]
    return (np.asarray(entry['log_mel_mean'], np.float32),
            np.asarray(entry['log_mel_std'], np.float32))

  def normalize(self, log_mel: np.ndarray, stem: str) -> np.ndarray:
    mean, std = self.normalization(stem)
    return (log_mel - mean) / std

  def denormalize(self, normalized: np.ndarray, stem: str) -> np.ndarray:
    mean, std = self.normalization(stem)
    return np.asarray(normalized) * std + mean


def load_vqvae(workdir: str, step: int | None = None) -> LoadedVQVAE:
  """Restores a VQ-VAE run (latest checkpoint unless `step`).

  Raises:
    WorkdirError: not a VQ-VAE workdir, no checkpoint, or weights that do not
      match its config.
  """
  from melodygan_jax.trainers import vqvae as vqvae_trainer  # pylint: disable=g-import-not-at-top
  config = read_config(workdir, 'vqvae')
  if latest_step(workdir) is None:
    raise WorkdirError(f'{workdir}: no checkpoint in {os.path.join(workdir, "checkpoints")}')
  graphdef, state, _, _ = vqvae_trainer.init_state(config)
  try:
    state, restored_step = checkpoints.restore_step(workdir, state, step)
  except (ValueError, KeyError, FileNotFoundError) as e:
    raise WorkdirError(f'{workdir}: its checkpoint does not match its config.json '
                       f'({" ".join(str(e).split())[:200]})') from e
  stats_path = pathlib.Path(config.data.dataset_dir) / 'stats.json'
  if not stats_path.exists():
    raise WorkdirError(f'{workdir}: the data set it was trained on is gone ({stats_path} '
                       'is missing; its normalization is needed to encode and decode)')
  stats = atomic_files.read_json(stats_path)
  state = jax.tree.map(jnp.asarray, state)
  return LoadedVQVAE(workdir=str(workdir), config=config, step=int(restored_step),
                     graphdef=graphdef, state=state, stats=stats)
