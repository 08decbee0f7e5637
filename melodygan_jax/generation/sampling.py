"""Sampling a trained GAN: one function per mode, on one loaded model.

  model = sampling.load('runs/gan', vocoder_workdir=None)
  pieces = sampling.free(model, seed=0, indices=range(4), seconds=10)
  pieces = sampling.loop(model, seed=0, indices=range(4), seconds=8)
  pieces = sampling.styled(model, [sampling.find_style(model, 'a.wav', seed=0)], 0, range(4), 10)
  pieces = sampling.continuation(model, sampling.load_prompt(model, 'song.mp3'), 0, range(4), 10)

Each returns one `Piece` per index: its codes, log-mel and audio (22 050 Hz,
in [-1, 1]) and what a manifest records about it. Piece i comes from the key
fold_in(seed, i) alone, whatever else is generated with it, so the same seed
and index make the same piece byte for byte.

Length: a piece longer than the training crop is generated in overlapping
windows over one continuous coordinate sequence, cross-faded in latent space
and decoded and inverted whole (long_form.py), so there are no seams;
`window_joins` lists the audio sample positions where windows hand over.
Loops make the coordinates circular: the end flows into the start (the length
is rounded to whole codes). A continuation is the prompt as decoded, then
`seconds` more (continuation.py); `prompt_end_sample` marks the join. A style
is the global noise that best generates a real clip (style.py); two styles
morph from the first to the second along every piece.
"""
import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from melodygan_jax.audio import contract
from melodygan_jax.audio import inversion
from melodygan_jax.audio import synthesis
from melodygan_jax.generation import continuation as continuation_lib
from melodygan_jax.generation import long_form
from melodygan_jax.generation import style as style_lib
from melodygan_jax.models import gan as gan_models
from melodygan_jax.runs import loading
from melodygan_jax.runs import style_strength as style_strength_lib

LOOP_MARGIN_STEPS = 32  # Codes of wrap-around decoded on each side of a loop...
LOOP_CROSSFADE_SAMPLES = 1024  # ...and the audio cross-fade at its wrap (46 ms).


@dataclasses.dataclass
class Model:
  """A GAN run, its VQ-VAE and the inversion that turns their log-mel into audio."""
  generator: loading.LoadedGenerator
  vocoder: inversion.Vocoder

  @property
  def vqvae(self) -> loading.LoadedVQVAE:
    return self.generator.vqvae

  @property
  def stem(self) -> str:
    return self.generator.config.data.stems[0]

  @property
  def code_samples(self) -> int:
    """Audio samples per code step."""
    return self.vqvae.time_stride * contract.HOP_LENGTH

  @property
  def is_context_conditioned(self) -> bool:
    return gan_models.is_context_conditioned(self.generator.config.model)


@dataclasses.dataclass
class Piece:
  """One generated piece of music."""
  index: int
  codes: np.ndarray     # [steps, levels] VQ-VAE codes.
  log_mel: np.ndarray   # [frames, NUM_MELS] what was inverted.
  audio: np.ndarray     # [samples] float32 in [-1, 1].
  extra: dict           # Manifest fields: window_joins, prompt_end_sample, ...


def load(workdir: str, vocoder_workdir: str | None = None,
         style_strength: float | None = None) -> Model:
  """A finished GAN run and the trained vocoder of `vocoder_workdir` (default Griffin-Lim).

  `style_strength` scales the global noise (None: the run's calibrated
  strength, measured on first use; runs/style_strength.py).

  Raises:
    runs.workdir.WorkdirError: a workdir that cannot be used, one line.
  """
  generator = style_strength_lib.with_strength(loading.load_generator(workdir), style_strength)
  return Model(generator=generator, vocoder=loading.vocoder_from_flag(vocoder_workdir))


def steps_for_seconds(seconds: float, time_stride: int) -> int:
  """Code steps whose decoded frames cover `seconds` of audio."""
  frames = math.ceil(seconds * contract.SAMPLE_RATE_HZ / contract.HOP_LENGTH) + 1
  return max(1, math.ceil(frames / time_stride))


