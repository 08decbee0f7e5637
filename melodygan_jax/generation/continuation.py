"""Continuing a user's audio: encode a prompt, generate what follows, join the two.

Chosen approach: the unconditional windowed generator, with its first window
inpainted. The prompt's last codes (half a window, the context) are
projected onto the generator's inputs (generation/projection.py: its global
noise and the coordinates of that half window); the windows are then run
over [context | continuation], the context's codes are replaced by the
prompt's own, and everything is decoded together, so the decoder sees real
codes on the left of the join. Why this rather than a generator conditioned
on real codes and trained with random context masking: it needs no new
training, works with every trained GAN run as it is, and keeps one generator
for sampling, loops and continuation; the cost is a short fit (a few hundred
gradient steps on one window) per continuation.

The output holds the prompt as it was decoded (resampled to 22 050 Hz, its
own level, not re-synthesized), then the continuation, rendered at the
prompt's level. The first few milliseconds of the continuation are
cross-faded from the audio that follows the prompt in its file (or, when
the file ends there, from the prompt mirrored at its end), so the waveform
does not jump at the join.
"""
import dataclasses

import numpy as np

from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.audio import loudness

JOIN_CROSSFADE_SAMPLES = 256  # One hop, 11.6 ms.


class PromptError(ValueError):
  """A prompt that cannot be used; str() is one line naming the flag."""


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


def read_clip(path: str, flag: str) -> np.ndarray:
  """Any audio file prepare reads -> mono 22 050 Hz samples; one-line PromptError."""
  try:
    return audio_io.read_mono(path)
  except Exception as e:  # pylint: disable=broad-except
    raise PromptError(f'{flag}={path}: cannot be read as audio ({" ".join(str(e).split())[:160]})'
                      ) from e


def normalized_level(samples: np.ndarray) -> np.ndarray:
  """The training data's loudness (prepare's normalization), or as is when unmeasurable."""
  try:
    return loudness.normalize_loudness(samples, loudness.TARGET_LUFS,
                                       loudness.TRUE_PEAK_CEILING_DBTP)
  except loudness.UnmeasurableLoudness:
    return samples


def encode_samples(vqvae, samples: np.ndarray, stem: str) -> np.ndarray:
  """Mono 22 050 Hz samples -> [steps, levels] codes of the frames that lie wholly inside."""
  frames = (len(samples) // contract.HOP_LENGTH) // vqvae.time_stride * vqvae.time_stride
  log_mel = contract.log_mel(samples)[:frames]
  normalized = vqvae.normalize(log_mel, stem)
  return np.asarray(vqvae.jit_encode_to_codes(vqvae.state, normalized[None]))[0]


def load_prompt(vqvae, path: str, prompt_seconds: float | None, default_seconds: float,
                stem: str) -> Prompt:
  """Reads and encodes the first `prompt_seconds` of `path` (None: `default_seconds`,
  or the whole file when shorter).

  Raises:
    PromptError: unreadable, shorter than the asked seconds, or shorter than
      one code.
  """
  samples = read_clip(path, '--prompt')
  file_seconds = len(samples) / contract.SAMPLE_RATE_HZ
  if prompt_seconds is not None and prompt_seconds > file_seconds + 1e-6:
    raise PromptError(f'--prompt_seconds={prompt_seconds:g}: longer than {path} '
                      f'({file_seconds:.2f} s)')
  seconds = prompt_seconds if prompt_seconds is not None else min(default_seconds, file_seconds)
  num_samples = int(round(seconds * contract.SAMPLE_RATE_HZ))
  original = samples[:num_samples]
  if num_samples < vqvae.time_stride * contract.HOP_LENGTH:
    raise PromptError(f'--prompt={path}: {seconds:.3f} s is shorter than one code '
                      f'({vqvae.time_stride * contract.HOP_LENGTH} samples)')
  normalized = normalized_level(original)
  gain = float(np.linalg.norm(original) / max(np.linalg.norm(normalized), 1e-12))
  return Prompt(original=original,
                after=samples[num_samples:num_samples + JOIN_CROSSFADE_SAMPLES],
                codes=encode_samples(vqvae, normalized, stem), gain=gain)


def context_steps(prompt: Prompt, hop_steps: int) -> int:
  """Prompt codes the generator's first window is fitted to: half a window at most."""
  return max(1, min(len(prompt.codes), hop_steps))


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
