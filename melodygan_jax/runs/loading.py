"""Loading finished runs from their workdirs, for inference.

Only what inference needs is restored from a checkpoint: the VQ-VAE's
parameters and codebook, the GAN's EMA generator. No optimizer is built and no
training code is imported. A workdir is self-contained: its config.json, its
normalization.json (the data set's statistics, copied at the start of
training) and its checkpoints; a GAN workdir also holds a copy of the VQ-VAE it
was trained on (WORKDIR/vqvae), so a copied workdir samples anywhere.
"""
import dataclasses
import functools
import os

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from melodygan_jax import atomic_files
from melodygan_jax.audio import contract
from melodygan_jax.data import normalization as normalization_lib
from melodygan_jax.models import gan as gan_models
from melodygan_jax.models import quantizer as quantizer_lib
from melodygan_jax.models import vqvae as vqvae_models

CHECKPOINTS_DIRNAME = 'checkpoints'
VQVAE_COPY_DIRNAME = 'vqvae'  # In a GAN workdir: the VQ-VAE it was trained on.


class WorkdirError(ValueError):
  """A workdir that cannot be used; str() names the path and the problem."""


def read_config(workdir: str, expected_trainer: str) -> ml_collections.ConfigDict:
  """WORKDIR/config.json as a ConfigDict, checked to be of `expected_trainer`."""
  path = atomic_files.as_path(workdir or '.') / 'config.json'
  if not workdir or not path.exists():
    raise WorkdirError(f'{workdir!r} is not a {expected_trainer} workdir: {path} is missing '
                       f'(train it first with configs/{expected_trainer}.py)')
  config = ml_collections.ConfigDict(atomic_files.read_json(path))
  if config.get('trainer') != expected_trainer:
    raise WorkdirError(f'{workdir} holds a {config.get("trainer")!r} run, not a '
                       f'{expected_trainer} run')
  return config


def latest_step(workdir: str) -> int | None:
  folder = atomic_files.as_path(workdir) / CHECKPOINTS_DIRNAME
  steps = [int(p.name) for p in folder.glob('*') if p.name.isdigit()] if folder.exists() else []
  return max(steps) if steps else None


def restore_subtrees(workdir: str, abstract: dict, step: int | None = None,
                     mesh: Mesh | None = None) -> tuple[dict, int]:
  """Restores only the named top-level entries of a run's train-state checkpoint.

  Args:
    workdir: a finished run.
    abstract: {name: pytree of arrays or ShapeDtypeStructs}, e.g. {'params': ...}.
    step: default: the latest.
    mesh: restore every array replicated over this mesh (each process reads
      its own devices' copies: the way onto other hosts' devices); default:
      where the arrays of `abstract` are.

  Returns:
    (the restored entries, the step).

  Raises:
    WorkdirError: no checkpoint, or one whose arrays do not match.
  """
  step = latest_step(workdir) if step is None else step
  if step is None:
    raise WorkdirError(f'{workdir}: no checkpoint in {os.path.join(workdir, CHECKPOINTS_DIRNAME)}')
  directory = atomic_files.as_path(workdir) / CHECKPOINTS_DIRNAME
  # Where each array goes is given, not read from the checkpoint: inference runs
  # on whatever devices this machine has, not the ones the run was saved from.
  replicated = None if mesh is None else NamedSharding(mesh, PartitionSpec())
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
      x.shape, x.dtype, sharding=replicated or x.sharding), abstract)
  try:
    with ocp.CheckpointManager(directory) as manager:
      # restore_args carry the target shardings; without them Orbax places
      # arrays as they were saved, on devices this machine may not have.
      restored = manager.restore(step, args=ocp.args.PyTreeRestore(
          item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
          partial_restore=True))
  except (ValueError, KeyError, FileNotFoundError) as e:
    raise WorkdirError(f'{workdir}: its checkpoint does not match its config.json '
                       f'({" ".join(str(e).split())[:200]})') from e
  return restored, int(step)