def keys_and_noise(generator: loading.LoadedGenerator, seed: int, indices,
                   interpolate=None, num_samples: int | None = None):
  """Per-piece keys and global noise; interpolation slerps the global noise.

  With `interpolate` (two seeds), piece i of `num_samples` (default: of
  `indices`) sits at i / (num_samples - 1) of the way, whatever batch it is
  generated in. The noise is scaled by the generator's style strength
  (runs/style_strength.py).
  """
  noise_dim = generator.config.model.noise_dim

  def noise_of(sample_seed, index):
    key = jax.random.fold_in(jax.random.key(sample_seed), index)
    noise = np.asarray(jax.random.normal(jax.random.fold_in(key, 0), (noise_dim,)))
    return key, noise * np.float32(generator.style_strength)

  if interpolate is None:
    keys, noise = zip(*(noise_of(seed, i) for i in indices))
    return jnp.stack(keys), np.stack(noise)
  (key_a, noise_a), (_, noise_b) = noise_of(interpolate[0], 0), noise_of(interpolate[1], 0)
  total = max((num_samples or len(indices)) - 1, 1)
  noise = style_lib.slerp(noise_a, noise_b, [i / total for i in indices])
  # One key for all: the per-step noise stays fixed, only the character moves.
  return jnp.stack([key_a] * len(indices)), noise


def generate_codes(generator: loading.LoadedGenerator, keys, global_noise, steps: int,
                   loop: bool = False) -> np.ndarray:
  """Codes [batch, steps, levels] in the generator's windows (piece i from keys[i])."""
  plan = long_form.plan_for(generator, steps, loop)
  return np.asarray(long_form.generate_codes(
      generator.graphdef, generator.params, jnp.asarray(generator.vqvae.codebooks), keys,
      jnp.asarray(global_noise), plan, generator.temperature))


def free(model: Model, seed: int, indices: Sequence[int], seconds: float, interpolate=None,
         num_samples: int | None = None, global_noise: np.ndarray | None = None) -> list[Piece]:
  """Pieces of `seconds` each.

  Args:
    model: from `load`.
    seed, indices: piece i comes from fold_in(key(seed), i).
    seconds: each piece's length.
    interpolate: two seeds A, B: the pieces move from A's global noise to B's
      (piece i at i / (num_samples - 1) of the way).
    num_samples: how many pieces the interpolation spans (default: len(indices)).
    global_noise: [noise_dim] or [steps, noise_dim] global noise for every
      piece instead of each one's own (a style, a morph).
  """
  indices = list(indices)
  keys, noise = keys_and_noise(model.generator, seed, indices, interpolate, num_samples)
  if global_noise is not None:
    noise = np.broadcast_to(global_noise, (len(indices),) + np.shape(global_noise))
  steps = steps_for_seconds(seconds, model.vqvae.time_stride)
  num_audio_samples = int(round(seconds * contract.SAMPLE_RATE_HZ))
  codes = generate_codes(model.generator, keys, noise, steps)
  log_mel = model.vqvae.codes_to_log_mel(codes, model.stem)
  audio = synthesis.log_mel_to_audio(log_mel, seed=seed, indices=indices, vocoder=model.vocoder)
  plan = long_form.plan_for(model.generator, steps)
  joins = [position for position in long_form.steps_to_samples(
      plan.join_steps, model.vqvae.time_stride, contract.HOP_LENGTH)
           if position < num_audio_samples]
  return [Piece(index, piece_codes, piece_mel, synthesis.finish(clip[:num_audio_samples]),
                {'window_joins': joins})
          for index, piece_codes, piece_mel, clip in zip(indices, codes, log_mel, audio)]


def loop_steps(model: Model, seconds: float) -> int:
  """A loop's length in whole codes, so its period is exact."""
  return max(1, int(round(seconds * contract.SAMPLE_RATE_HZ / model.code_samples)))


def loop(model: Model, seed: int, indices: Sequence[int], seconds: float, interpolate=None,
         num_samples: int | None = None, global_noise: np.ndarray | None = None) -> list[Piece]:
  """Pieces whose end flows into their start, about `seconds` long (whole codes).

  The other arguments as in `free`; a morph should go there and back (style.py).
  """
  indices = list(indices)
  keys, noise = keys_and_noise(model.generator, seed, indices, interpolate, num_samples)
  if global_noise is not None:
    noise = np.broadcast_to(global_noise, (len(indices),) + np.shape(global_noise))
  steps = loop_steps(model, seconds)
  codes = generate_codes(model.generator, keys, noise, steps, loop=True)
  log_mel, clips = render_loop(model, codes, seed, indices)
  plan = long_form.plan_for(model.generator, steps, loop=True)
  joins = [position for position in long_form.steps_to_samples(
      plan.join_steps, model.vqvae.time_stride, contract.HOP_LENGTH)
           if position < steps * model.code_samples]
  return [Piece(index, piece_codes, piece_mel, clip, {'window_joins': joins})
          for index, piece_codes, piece_mel, clip in zip(indices, codes, log_mel, clips)]


