"""Continuing a user's audio: encode a prompt, generate what follows, join the two.

Two ways, chosen by how the GAN was trained:

A generator trained with random context masking (config.model.
context_probability > 0) continues real codes directly: each window is the
generator run with the last codes so far as its context (up to
max_context_fraction of a window: first the prompt's, then its own) and
fresh noise after them; the window's new codes are appended and the next
window takes its context from the end. Every code is generated seeing the
codes before it, in one pass per window, without any fitting; the style is
the prompt's because the generator was trained to keep its context's.

An unconditional generator has its first window inpainted: the prompt is
projected onto the generator's inputs (generation/projection.py), first its
style, the global noise that best generates the whole prompt (up to
style.MAX_STYLE_WINDOWS windows of it, as --style_from finds a clip's),
then, that style held, the first window's coordinates up to the end of the
prompt's last codes (the context: up to a hop, three quarters of a window);
the windows are then run over [context | continuation] in the prompt's
style. It works with every GAN run as it is, at the cost of a short fit (a
few hundred gradient steps on one window) per continuation; on real music its
continuations keep the prompt's style no better than a free sample does
(README, Long-form generation), which is why new runs can train the
context-conditioned generator instead.

Either way the context's codes are replaced by the prompt's own and
everything is decoded together, so the decoder sees real codes on the left of
the join. The output holds the prompt as it was decoded (resampled to 22 050
Hz, its own level, not re-synthesized), then the continuation, rendered at
the prompt's level. The first few milliseconds of the continuation are
cross-faded from the audio that follows the prompt in its file (or, when
the file ends there, from the prompt mirrored at its end), so the waveform
does not jump at the join.
"""
import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from melodygan_jax.audio import contract
from melodygan_jax.audio import synthesis
from melodygan_jax.generation import long_form
from melodygan_jax.generation import projection
from melodygan_jax.generation import user_audio
from melodygan_jax.models import gan as gan_models
from melodygan_jax.models import residual_quantizer

JOIN_CROSSFADE_SAMPLES = 256  # One hop, 11.6 ms.
DECODE_CONTEXT_STEPS = 32  # Prompt codes decoded before the continuation, as its context.
EDGE_FRACTION = 0.125  # Of a window: its last codes, dropped when it is continued (see below).


@dataclasses.dataclass(frozen=True)
class Prompt:
  """A user's audio, ready to continue.

  Attributes:
    original: the first `num_samples` samples as decoded (mono, 22 050 Hz).
    after: up to JOIN_CROSSFADE_SAMPLES samples that follow in the file.
    codes: [steps, levels] VQ-VAE codes of its loudness-normalized audio; the
      last code ends at or before `num_samples`.
    gain: level of the original over the normalized audio (the models hear
      the training level; the output keeps the prompt's).
  """
  original: np.ndarray
  after: np.ndarray
  codes: np.ndarray
  gain: float

  @property
  def num_samples(self) -> int:
    return len(self.original)


def load_prompt(vqvae, path: str, prompt_seconds: float | None, default_seconds: float,
                stem: str) -> Prompt:
  """Reads and encodes the first `prompt_seconds` of `path` (None: `default_seconds`,
  or the whole file when shorter).

  Raises:
    user_audio.AudioInputError: unreadable, shorter than the asked seconds, or shorter than
      one code.
  """
  samples = user_audio.read_clip(path, '--prompt')
  file_seconds = len(samples) / contract.SAMPLE_RATE_HZ
  if prompt_seconds is not None and prompt_seconds > file_seconds + 1e-6:
    raise user_audio.AudioInputError(f'--prompt_seconds={prompt_seconds:g}: longer than {path} '
                      f'({file_seconds:.2f} s)')
  seconds = prompt_seconds if prompt_seconds is not None else min(default_seconds, file_seconds)
  num_samples = int(round(seconds * contract.SAMPLE_RATE_HZ))
  original = samples[:num_samples]
  if num_samples < vqvae.time_stride * contract.HOP_LENGTH:
    raise user_audio.AudioInputError(f'--prompt={path}: {seconds:.3f} s is shorter than one code '
                      f'({vqvae.time_stride * contract.HOP_LENGTH} samples)')
  normalized = user_audio.normalized_level(original)
  gain = float(np.linalg.norm(original) / max(np.linalg.norm(normalized), 1e-12))
  return Prompt(original=original,
                after=samples[num_samples:num_samples + JOIN_CROSSFADE_SAMPLES],
                codes=user_audio.encode_samples(vqvae, normalized, stem), gain=gain)