def read_normalization(workdir: str) -> normalization_lib.Normalization:
  """WORKDIR/normalization.json, checked to be of this code's feature version.

  Raises:
    WorkdirError: the file is missing (a run from before workdirs kept it,
      hence of feature version 1) or of another feature version.
  """
  path = atomic_files.as_path(workdir) / normalization_lib.NORMALIZATION_FILENAME
  if not path.exists():
    stats = {'feature_version': 1}  # Runs that predate the file all had version 1.
  else:
    stats = atomic_files.read_json(path)
  try:
    return normalization_lib.Normalization.from_stats(stats, str(path))
  except normalization_lib.NormalizationError as e:
    raise WorkdirError(str(e)) from e


@flax.struct.dataclass
class VQVAEWeights:
  params: nnx.State
  codebook: nnx.State  # Quantizer variables.


@dataclasses.dataclass
class LoadedVQVAE:
  """A trained VQ-VAE, ready to encode and decode."""
  workdir: str
  config: ml_collections.ConfigDict
  step: int
  graphdef: nnx.GraphDef
  state: VQVAEWeights
  normalization: normalization_lib.Normalization
  mesh: Mesh | None = None  # Where `state` is replicated; None: one local device.

  @property
  def time_stride(self) -> int:
    return int(np.prod(self.config.model.strides))

  @property
  def num_levels(self) -> int:
    return int(self.config.model.num_levels)

  @property
  def codebook_size(self) -> int:
    return int(self.config.model.codebook_size)

  def bits_per_second(self, num_levels: int | None = None) -> float:
    """Bit rate of the codes of the first `num_levels` levels (default: all)."""
    return contract.code_bits_per_second(num_levels or self.num_levels, self.codebook_size,
                                         self.time_stride)

  @functools.cached_property
  def codebooks(self) -> jax.Array:
    """[levels, codebook_size, dim]: latent = sum over levels of codebooks[l][code_l]."""
    return self.model().quantizer.codebooks()

  def model(self) -> vqvae_models.VQVAE:
    return nnx.merge(self.graphdef, self.state.params, self.state.codebook)

  def _jit_method(self, method):
    return jax.jit(lambda state, x: getattr(nnx.merge(
        self.graphdef, state.params, state.codebook), method)(x))

  @functools.cached_property
  def jit_encode_to_codes(self):
    """[batch, frames, mels] normalized log-mel -> [batch, frames / stride, levels] codes."""
    return self._jit_method('encode_to_codes')

  @functools.cached_property
  def jit_decode_codes(self):
    """[batch, steps, n] codes of the first n levels -> [batch, steps * stride, mels]."""
    return self._jit_method('decode_codes')

  @functools.cached_property
  def jit_encoder(self):
    """[batch, frames, mels] normalized log-mel -> unquantized [batch, steps, dim]."""
    return jax.jit(lambda state, mel: nnx.merge(
        self.graphdef, state.params, state.codebook).encoder(mel))

  @functools.cached_property
  def jit_outputs(self):
    """[batch, frames, mels] normalized log-mel -> (reconstruction, aux with 'codes')."""
    return jax.jit(lambda state, mel: nnx.merge(self.graphdef, state.params, state.codebook)(mel))

  @functools.cached_property
  def jit_reconstruct(self):
    """[batch, frames, mels] normalized log-mel -> its reconstruction."""
    return jax.jit(lambda state, mel: nnx.merge(
        self.graphdef, state.params, state.codebook)(mel)[0])

  def replicate_on(self, mesh: Mesh) -> None:
    """Puts the weights on every device of `mesh`, to run on batches sharded there.

    Through host memory: weights committed to one local device cannot be
    `device_put` onto a mesh that spans other hosts (`load_vqvae(mesh=...)`
    restores them in place instead).
    """
    if self.mesh is mesh:
      return
    sharding = NamedSharding(mesh, PartitionSpec())
    host = jax.device_get(self.state)
    self.state = jax.tree.map(lambda x: jax.make_array_from_callback(
        x.shape, sharding, lambda index: x[index]), host)
    self.mesh = mesh

  def normalize(self, log_mel: np.ndarray, stem: str) -> np.ndarray:
    return self.normalization.normalize(log_mel, stem)

  def denormalize(self, normalized: np.ndarray, stem: str) -> np.ndarray:
    return self.normalization.denormalize(normalized, stem)

  def codes_to_log_mel(self, codes: np.ndarray, stem: str) -> np.ndarray:
    """[batch, steps, n] codes of the first n levels -> [batch, steps * stride, NUM_MELS]
    log-mel (un-normalized)."""
    codes = np.asarray(codes, np.int32)
    if self.mesh is not None:  # The same codes on every process: replicate them too.
      codes = jax.make_array_from_callback(
          codes.shape, NamedSharding(self.mesh, PartitionSpec()), lambda index: codes[index])
    normalized = self.jit_decode_codes(self.state, codes)
    return self.denormalize(np.asarray(normalized), stem)


