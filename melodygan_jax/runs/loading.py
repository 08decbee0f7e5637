"""Loading finished runs from their workdirs, for use: a VQ-VAE, a GAN, a vocoder.

Only what inference needs is restored from a checkpoint: the VQ-VAE's
parameters and codebook, the GAN's EMA generator, the vocoder's generator. No
optimizer is built and no training code is imported; the trainers load the
runs they build on (a GAN's VQ-VAE, a vocoder to fine-tune) through here too.
What a workdir holds is in runs/workdir.py.
"""
import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from melodygan_jax.audio import contract
from melodygan_jax.audio import inversion
from melodygan_jax.audio import neural_vocoder
from melodygan_jax.data import normalization as normalization_lib
from melodygan_jax.models import gan as gan_models
from melodygan_jax.models import quantizer as quantizer_lib
from melodygan_jax.models import vqvae as vqvae_models
from melodygan_jax.runs import checkpoints
from melodygan_jax.runs import workdir as workdir_lib


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
  config = workdir_lib.check_ready(workdir, 'vqvae')
  normalization = workdir_lib.read_normalization(workdir)
  # Its structure only (nnx.eval_shape): the initial weights the checkpoint replaces would
  # cost seconds to draw, op by op.
  model = nnx.eval_shape(lambda: vqvae_models.from_config(config.model, rngs=nnx.Rngs(0),
                                                          num_mels=contract.NUM_MELS))
  graphdef, params, codebook = nnx.split(model, nnx.Param, quantizer_lib.CodebookVariable)
  restored, restored_step = checkpoints.restore(
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
  style_strength: float = 1.0  # Global noise scale at sampling (runs/style_strength.py).

  @property
  def temperature(self) -> float:
    return gan_models.generator_temperature(self.config.model)

  @functools.cached_property
  def beat_clock(self):
    """The generator's trained beat clock or rhythm bank (None without): a bank holds
    the songs' envelopes, which a clock rebuilt from the config would not."""
    return nnx.merge(self.graphdef, self.params).beat_clock

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


def load_generator(workdir: str) -> LoadedGenerator:
  """Restores a GAN run's EMA generator and its VQ-VAE.

  Raises:
    WorkdirError: missing or mismatched workdirs, one line.
  """
  config = workdir_lib.check_ready(workdir, 'gan')
  vqvae = load_vqvae(workdir_lib.gan_vqvae_workdir(workdir, config))
  num_levels, codebook_size, codebook_dim = np.asarray(vqvae.codebooks).shape
  generator = nnx.eval_shape(lambda: gan_models.generator_from_config(
      config.model, num_levels=num_levels, codebook_size=codebook_size,
      codebook_dim=codebook_dim, seed=0))
  graphdef, params = nnx.split(generator)
  restored, step = checkpoints.restore(workdir, {'generator_ema': params})
  return LoadedGenerator(config=config, vqvae=vqvae, graphdef=graphdef,
                         params=jax.device_get(restored['generator_ema']), step=step,
                         workdir=workdir)


@dataclasses.dataclass
class NeuralVocoder:
  """A vocoder run's generator, as a `Vocoder` (inversion.Vocoder protocol)."""
  workdir: str
  config: ml_collections.ConfigDict
  step: int
  graphdef: nnx.GraphDef
  params: nnx.State

  def __call__(self, log_mel: jax.Array, rngs: jax.Array) -> jax.Array:
    """[batch, frames, NUM_MELS] -> [batch, (frames - 1) * HOP_LENGTH]; `rngs` (one key
    per clip) seed the phase prior's Griffin-Lim where the model has one."""
    return self._jit_synthesize(self.params, jnp.asarray(log_mel, jnp.float32), rngs)

  @functools.cached_property
  def _jit_synthesize(self):
    iterations, start = neural_vocoder.phase_prior_of(self.config.model)
    return jax.jit(lambda params, log_mel, rngs: neural_vocoder.synthesize(
        nnx.merge(self.graphdef, params), log_mel, rngs, iterations,
        self.mel_refinement_iterations, start))

  @property
  def mel_refinement_iterations(self) -> int:
    return self.config.model.get('mel_refinement_iterations', 0)  # 0 in runs from before it.

  def describe(self) -> dict:
    """What a manifest records about the vocoder used."""
    iterations, start = neural_vocoder.phase_prior_of(self.config.model)
    return {'kind': 'neural', 'workdir': self.workdir, 'step': self.step,
            'variant': self.config.model.variant,
            'mel_refinement_iterations': self.mel_refinement_iterations,
            'phase_prior_iterations': iterations, 'phase_prior_start': start}


def load_vocoder(workdir: str, step: int | None = None,
         mel_refinement_iterations: int | None = None,
         phase_prior: tuple[int, str] | None = None) -> NeuralVocoder:
  """Restores a vocoder run's generator (latest checkpoint unless `step`).

  `mel_refinement_iterations` and `phase_prior` ((iterations, start) of a run that has a
  phase prior) replace the run's own settings at inference (None keeps them).

  Raises:
    workdir_lib.WorkdirError: not a vocoder workdir, no checkpoint, other mel
      settings, or weights that do not match its config.
  """
  config = workdir_lib.read_config(workdir, 'vocoder')
  workdir_lib.check_features(workdir)
  # Inference computes in float32 wherever the run trained: the model is small, and
  # bfloat16's 8-bit mantissa would add its own noise to the phase.
  config.model.dtype = 'float32'
  with config.unlocked():
    if mel_refinement_iterations is not None:
      if mel_refinement_iterations < 0:
        raise ValueError(f'mel_refinement_iterations={mel_refinement_iterations}: must be >= 0 '
                         '(0: unrefined)')
      config.model.mel_refinement_iterations = mel_refinement_iterations
    if phase_prior is not None:
      if not neural_vocoder.phase_prior_of(config.model)[0]:
        raise workdir_lib.WorkdirError(f'{workdir}: this vocoder was trained without a phase '
                                       'prior; it cannot take one')
      iterations, start = phase_prior
      if iterations < 1 or start not in neural_vocoder.PHASE_PRIOR_STARTS:
        raise ValueError(f'phase_prior={phase_prior}: at least 1 iteration, from one of '
                         f'{neural_vocoder.PHASE_PRIOR_STARTS}')
      config.model.phase_prior_iterations, config.model.phase_prior_start = phase_prior
  generator = nnx.eval_shape(lambda: neural_vocoder.build_generator(config.model))
  graphdef, params = nnx.split(generator)
  restored, restored_step = checkpoints.restore(workdir, {'generator': params}, step)
  return NeuralVocoder(workdir=str(workdir), config=config, step=restored_step,
                       graphdef=graphdef,
                       params=jax.tree.map(jnp.asarray, restored['generator']))


def describe_vocoder(vocoder) -> dict:
  """The manifest entry of any `Vocoder`: a neural one names its run, else Griffin-Lim's settings."""
  if isinstance(vocoder, NeuralVocoder):
    return vocoder.describe()
  if isinstance(vocoder, inversion.GriffinLimVocoder):
    return {'kind': 'griffin_lim', 'iterations': vocoder.iterations,
            'nnls_iterations': vocoder.nnls_iterations, 'momentum': vocoder.momentum,
            'mel_refinement_iterations': vocoder.mel_refinement_iterations}
  return {'kind': type(vocoder).__name__}


def vocoder_from_flag(vocoder_workdir: str | None, griffin_lim_iterations: int = 32):
  """The vocoder a CLI uses: the run in `vocoder_workdir`, else Griffin-Lim."""
  if vocoder_workdir:
    return load_vocoder(vocoder_workdir)
  return inversion.GriffinLimVocoder(iterations=griffin_lim_iterations)