def context_limit(generator) -> int:
  """The most prompt codes one window takes as its context: a context-conditioned
  generator's longest context, else a hop (3/4 window) that the projection fits."""
  window = generator.window_steps
  if gan_models.is_context_conditioned(generator.config.model):
    return gan_models.longest_context(generator.config.model.max_context_fraction, window)
  return window - long_form.overlap_steps(window)


def context_steps(num_codes: int, limit: int) -> int:
  """Codes of a `num_codes`-code prompt the first window starts from (1 to `limit`)."""
  return max(1, min(num_codes, limit))


def join(prompt: Prompt, rendered: np.ndarray, rendered_start: int, num_samples: int
         ) -> np.ndarray:
  """The prompt followed by `num_samples` of the continuation.

  Args:
    prompt: the prompt.
    rendered: audio of decoded [prompt codes | continuation], at the training
      level; its sample 0 is sample `rendered_start` of the prompt's time.
    rendered_start: see `rendered`.
    num_samples: continuation samples to keep.
  """
  begin = prompt.num_samples - rendered_start
  if begin < 0 or begin + num_samples > len(rendered):
    raise ValueError(f'rendering [{rendered_start}, {rendered_start + len(rendered)}) does not '
                     f'cover the continuation [{prompt.num_samples}, '
                     f'{prompt.num_samples + num_samples})')
  continuation = np.array(rendered[begin:begin + num_samples], np.float32) * prompt.gain
  fade = min(JOIN_CROSSFADE_SAMPLES, num_samples)
  tail = prompt.after[:fade]
  if len(tail) < fade:  # The file ends with the prompt: mirror it, continuous at the join.
    tail = prompt.original[::-1][:fade]
  tail = np.pad(tail, (0, fade - len(tail)))
  ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade)**2
  continuation[:fade] = ramp * continuation[:fade] + (1 - ramp) * tail
  return np.concatenate([prompt.original.astype(np.float32), continuation])


def continue_prompt(generator, prompt: Prompt, key: jax.Array, style: np.ndarray,
                    steps: int):
  """(codes [steps, levels] that follow the prompt, join steps, context steps).

  Join steps are where one generation window hands over to the next, counted
  from the first of the `context` prompt codes the generation started from.
  A context-conditioned generator continues the prompt's codes
  (`continue_codes`; `style` is the sample's own global noise); an
  unconditional one is projected (`project_prompt`; `style` is the prompt's).
  """
  if gan_models.is_context_conditioned(generator.config.model):
    return continue_codes(generator, prompt.codes, key, style, steps)
  return project_prompt(generator, prompt, key, style, steps)


@functools.partial(jax.jit, static_argnames=('graphdef', 'temperature'))
def _continue_window(graphdef, params, codebooks, key, global_noise, window_codes, mask,
                     clock_key, first_step, temperature: float):
  """Codes [window, levels]: `window_codes` where `mask`, the generator's after them.

  A beat clock (if the generator has one) is drawn from `clock_key`, the same for every
  window of a sample, at the window's steps from `first_step`: one tempo throughout.
  """
  generator = nnx.merge(graphdef, params)
  latents = residual_quantizer.codes_to_latents(window_codes[None], codebooks)
  step_key, gumbel_key = jax.random.split(key)
  step_noise = generator.step_inputs(step_key, (1, window_codes.shape[0]), first_step,
                                     clock_key)
  codes = generator(global_noise[None], step_noise, codebooks, gumbel_key, temperature,
                    (latents, mask[None]))[1][0]
  return jnp.where(mask[:, None], window_codes, codes)


def continue_codes(generator, codes: np.ndarray, key: jax.Array, global_noise: np.ndarray,
                   steps: int):
  """`steps` codes after `codes` [n, levels] from a context-conditioned generator.

  Window after window of the training crop, each with the last codes so far
  (at most `context_limit`) as its context and its own noise (from
  fold_in(key, window)) after them; each window's new codes are appended but
  for its last EDGE_FRACTION, which saw the window's edge (zero padding) and
  are made again by the next window, so no context ends in edge codes.
  Returns (codes [steps, levels], join steps, context), as `continue_prompt`.
  """
  window, longest = generator.window_steps, context_limit(generator)
  edge = min(window - longest - 1, int(round(EDGE_FRACTION * window)))
  codebooks = jnp.asarray(generator.vqvae.codebooks)
  context = context_steps(len(codes), longest)
  sequence = np.asarray(codes[len(codes) - context:], np.int32)
  joins = []
  for index in itertools.count():
    if len(sequence) - context >= steps:
      break
    if index:
      joins.append(len(sequence))
    given = min(len(sequence), longest)
    window_codes = np.zeros((window, sequence.shape[1]), np.int32)
    window_codes[:given] = sequence[len(sequence) - given:]
    mask = np.arange(window) < given
    generated = _continue_window(generator.graphdef, generator.params, codebooks,
                                 jax.random.fold_in(key, index), jnp.asarray(global_noise),
                                 jnp.asarray(window_codes), jnp.asarray(mask),
                                 gan_models.clock_key(key), len(sequence) - given,
                                 generator.temperature)
    sequence = np.concatenate([sequence, np.asarray(generated)[given:window - edge]])
  return sequence[context:context + steps], tuple(joins), context