def render_loop(model: Model, codes: np.ndarray, seed: int,
                indices) -> tuple[np.ndarray, list[np.ndarray]]:
  """Loops: codes [batch, steps, levels] -> (log-mel of one period, seamless clips).

  The codes are decoded with wrap-around on both sides, so the decoder sees
  the start after the end. Griffin-Lim then inverts the one period as a
  circular signal (its STFT wraps around): the audio is exactly periodic and
  the wrap is like any other frame. A vocoder without a circular mode
  renders the margins too and cross-fades its start from what followed its end.
  """
  vqvae, vocoder = model.vqvae, model.vocoder
  steps = codes.shape[1]
  wrapped = codes[:, np.arange(-LOOP_MARGIN_STEPS, steps + LOOP_MARGIN_STEPS) % steps]
  log_mel = vqvae.codes_to_log_mel(wrapped, model.stem)
  margin_frames = LOOP_MARGIN_STEPS * vqvae.time_stride
  period_frames = steps * vqvae.time_stride
  period_log_mel = log_mel[:, margin_frames:margin_frames + period_frames]
  if hasattr(vocoder, 'loop'):
    audio = np.asarray(vocoder.loop(np.asarray(period_log_mel, np.float32),
                                    synthesis.clip_keys(seed, indices)))
    return period_log_mel, [np.clip(np.nan_to_num(clip), -1.0, 1.0) for clip in audio]
  extended = synthesis.log_mel_to_audio(log_mel, seed=seed, indices=indices, vocoder=vocoder)
  clips = [np.clip(long_form.loop_audio(clip, margin_frames * contract.HOP_LENGTH,
                                        period_frames * contract.HOP_LENGTH,
                                        LOOP_CROSSFADE_SAMPLES), -1.0, 1.0)
           for clip in extended]
  return period_log_mel, clips


def find_style(model: Model, path: str, seed: int) -> np.ndarray:
  """The style (global noise [noise_dim]) of the audio file at `path`.

  Raises:
    generation.user_audio.AudioInputError: an unusable file, one line.
  """
  return style_lib.find_style(model.generator, path, seed)


def styled(model: Model, styles: Sequence[np.ndarray], seed: int, indices: Sequence[int],
           seconds: float, loop_pieces: bool = False) -> list[Piece]:
  """Pieces in one style for all, or morphing from styles[0] to styles[1] along each.

  A looped morph goes there and back, so its end meets its start.
  """
  if len(styles) not in (1, 2):
    raise ValueError(f'give one style or two (a morph), not {len(styles)}')
  global_noise = styles[0]
  if len(styles) == 2:
    steps = (loop_steps(model, seconds) if loop_pieces
             else steps_for_seconds(seconds, model.vqvae.time_stride))
    plan = long_form.plan_for(model.generator, steps, loop_pieces)
    global_noise = style_lib.morph_over_time(styles[0], styles[1], plan.coordinate_steps,
                                             there_and_back=loop_pieces)
  if loop_pieces:
    return loop(model, seed, indices, seconds, global_noise=global_noise)
  return free(model, seed, indices, seconds, global_noise=global_noise)


def load_prompt(model: Model, path: str,
                prompt_seconds: float | None = None) -> continuation_lib.Prompt:
  """The audio file at `path`, ready to continue: its first `prompt_seconds`
  (default: as much as one window's context holds, or the whole file when shorter).

  Raises:
    generation.user_audio.AudioInputError: an unusable file, one line.
  """
  default_seconds = (continuation_lib.context_limit(model.generator) * model.code_samples
                     / contract.SAMPLE_RATE_HZ)
  return continuation_lib.load_prompt(model.vqvae, path, prompt_seconds, default_seconds,
                                      model.stem)


def continuation(model: Model, prompt: continuation_lib.Prompt, seed: int,
                 indices: Sequence[int], seconds: float) -> list[Piece]:
  """Each piece is the prompt as decoded, then `seconds` of its continuation.

  A context-conditioned generator keeps the prompt's style from its context
  and each piece's own global noise varies the rest; an unconditional one
  generates every piece in the prompt's style (continuation.py says how).
  """
  indices = list(indices)
  keys, noise = keys_and_noise(model.generator, seed, indices)
  if not model.is_context_conditioned:
    noise = [style_lib.style_of_codes(model.generator, prompt.codes, seed)] * len(indices)
  # Two codes more than a free piece: the join's cross-fade and the tail's fade.
  steps = steps_for_seconds(seconds, model.vqvae.time_stride) + 2
  num_audio_samples = int(round(seconds * contract.SAMPLE_RATE_HZ))
  pieces = []
  for key, piece_noise, index in zip(keys, noise, indices):
    codes, log_mel, audio, extra = continuation_lib.continue_and_render(
        model.generator, prompt, key, piece_noise, steps, model.stem, seed, index,
        num_audio_samples, model.vocoder)
    pieces.append(Piece(index, codes, log_mel, audio, extra))
  return pieces
