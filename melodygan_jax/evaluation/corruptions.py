"""Known damage to real clips, to show what each metric can and cannot see.

Each corruption removes one property of music and keeps the rest:

  shuffled_blocks     0.2 s blocks in random order: timbre and notes kept, beat and
                      phrases gone
  pitch_jitter        each 0.5 s segment shifted by a random +-1..3 semitones: beat
                      and timbre kept, harmony gone
  stationary_texture  noise shaped by the clip's mean magnitude spectrum, random
                      phase: the long-term spectrum kept, everything that moves gone

All take mono float samples at the contract's rate and a numpy Generator,
and return as many samples.
"""
import librosa
import numpy as np

from melodygan_jax.audio import contract

CORRUPTIONS = ('shuffled_blocks', 'pitch_jitter', 'stationary_texture')


def shuffled_blocks(samples: np.ndarray, rng: np.random.Generator,
                    block_seconds: float = 0.2) -> np.ndarray:
  """Blocks of `block_seconds` in a random order; a tail shorter than a block stays last."""
  block = int(round(block_seconds * contract.SAMPLE_RATE_HZ))
  num_blocks = len(samples) // block
  head = samples[:num_blocks * block].reshape(num_blocks, block)[rng.permutation(num_blocks)]
  return np.concatenate([head.reshape(-1), samples[num_blocks * block:]]).astype(np.float32)


def pitch_jitter(samples: np.ndarray, rng: np.random.Generator, segment_seconds: float = 0.5,
                 semitones: tuple[float, float] = (1.0, 3.0)) -> np.ndarray:
  """Each segment pitch-shifted (librosa.effects.pitch_shift) by +-U(semitones)."""
  segment = int(round(segment_seconds * contract.SAMPLE_RATE_HZ))
  pieces = []
  for start in range(0, len(samples), segment):
    piece = np.asarray(samples[start:start + segment], np.float32)
    shift = rng.uniform(*semitones) * rng.choice([-1.0, 1.0])
    if len(piece) >= contract.N_FFT:
      piece = librosa.effects.pitch_shift(piece, sr=contract.SAMPLE_RATE_HZ, n_steps=shift,
                                          n_fft=contract.N_FFT, hop_length=contract.HOP_LENGTH)
    pieces.append(piece[:segment])
  return np.concatenate(pieces)[:len(samples)].astype(np.float32)


def stationary_texture(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """White noise whose every STFT frame has the clip's mean magnitude spectrum."""
  spectrum = librosa.stft(np.asarray(samples, np.float32), n_fft=contract.N_FFT,
                          hop_length=contract.HOP_LENGTH)
  mean_magnitude = np.abs(spectrum).mean(axis=1, keepdims=True)
  phase = np.exp(2j * np.pi * rng.random(spectrum.shape))
  texture = librosa.istft(mean_magnitude * phase, hop_length=contract.HOP_LENGTH,
                          n_fft=contract.N_FFT, length=len(samples))
  # Random phases partly cancel in the overlap-add: match the original's loudness.
  scale = np.sqrt(np.mean(np.square(samples)) / max(np.mean(np.square(texture)), 1e-12))
  return (texture * scale).astype(np.float32)


def corrupt(name: str, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """The corruption called `name` (one of CORRUPTIONS)."""
  return {'shuffled_blocks': shuffled_blocks, 'pitch_jitter': pitch_jitter,
          'stationary_texture': stationary_texture}[name](samples, rng)
