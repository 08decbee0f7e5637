"""A trained vocoder run as a `Vocoder`: log-mel -> waveform by the learned model.

A vocoder workdir records the mel settings it was trained on
(WORKDIR/features.json, `contract.feature_settings()`); loading one trained on
other settings is refused with one line, since its model would hear features
it never learnt. Only the generator's parameters are restored.

The generator is convolutional over frames with no state, so a clip of any
length runs in one pass: no windows, no seams.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from melodygan_jax import atomic_files
from melodygan_jax.audio import contract
from melodygan_jax.audio import inversion
from melodygan_jax.generation import pretrained
from melodygan_jax.models import vocoder as vocoder_models

FEATURES_FILENAME = 'features.json'


def build_generator(model_config, seed: int = 0) -> vocoder_models.VocosGenerator:
  """The generator of a configs/vocoder.py `model` section, at the contract's mel and STFT."""
  return vocoder_models.from_config(model_config, num_mels=contract.NUM_MELS,
                                    n_fft=contract.N_FFT, rngs=nnx.Rngs(seed))


PRIOR_NNLS_ITERATIONS = 10  # Of the magnitude prior: Griffin-Lim's own mel inversion.


def log_magnitude_prior(log_mel: jax.Array) -> jax.Array:
  """[batch, frames, NUM_MELS] -> [batch, frames, bins]: log of the NNLS mel inversion."""
  magnitude = inversion.mel_to_magnitude(jnp.exp(log_mel.astype(jnp.float32)),
                                         PRIOR_NNLS_ITERATIONS)
  return jnp.log(jnp.maximum(magnitude, contract.LOG_MEL_FLOOR))


def phase_prior(log_mel: jax.Array, rngs: jax.Array, iterations: int) -> jax.Array:
  """[batch, frames, NUM_MELS], [batch] keys -> [batch, frames, bins] unit phasors: the
  phase fast Griffin-Lim finds for the NNLS magnitude, as GriffinLimVocoder would."""
  magnitude = inversion.mel_to_magnitude(jnp.exp(log_mel.astype(jnp.float32)),
                                         PRIOR_NNLS_ITERATIONS)
  return jax.lax.stop_gradient(inversion.griffin_lim_phase(magnitude, rngs, iterations))


def priors(generator: vocoder_models.VocosGenerator, log_mel: jax.Array,
           rngs: jax.Array | None = None, phase_prior_iterations: int = 0):
  """(log-magnitude prior, phase prior) of the generator's inputs, None where it has none.

  `rngs` (one key per clip; default: clip b gets fold_in(key(0), b)) seed the
  phase prior's Griffin-Lim.
  """
  magnitude = log_magnitude_prior(log_mel) if generator.magnitude_prior else None
  phases = None
  if generator.phase_prior:
    if rngs is None:
      rngs = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(
          jnp.arange(log_mel.shape[0]))
    phases = phase_prior(log_mel, rngs, phase_prior_iterations)
  return magnitude, phases


def synthesize_with_priors(generator: vocoder_models.VocosGenerator, log_mel: jax.Array,
                           generator_priors) -> tuple[jax.Array, jax.Array]:
  """As `synthesize`, from priors computed once (outside a gradient, in training):
  (audio, the predicted STFT it is the inverse of)."""
  spectrum = generator(log_mel, *generator_priors).astype(jnp.complex64)
  return inversion.istft(spectrum, (log_mel.shape[1] - 1) * contract.HOP_LENGTH), spectrum


def synthesize(generator: vocoder_models.VocosGenerator, log_mel: jax.Array,
               rngs: jax.Array | None = None, phase_prior_iterations: int = 0,
               mel_refinement_iterations: int = 0) -> jax.Array:
  """[batch, frames, NUM_MELS] log-mel -> [batch, (frames - 1) * HOP_LENGTH] float32 audio.

  `mel_refinement_iterations` > 0: the predicted STFT is refined into a waveform
  whose mel is the one given (`inversion.mel_consistent`); inference only, the
  training losses see the generator's own output.
  """
  generator_priors = priors(generator, log_mel, rngs, phase_prior_iterations)
  if not mel_refinement_iterations:
    return synthesize_with_priors(generator, log_mel, generator_priors)[0]
  spectrum = generator(log_mel, *generator_priors).astype(jnp.complex64)
  return inversion.mel_consistent(spectrum, jnp.exp(log_mel.astype(jnp.float32)),
                                  mel_refinement_iterations)


