"""Style strength: how far a GAN run's global noise is scaled at sampling, measured per run.

The generator adds its global noise (the piece's character, generation/style.py)
to the per-step inputs (noise and the songs' rhythm) and its output follows
both. Trained on short crops, it follows the step inputs more than the songs
do, and its pieces hold their harmony less: on the 1-hour create run
(docs/create.md, "How strongly a piece keeps its character") chroma stability
0.43 against the codec's 0.57. Scaled up at sampling, the character holds more
of each piece, and the steps follow the rhythm they are given less (the rhythm
following slope falls: docs/create.md, "1 hour against 4 hours"); scaled down
(BigGAN's truncation) it holds less here, not more.

How far is measured on the run itself, not chosen by ear: the strength at which
generated pieces hold their harmony as the codec's copies of the training songs
do (chroma stability 0.1 s apart, audio/music_structure.py, of PIECES generated
pieces of evaluate's 10 s and REFERENCE_CROPS crops of the training codes, all
decoded and inverted with Griffin-Lim as evaluate hears them; secant steps in the
log of the strength, the same pieces' noise at each). No stronger: past it the
pieces hold still longer than the songs and give up the rhythm they are given.
An earlier calibration matched how often the first-level code changes instead;
it overshot the harmony where the onset pull is strong (docs/create.md, "The
strength that holds the songs' harmony").
The GAN trainer measures it at each evaluation of the music profile and writes
it beside the checkpoint (STRENGTH_FILENAME); loading a run at a step without
one (or with an earlier calibration's) measures it then. `--style_strength` in
sample and evaluate replaces it (1 = the noise as trained).
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
from melodygan_jax.audio import music_structure
from melodygan_jax.audio import synthesis
from melodygan_jax.models import gan as gan_models
from melodygan_jax.runs import latent_cache
from melodygan_jax.runs import loading
from melodygan_jax.runs import workdir as workdir_lib

STRENGTH_FILENAME = workdir_lib.STYLE_STRENGTH_FILENAME
STRENGTH_RANGE = (0.5, 8.0)
# The pieces' chroma stability rises about linearly with the log of the strength (the
# 1-hour run's GAN: 0.44, 0.51, 0.58, 0.65 at 1, 1.5, 2.04, 3), so secant steps from two
# strengths find it: four strengths heard.
FIRST_STRENGTHS = (1.0, 2.0)
SECANT_STEPS = 2
# How many pieces and training crops are heard, and how long each is
# (config.train.style_strength_*; a run without them: these). A clip's chroma stability
# varies (sd 0.21 on the songs): 128 crops put the target within ~0.02 and 48 pieces, the
# same ones at every strength, their mean within ~0.03; ~100 s on a 2-core CPU.
PIECES = 48
REFERENCE_CROPS = 128
SECONDS = 10.0  # evaluate's clips.
CALIBRATION_SEED = 7
_DECODE_BATCH = 16


@dataclasses.dataclass(frozen=True)
class Sizes:
  pieces: int
  reference_crops: int
  seconds: float


def sizes(config) -> Sizes:
  """What a run's calibration hears, from its config."""
  train = config.train
  return Sizes(pieces=int(train.get('style_strength_pieces', PIECES)),
               reference_crops=int(train.get('style_strength_reference_crops', REFERENCE_CROPS)),
               seconds=float(train.get('style_strength_seconds', SECONDS)))


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


def calibration_steps(time_stride: int, training: latent_cache.CodeRuns, seconds: float) -> int:
  """Codes of a calibration piece: `seconds`, or the longest training run."""
  steps = math.ceil(seconds * music_structure.FRAMES_PER_SECOND / time_stride)
  return min(steps, latent_cache.longest_run(training))


def harmony(vqvae, codes: np.ndarray, stem: str) -> float:
  """Mean chroma stability of code sequences [n, steps, levels], decoded by `vqvae` (a
  loaded codec or the trainer's) and inverted with Griffin-Lim."""
  values = []
  for start in range(0, len(codes), _DECODE_BATCH):
    log_mel = vqvae.codes_to_log_mel(np.asarray(codes[start:start + _DECODE_BATCH]), stem)
    values += [music_structure.clip_chroma_stability(clip)
               for clip in synthesis.log_mel_to_audio(log_mel)]
  return float(np.nanmean(values))


def reference_harmony(vqvae, training: latent_cache.CodeRuns, steps: int, stem: str,
                      count: int) -> float:
  """`harmony` of `count` crops of the training codes (a fixed pick): what the codec's
  copies of the songs hold, the calibration's target."""
  crops = latent_cache.real_crops(training, steps)
  picks = np.sort(np.random.default_rng(CALIBRATION_SEED).permutation(len(crops))[:count])
  return harmony(vqvae, crops[picks], stem)


