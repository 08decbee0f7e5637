"""Log-mel -> waveform by a learned vocoder generator, with its NNLS and Griffin-Lim priors.

The generator is convolutional over frames with no state, so a clip of any
length runs in one pass: no windows, no seams. A trained run is loaded as a
`Vocoder` by runs/loading.py.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from melodygan_jax.audio import contract
from melodygan_jax.audio import inversion
from melodygan_jax.models import vocoder as vocoder_models


def build_generator(model_config, seed: int = 0) -> vocoder_models.VocosGenerator:
  """The generator of a configs/vocoder.py `model` section, at the contract's mel and STFT."""
  return vocoder_models.from_config(model_config, num_mels=contract.NUM_MELS,
                                    n_fft=contract.N_FFT, rngs=nnx.Rngs(seed))


PRIOR_NNLS_ITERATIONS = 10  # Of the magnitude prior: Griffin-Lim's own mel inversion.
# config.model.phase_prior_start: where the phase prior's Griffin-Lim starts ('random' if absent).
PHASE_PRIOR_STARTS = ('random', 'peak_locked')


def phase_prior_of(model_config) -> tuple[int, str]:
  """(iterations, start) of a vocoder config's phase prior; runs from before the start was a
  setting started from random phases."""
  return (model_config.get('phase_prior_iterations', 0),
          model_config.get('phase_prior_start', 'random'))


def log_magnitude_prior(log_mel: jax.Array) -> jax.Array:
  """[batch, frames, NUM_MELS] -> [batch, frames, bins]: log of the NNLS mel inversion."""
  magnitude = inversion.mel_to_magnitude(jnp.exp(log_mel.astype(jnp.float32)),
                                         PRIOR_NNLS_ITERATIONS)
  return jnp.log(jnp.maximum(magnitude, contract.LOG_MEL_FLOOR))


def phase_prior(log_mel: jax.Array, rngs: jax.Array, iterations: int,
                start: str = 'random') -> jax.Array:
  """[batch, frames, NUM_MELS], [batch] keys -> [batch, frames, bins] unit phasors: the
  phase fast Griffin-Lim finds for the NNLS magnitude in `iterations`, from seeded random
  phases as GriffinLimVocoder would ('random'), or from `inversion.peak_locked_phase`
  ('peak_locked': 8 iterations from it beat 32 from random phases)."""
  magnitude = inversion.mel_to_magnitude(jnp.exp(log_mel.astype(jnp.float32)),
                                         PRIOR_NNLS_ITERATIONS)
  initial = inversion.peak_locked_phase(magnitude) if start == 'peak_locked' else None
  return jax.lax.stop_gradient(inversion.griffin_lim_phase(magnitude, rngs, iterations,
                                                           initial_phase=initial))


def priors(generator: vocoder_models.VocosGenerator, log_mel: jax.Array,
           rngs: jax.Array | None = None, phase_prior_iterations: int = 0,
           phase_prior_start: str = 'random'):
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
    phases = phase_prior(log_mel, rngs, phase_prior_iterations, phase_prior_start)
  return magnitude, phases


def synthesize_with_priors(generator: vocoder_models.VocosGenerator, log_mel: jax.Array,
                           generator_priors) -> tuple[jax.Array, jax.Array]:
  """As `synthesize`, from priors computed once (outside a gradient, in training):
  (audio, the predicted STFT it is the inverse of)."""
  spectrum = generator(log_mel, *generator_priors).astype(jnp.complex64)
  return inversion.istft(spectrum, (log_mel.shape[1] - 1) * contract.HOP_LENGTH), spectrum


def synthesize(generator: vocoder_models.VocosGenerator, log_mel: jax.Array,
               rngs: jax.Array | None = None, phase_prior_iterations: int = 0,
               mel_refinement_iterations: int = 0,
               phase_prior_start: str = 'random') -> jax.Array:
  """[batch, frames, NUM_MELS] log-mel -> [batch, (frames - 1) * HOP_LENGTH] float32 audio.

  `mel_refinement_iterations` > 0: the predicted STFT is refined into a waveform
  whose mel is the one given (`inversion.mel_consistent`); the training losses see
  the generator's own output unless `loss.refinement_iterations` refines it there too.
  """
  generator_priors = priors(generator, log_mel, rngs, phase_prior_iterations, phase_prior_start)
  if not mel_refinement_iterations:
    return synthesize_with_priors(generator, log_mel, generator_priors)[0]
  spectrum = generator(log_mel, *generator_priors).astype(jnp.complex64)
  return refine_to_mel(spectrum, log_mel, mel_refinement_iterations)


def refine_to_mel(spectrum: jax.Array, log_mel: jax.Array, iterations: int) -> jax.Array:
  """The generator's STFT refined `iterations` steps into a waveform whose mel is
  `log_mel` (`inversion.mel_consistent`)."""
  return inversion.mel_consistent(spectrum, jnp.exp(log_mel.astype(jnp.float32)), iterations)