def write_features(workdir: str) -> None:
  """WORKDIR/features.json: the mel settings a vocoder run is trained on."""
  if jax.process_index() == 0:
    atomic_files.write_json(atomic_files.as_path(workdir) / FEATURES_FILENAME,
                            contract.feature_settings())


def check_features(workdir: str) -> None:
  """Refuses a vocoder workdir whose mel settings are not this code's.

  Raises:
    pretrained.WorkdirError: features.json missing or different (one line).
  """
  path = atomic_files.as_path(workdir) / FEATURES_FILENAME
  if not path.exists():
    raise pretrained.WorkdirError(f'{workdir}: no {FEATURES_FILENAME}, so its mel settings '
                                  'are unknown; retrain the vocoder in a new --workdir')
  recorded = atomic_files.read_json(path)
  expected = contract.feature_settings()
  changed = [f'{name} {recorded.get(name)!r} (now {value!r})'
             for name, value in expected.items() if recorded.get(name) != value]
  if changed:
    raise pretrained.WorkdirError(
        f'{workdir}: trained on other mel settings: {", ".join(changed)}; this code computes '
        f'{contract.FEATURE_DESCRIPTION}: retrain the vocoder in a new --workdir')


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
    iterations = self.config.model.get('phase_prior_iterations', 0)
    return jax.jit(lambda params, log_mel, rngs: synthesize(
        nnx.merge(self.graphdef, params), log_mel, rngs, iterations,
        self.mel_refinement_iterations))

  @property
  def mel_refinement_iterations(self) -> int:
    return self.config.model.get('mel_refinement_iterations', 0)  # 0 in runs from before it.

  def describe(self) -> dict:
    """What a manifest records about the vocoder used."""
    return {'kind': 'neural', 'workdir': self.workdir, 'step': self.step,
            'variant': self.config.model.variant,
            'mel_refinement_iterations': self.mel_refinement_iterations}


def load(workdir: str, step: int | None = None,
         mel_refinement_iterations: int | None = None) -> NeuralVocoder:
  """Restores a vocoder run's generator (latest checkpoint unless `step`).

  `mel_refinement_iterations` replaces the run's own setting (None keeps it).

  Raises:
    pretrained.WorkdirError: not a vocoder workdir, no checkpoint, other mel
      settings, or weights that do not match its config.
  """
  config = pretrained.read_config(workdir, 'vocoder')
  check_features(workdir)
  # Inference computes in float32 wherever the run trained: the model is small, and
  # bfloat16's 8-bit mantissa would add its own noise to the phase.
  config.model.dtype = 'float32'
  if mel_refinement_iterations is not None:
    with config.unlocked():
      config.model.mel_refinement_iterations = mel_refinement_iterations
  graphdef, params = nnx.split(build_generator(config.model))
  restored, restored_step = pretrained.restore_subtrees(workdir, {'generator': params}, step)
  return NeuralVocoder(workdir=str(workdir), config=config, step=restored_step,
                       graphdef=graphdef,
                       params=jax.tree.map(jnp.asarray, restored['generator']))


def describe(vocoder) -> dict:
  """The manifest entry of any `Vocoder`: a neural one names its run, else Griffin-Lim's settings."""
  if isinstance(vocoder, NeuralVocoder):
    return vocoder.describe()
  if isinstance(vocoder, inversion.GriffinLimVocoder):
    return {'kind': 'griffin_lim', 'iterations': vocoder.iterations,
            'nnls_iterations': vocoder.nnls_iterations, 'momentum': vocoder.momentum,
            'mel_refinement_iterations': vocoder.mel_refinement_iterations}
  return {'kind': type(vocoder).__name__}


def from_flag(vocoder_workdir: str | None, griffin_lim_iterations: int = 32):
  """The vocoder a CLI uses: the run in `vocoder_workdir`, else Griffin-Lim."""
  if vocoder_workdir:
    return load(vocoder_workdir)
  return inversion.GriffinLimVocoder(iterations=griffin_lim_iterations)

