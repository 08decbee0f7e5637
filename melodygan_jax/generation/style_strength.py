"""Style strength: how far the global noise is scaled at sampling, measured per run.

The generator adds its global noise (the piece's character, style.py) to the
per-step inputs (noise and the songs' rhythm) and its output follows both.
Trained on short crops, it follows the step inputs more than the songs do: on
the 1-hour create run (docs/create.md, "How strongly a piece keeps its
character") its pieces change their first-level code at 87% of the steps
where the training songs change it at 73%, and they hold their harmony less
(chroma stability 0.44 against the codec's 0.57). Scaling the global noise up
at sampling lets the character hold more of each piece; scaled down (the
truncation of BigGAN) it holds less here, not more.

How far is measured on the run itself, not chosen by ear: the strength at
which generated pieces change their first-level code as often as the
training codes do (bisection over STRENGTH_RANGE, a fixed batch of pieces).
It is written beside the checkpoint (STRENGTH_FILENAME) for the step it was
measured at, so a run is measured once; `--style_strength` in sample and
evaluate replaces it (1 = the noise as trained).
"""
import dataclasses
import math

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax.generation import long_form
from melodygan_jax.runs import latent_cache
from melodygan_jax.runs import loading
from melodygan_jax.runs import workdir as workdir_lib

STRENGTH_FILENAME = 'style_strength.json'
STRENGTH_RANGE = (0.25, 8.0)
CALIBRATION_PIECES = 32  # Pieces generated at each strength tried...
CALIBRATION_WINDOWS = 2  # ...each this many training crops long.
BISECTION_STEPS = 8  # The range is 5 octaves: 8 halvings leave 2% of a strength.
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


def generated_change_rate(generator: loading.LoadedGenerator, strength: float) -> float:
  """`change_rate` of CALIBRATION_PIECES pieces at `strength` (a fixed seed)."""
  # Drawn as sampling draws a piece's global noise (sampling.keys_and_noise).
  keys = jnp.stack([jax.random.fold_in(jax.random.key(CALIBRATION_SEED), i)
                    for i in range(CALIBRATION_PIECES)])
  noise = jnp.stack([jax.random.normal(jax.random.fold_in(key, 0),
                                       (generator.config.model.noise_dim,)) for key in keys])
  plan = long_form.plan_for(generator, CALIBRATION_WINDOWS * generator.window_steps)
  codes = long_form.generate_codes(
      generator.graphdef, generator.params, jnp.asarray(generator.vqvae.codebooks), keys,
      noise * strength, plan, generator.temperature)
  return change_rate(np.asarray(codes))


@dataclasses.dataclass(frozen=True)
class Calibration:
  step: int
  strength: float
  training_change_rate: float
  generated_change_rate: float  # At `strength`.
  as_trained_change_rate: float  # At strength 1.


def calibrate(generator: loading.LoadedGenerator) -> Calibration:
  """The strength at which generated pieces change code as often as the training codes.

  The rate falls as the strength grows (the character holds more); outside
  STRENGTH_RANGE the nearer end is taken.
  """
  train = latent_cache.load_latents(generator.workdir).train
  target = change_rate(train.codes, train.lengths)
  as_trained = generated_change_rate(generator, 1.0)
  low, high = (math.log(s) for s in STRENGTH_RANGE)
  for _ in range(BISECTION_STEPS):
    middle = (low + high) / 2
    if generated_change_rate(generator, math.exp(middle)) > target:
      low = middle  # Still changing more often than the songs: stronger.
    else:
      high = middle
  strength = math.exp((low + high) / 2)
  return Calibration(step=generator.step, strength=round(strength, 3),
                     training_change_rate=round(target, 4),
                     generated_change_rate=round(generated_change_rate(generator, strength), 4),
                     as_trained_change_rate=round(as_trained, 4))


def calibrated(generator: loading.LoadedGenerator) -> Calibration:
  """The run's calibration at the loaded step: read, or measured once and written."""
  path = workdir_lib.path(generator.workdir, STRENGTH_FILENAME)
  if path.exists():
    saved = Calibration(**atomic_files.read_json(path))
    if saved.step == generator.step:
      return saved
  try:
    calibration = calibrate(generator)
  except latent_cache.LatentCacheError as e:
    logging.warning('style strength 1 (the noise as trained): %s', e)
    return Calibration(step=generator.step, strength=1.0, training_change_rate=math.nan,
                       generated_change_rate=math.nan, as_trained_change_rate=math.nan)
  logging.info('style strength %.2f: pieces change their first-level code at %.1f%% of '
               'steps (%.1f%% as trained), the training codes at %.1f%%',
               calibration.strength, 100 * calibration.generated_change_rate,
               100 * calibration.as_trained_change_rate,
               100 * calibration.training_change_rate)
  if jax.process_index() == 0:
    atomic_files.write_json(path, dataclasses.asdict(calibration))
  return calibration


def with_strength(generator: loading.LoadedGenerator,
                  strength: float | None = None) -> loading.LoadedGenerator:
  """`generator` sampling at `strength`; None: the run's calibrated strength."""
  if strength is None:
    strength = calibrated(generator).strength
  elif not strength > 0:
    raise ValueError(f'--style_strength={strength}: must be above 0')
  return dataclasses.replace(generator, style_strength=float(strength))