@dataclasses.dataclass(frozen=True)
class Calibration:
  step: int
  strength: float
  reference_chroma_stability: float  # The codec's copies of training crops.
  generated_chroma_stability: float  # At `strength`.
  as_trained_chroma_stability: float  # At strength 1.


def calibrate(harmony_at: Callable[[float], float], reference: float,
              step: int) -> Calibration:
  """The strength at which `harmony_at(strength)`, the generated pieces' chroma
  stability, meets `reference`.

  Heard at FIRST_STRENGTHS, then SECANT_STEPS times where the line through the
  two strengths heard nearest the target (in log strength) meets it, kept inside
  STRENGTH_RANGE; the strength heard nearest the target is the one.
  """
  low, high = (math.log(s) for s in STRENGTH_RANGE)
  heard = {}

  def hear(log_strength: float) -> None:
    log_strength = min(max(log_strength, low), high)
    if log_strength not in heard:
      heard[log_strength] = harmony_at(math.exp(log_strength))

  for strength in FIRST_STRENGTHS:
    hear(math.log(strength))
  for _ in range(SECANT_STEPS):
    (x0, y0), (x1, y1) = sorted(heard.items(), key=lambda p: abs(p[1] - reference))[:2]
    if y0 == y1:
      break
    hear(x0 + (reference - y0) * (x1 - x0) / (y1 - y0))
  best = min(heard, key=lambda x: abs(heard[x] - reference))
  return Calibration(step=int(step), strength=round(math.exp(best), 3),
                     reference_chroma_stability=round(reference, 4),
                     generated_chroma_stability=round(heard[best], 4),
                     as_trained_chroma_stability=round(heard[0.0], 4))


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
    logging.warning('%s: not a style strength calibration of this version (%s); measuring '
                    'it again', path, e)
    return None
  return saved if saved.step == step else None


@functools.partial(jax.jit, static_argnames=('graphdef', 'temperature', 'count', 'steps'))
def _piece_codes(graphdef, params, codebooks, strength, temperature: float, count: int,
                 steps: int):
  generator = nnx.merge(graphdef, params)
  return gan_models.sample_codes(generator, codebooks, temperature,
                                 jax.random.key(CALIBRATION_SEED), count, steps,
                                 global_noise_scale=strength)[1]


def generated_harmony(generator: loading.LoadedGenerator, strength: float,
                      steps: int) -> float:
  """`harmony` of the run's calibration pieces (`sizes`; a fixed seed) of `steps` codes
  at `strength`."""
  codes = _piece_codes(generator.graphdef, generator.params,
                       jnp.asarray(generator.vqvae.codebooks), jnp.float32(strength),
                       generator.temperature, sizes(generator.config).pieces, steps)
  return harmony(generator.vqvae, np.asarray(codes), generator.config.data.stems[0])


def calibrated(generator: loading.LoadedGenerator) -> Calibration:
  """The run's calibration at the loaded step: read, or measured now and written."""
  saved = read(generator.workdir, generator.step)
  if saved is not None:
    return saved
  try:
    training = latent_cache.load_latents(generator.workdir).train
  except latent_cache.LatentCacheError as e:
    logging.warning('style strength 1 (the noise as trained): %s', e)
    return Calibration(step=generator.step, strength=1.0, reference_chroma_stability=math.nan,
                       generated_chroma_stability=math.nan,
                       as_trained_chroma_stability=math.nan)
  heard = sizes(generator.config)
  steps = calibration_steps(generator.vqvae.time_stride, training, heard.seconds)
  calibration = calibrate(
      functools.partial(generated_harmony, generator, steps=steps),
      reference_harmony(generator.vqvae, training, steps, generator.config.data.stems[0],
                        heard.reference_crops), generator.step)
  logging.info('%s', describe(calibration))
  try:
    write(generator.workdir, calibration)
  except OSError as e:  # A finished run on read-only storage samples all the same.
    logging.warning('style strength not saved in %s (%s): measured again next time',
                    generator.workdir, e)
  return calibration


def describe(calibration: Calibration) -> str:
  return (f'style strength {calibration.strength:.2f}: generated pieces hold their harmony '
          f'(chroma stability) at {calibration.generated_chroma_stability:.2f} '
          f'({calibration.as_trained_chroma_stability:.2f} as trained), the codec\'s copies of '
          f'the training songs at {calibration.reference_chroma_stability:.2f}')


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