def _check_ready(workdir: str, trainer: str) -> ml_collections.ConfigDict:
  config = read_config(workdir, trainer)
  if latest_step(workdir) is None:
    raise WorkdirError(f'{workdir}: no checkpoint in {os.path.join(workdir, CHECKPOINTS_DIRNAME)}')
  return config


def load_vqvae(workdir: str, step: int | None = None, mesh: Mesh | None = None) -> LoadedVQVAE:
  """Restores a VQ-VAE run's parameters and codebook (latest checkpoint unless `step`).

  Args:
    workdir: a finished VQ-VAE run.
    step: default: the latest checkpoint.
    mesh: restore the weights replicated over this mesh (all hosts' devices in
      a multi-process run); default: this machine's default device.

  Raises:
    WorkdirError: not a VQ-VAE workdir, no checkpoint, weights that do not
      match its config, or features of another version.
  """
  config = _check_ready(workdir, 'vqvae')
  normalization = read_normalization(workdir)
  model = vqvae_models.from_config(config.model, rngs=nnx.Rngs(0), num_mels=contract.NUM_MELS)
  graphdef, params, codebook = nnx.split(model, nnx.Param, quantizer_lib.CodebookVariable)
  restored, restored_step = restore_subtrees(
      workdir, {'params': params, 'codebook': codebook}, step, mesh)
  place = jnp.asarray if mesh is None else lambda x: x  # Orbax placed them on the mesh.
  state = VQVAEWeights(params=jax.tree.map(place, restored['params']),
                       codebook=jax.tree.map(place, restored['codebook']))
  return LoadedVQVAE(workdir=str(workdir), config=config, step=restored_step,
                     graphdef=graphdef, state=state, normalization=normalization, mesh=mesh)


@dataclasses.dataclass
class LoadedGenerator:
  """A GAN run's EMA generator and the VQ-VAE that decodes its codes."""
  config: ml_collections.ConfigDict
  vqvae: LoadedVQVAE
  graphdef: nnx.GraphDef
  params: nnx.State  # The EMA generator's weights.
  step: int
  workdir: str

  @property
  def temperature(self) -> float:
    return gan_models.generator_temperature(self.config.model)

  @property
  def window_steps(self) -> int:
    """Codes per generation window: the training crop (long samples are windowed)."""
    data = self.config.data
    if 'crop_steps' in data:
      return int(data.crop_steps)
    return int(data.crop_frames) // self.vqvae.time_stride  # Runs from before crop_steps.

  @property
  def context_steps(self) -> int:
    """Coordinates a window sees beyond each edge: half the receptive field, so
    windows compute what one pass would (generation/long_form.py)."""
    return gan_models.receptive_field(self.config.model.generator_dilations) // 2


def gan_vqvae_workdir(workdir: str, config) -> str:
  """The GAN's own copy of its VQ-VAE, or (older runs) the one its config names."""
  copy = atomic_files.as_path(workdir) / VQVAE_COPY_DIRNAME
  return os.fspath(copy) if (copy / 'config.json').exists() else config.vqvae_workdir


def load_generator(workdir: str) -> LoadedGenerator:
  """Restores a GAN run's EMA generator and its VQ-VAE.

  Raises:
    WorkdirError: missing or mismatched workdirs, one line.
  """
  config = _check_ready(workdir, 'gan')
  vqvae = load_vqvae(gan_vqvae_workdir(workdir, config))
  num_levels, codebook_size, codebook_dim = np.asarray(vqvae.codebooks).shape
  generator = gan_models.generator_from_config(
      config.model, num_levels=num_levels, codebook_size=codebook_size,
      codebook_dim=codebook_dim, seed=0)
  graphdef, params = nnx.split(generator)
  restored, step = restore_subtrees(workdir, {'generator_ema': params})
  return LoadedGenerator(config=config, vqvae=vqvae, graphdef=graphdef,
                         params=jax.device_get(restored['generator_ema']), step=step,
                         workdir=workdir)
