"""Style strength: how far a GAN run's global noise is scaled at sampling, measured per run.

The generator adds its global noise (the piece's character, generation/style.py)
to the per-step inputs (noise and the songs' rhythm) and its output follows
both. Trained on short crops, it follows the step inputs more than the songs
do: on the 1-hour create run (docs/create.md, "How strongly a piece keeps its
character") its pieces change their first-level code at 87-90% of the steps
where the training songs change it at 73%, and they hold their harmony less
(chroma stability 0.43 against the codec's 0.57). Scaled up at sampling, the
character holds more of each piece (0.58 at the measured strength 2.33);
scaled down (BigGAN's truncation) it holds less here, not more.

How far is measured on the run itself, not chosen by ear: the strength at
which generated pieces change their first-level code as often as the training
codes do (bisection over STRENGTH_RANGE on a fixed batch of pieces, each three
training crops long, generated in one pass as long form computes them). The GAN
trainer measures it at each evaluation of the music profile and writes it
beside the checkpoint (STRENGTH_FILENAME); loading a run at a step without one
measures it then. `--style_strength` in sample and evaluate replaces it (1 = the
noise as trained).
"""
import dataclasses
import functools
import math
from typing import Callable

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax.models import gan as gan_models
from melodygan_jax.runs import latent_cache
from melodygan_jax.runs import loading
from melodygan_jax.runs import workdir as workdir_lib

STRENGTH_FILENAME = workdir_lib.STYLE_STRENGTH_FILENAME
STRENGTH_RANGE = (0.5, 8.0)
# Pieces generated at each strength tried, each CALIBRATION_WINDOWS training crops long. A
# piece's rate varies (sd 0.13-0.23 on the 1-hour run's GAN): 128 of them put the mean
# within about 0.02, a tenth of a strength.
CALIBRATION_CROPS = 128
CALIBRATION_WINDOWS = 3
BISECTION_STEPS = 6  # The range is 4 octaves: 6 halvings leave 4% of a strength.
CALIBRATION_SEED = 7


def change_rate(codes: np.ndarray, lengths=None) -> float:
  """Share of steps whose first-level code differs from the step before.

  Args:
    codes: [steps, levels] (runs end to end, `lengths` each) or [batch, steps, levels].
    lengths: the runs' lengths for end-to-end codes; steps across a run's end
      are not counted.
  """
  codes = np.asarray(codes)
  if codes.ndim == 3:
    return float(np.mean(codes[:, 1:, 0] != codes[:, :-1, 0]))
  changed = codes[1:, 0] != codes[:-1, 0]
  if lengths is not None:
    within = np.ones(len(changed), bool)
    within[np.cumsum(lengths)[:-1] - 1] = False
    changed = changed[within]
  return float(np.mean(changed))


@dataclasses.dataclass(frozen=True)
class Calibration:
  step: int
  strength: float
  training_change_rate: float
  generated_change_rate: float  # At `strength`.
  as_trained_change_rate: float  # At strength 1.


def calibrate(rate_at: Callable[[float], float], training: latent_cache.CodeRuns,
              step: int) -> Calibration:
  """The strength at which `rate_at(strength)`, the generated crops' change rate, meets
  the training codes'.

  The rate falls as the strength grows (the character holds more); outside
  STRENGTH_RANGE the nearer end is taken.
  """
  target = change_rate(training.codes, training.lengths)
  low, high = (math.log(s) for s in STRENGTH_RANGE)
  for _ in range(BISECTION_STEPS):
    middle = (low + high) / 2
    if rate_at(math.exp(middle)) > target:
      low = middle  # Still changing more often than the songs: stronger.
    else:
      high = middle
  strength = round(math.exp((low + high) / 2), 3)
  return Calibration(step=int(step), strength=strength, training_change_rate=round(target, 4),
                     generated_change_rate=round(rate_at(strength), 4),
                     as_trained_change_rate=round(rate_at(1.0), 4))


def write(workdir: str, calibration: Calibration) -> None:
  if jax.process_index() == 0:
    atomic_files.write_json(workdir_lib.path(workdir, STRENGTH_FILENAME),
                            dataclasses.asdict(calibration))


def read(workdir: str, step: int) -> Calibration | None:
  """The run's calibration if it was measured at `step` (None: measure it again, as for a
  file of another step or one that does not parse)."""
  path = workdir_lib.path(workdir, STRENGTH_FILENAME)
  if not path.exists():
    return None
  try:
    saved = Calibration(**atomic_files.read_json(path))
  except (TypeError, ValueError, OSError) as e:
    logging.warning('%s: not a style strength file (%s); measuring it again', path, e)
    return None
  return saved if saved.step == step else None


@functools.partial(jax.jit, static_argnames=('graphdef', 'temperature', 'steps'))
def _crop_codes(graphdef, params, codebooks, strength, temperature: float, steps: int):
  generator = nnx.merge(graphdef, params)
  return gan_models.sample_codes(generator, codebooks, temperature,
                                 jax.random.key(CALIBRATION_SEED), CALIBRATION_CROPS, steps,
                                 global_noise_scale=strength)[1]


def generated_change_rate(generator: loading.LoadedGenerator, strength: float) -> float:
  """`change_rate` of CALIBRATION_CROPS generated pieces at `strength` (a fixed seed)."""
  codes = _crop_codes(generator.graphdef, generator.params,
                      jnp.asarray(generator.vqvae.codebooks), jnp.float32(strength),
                      generator.temperature, CALIBRATION_WINDOWS * generator.window_steps)
  return change_rate(np.asarray(codes))


def calibrated(generator: loading.LoadedGenerator) -> Calibration:
  """The run's calibration at the loaded step: read, or measured now and written."""
  saved = read(generator.workdir, generator.step)
  if saved is not None:
    return saved
  try:
    training = latent_cache.load_latents(generator.workdir).train
  except latent_cache.LatentCacheError as e:
    logging.warning('style strength 1 (the noise as trained): %s', e)
    return Calibration(step=generator.step, strength=1.0, training_change_rate=math.nan,
                       generated_change_rate=math.nan, as_trained_change_rate=math.nan)
  calibration = calibrate(functools.partial(generated_change_rate, generator), training,
                          generator.step)
  logging.info('%s', describe(calibration))
  try:
    write(generator.workdir, calibration)
  except OSError as e:  # A finished run on read-only storage samples all the same.
    logging.warning('style strength not saved in %s (%s): measured again next time',
                    generator.workdir, e)
  return calibration


def describe(calibration: Calibration) -> str:
  return (f'style strength {calibration.strength:.2f}: generated pieces change their '
          f'first-level code at {calibration.generated_change_rate:.1%} of steps '
          f'({calibration.as_trained_change_rate:.1%} as trained), the training codes at '
          f'{calibration.training_change_rate:.1%}')


class StrengthError(errors.UserError, ValueError):
  """A --style_strength that cannot scale the noise; str() names it, in one line."""


def check(strength: float | None) -> None:
  """Raises StrengthError unless `strength` is None (the run's own) or above 0."""
  if strength is not None and not strength > 0:
    raise StrengthError(f'--style_strength={strength:g}: must be > 0')


def with_strength(generator: loading.LoadedGenerator,
                  strength: float | None = None) -> loading.LoadedGenerator:
  """`generator` sampling at `strength`; None: the run's calibrated strength."""
  check(strength)
  if strength is None:
    strength = calibrated(generator).strength
  return dataclasses.replace(generator, style_strength=float(strength))
