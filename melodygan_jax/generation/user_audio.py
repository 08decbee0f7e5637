"""A user's audio files, read and encoded the way the models heard their training data.

Shared by continuation (`--prompt`) and style (`--style_from`).
"""
import numpy as np

from melodygan_jax import errors
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.audio import loudness


class AudioInputError(errors.UserError, ValueError):
  """A user's file that cannot be used; str() is one line naming the flag."""


def read_clip(path: str, flag: str) -> np.ndarray:
  """Any audio file prepare reads -> mono 22 050 Hz samples; one-line AudioInputError."""
  try:
    return audio_io.read_mono(path)
  except Exception as e:  # pylint: disable=broad-except
    raise AudioInputError(f'{flag}={path}: cannot be read as audio '
                          f'({" ".join(str(e).split())[:160]})') from e


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