def project_prompt(generator, prompt: Prompt, key: jax.Array, style: np.ndarray, steps: int):
  """`continue_prompt` for an unconditional generator, by projection.

  `generator` is a loading.LoadedGenerator; `style` the prompt's
  (style.style_of_codes of its codes), held through the fit.

  The generator's first window is fitted to the prompt's last codes (its
  context), then run with fresh coordinates beyond them.
  """
  codebooks = jnp.asarray(generator.vqvae.codebooks)
  context = context_steps(len(prompt.codes), context_limit(generator))
  plan = long_form.plan_for(generator, context + steps)
  model = generator.config.model
  coordinates = long_form.coordinate_noise(key, plan, model.noise_channels,
                                           generator.beat_clock)
  # The first window's view: its left context, then its outputs, the first
  # `context` of them fitted to the prompt's last codes.
  view = plan.view_indices()[0]
  style, fitted, _ = projection.fit_inputs(
      generator.graphdef, generator.params, codebooks,
      jnp.asarray(prompt.codes[-context:])[None], jnp.asarray(style),
      coordinates[jnp.asarray(view)][None], free_steps=plan.context_steps + context,
      loss_start=plan.context_steps, fit_global=False)
  coordinates = coordinates.at[jnp.asarray(view)].set(fitted[0])
  codes = long_form.generate_codes(generator.graphdef, generator.params, codebooks, key[None],
                                   style[None], plan, generator.temperature,
                                   step_noise=coordinates[None])
  return np.asarray(codes)[0, context:], plan.join_steps, context


def render_continuation(vqvae, prompt: Prompt, codes: np.ndarray, stem: str, seed: int,
                        index: int, num_samples: int, vocoder=None) -> np.ndarray:
  """The prompt's audio, then `num_samples` of the continuation decoded from `codes`."""
  context = min(len(prompt.codes), DECODE_CONTEXT_STEPS)
  sequence = np.concatenate([prompt.codes[len(prompt.codes) - context:], codes])
  log_mel = vqvae.codes_to_log_mel(sequence[None], stem)
  rendered = synthesis.log_mel_to_audio(log_mel, seed=seed, indices=[index], vocoder=vocoder)[0]
  code_samples = vqvae.time_stride * contract.HOP_LENGTH
  rendered_start = (len(prompt.codes) - context) * code_samples
  joined = join(prompt, rendered, rendered_start, num_samples)
  # Clipped, and faded at the very end only: the start is the user's own audio, and the
  # join was cross-faded above.
  joined = np.clip(joined, -1.0, 1.0)
  fade = min(int(synthesis.FADE_S * contract.SAMPLE_RATE_HZ), num_samples)
  joined[len(joined) - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
  return joined


def continue_and_render(generator, prompt: Prompt, key, style, steps: int,
                        stem: str, seed: int, index: int, num_samples: int, vocoder=None):
  """One continuation: (its codes, the output's log-mel, audio, manifest fields)."""
  vqvae = generator.vqvae
  codes, join_steps, context = continue_prompt(generator, prompt, key, style, steps)
  clip = render_continuation(vqvae, prompt, codes, stem, seed, index, num_samples, vocoder)
  # Output step 0 is the first context code; joins inside the prompt were replaced by it.
  first_code = len(prompt.codes) - context
  joins = [position for position in long_form.steps_to_samples(
      [first_code + step for step in join_steps], vqvae.time_stride, contract.HOP_LENGTH)
           if prompt.num_samples < position < len(clip)]
  extra = {'window_joins': joins, 'prompt_end_sample': prompt.num_samples,
           'prompt_end_s': prompt.num_samples / contract.SAMPLE_RATE_HZ}
  return codes, contract.log_mel(clip), clip, extra
