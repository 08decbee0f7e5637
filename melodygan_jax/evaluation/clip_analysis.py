"""Audio clips -> the features every evaluated set is compared by.

musicnn embeddings, MFCC statistics, VQ-VAE encoder features, the music
profile (audio/music_structure.py) and log-mel patches for the classifier
two-sample test (evaluation/two_sample.py) of clips
read one batch at a time (real clips from their plan, generated codes
decoded and inverted), and the per-clip reconstruction scores of real clips
through the codec and the inversion.
"""
import librosa
import numpy as np

from melodygan_jax.audio import contract
from melodygan_jax.audio import music_structure
from melodygan_jax.audio import synthesis
from melodygan_jax.evaluation import clip_plans
from melodygan_jax.evaluation import embeddings as embeddings_lib
from melodygan_jax.evaluation import reconstruction
from melodygan_jax.evaluation import two_sample
from melodygan_jax.runs import loading


EVALUATED_STEM = clip_plans.EVALUATED_STEM
FEATURE_KINDS = ('musicnn', 'mfcc', 'encoder')


def mfcc_from_log_mel(log_mel: np.ndarray) -> np.ndarray:
  """[frames, mels] log mel magnitude -> [frames, NUM_MFCC], as data_prep's MFCCs."""
  power_db = librosa.power_to_db(np.exp(2.0 * np.asarray(log_mel, np.float64)).T)
  return librosa.feature.mfcc(S=power_db, n_mfcc=contract.NUM_MFCC).T


class ClipAnalyzer:
  """Audio clips -> musicnn embeddings, MFCC statistics and VQ-VAE encoder features."""

  def __init__(self, vqvae: loading.LoadedVQVAE, embedder: embeddings_lib.Embedder,
               batch_size: int, vocoder=None,
               patches_per_clip: int = two_sample.TwoSampleOptions.patches_per_clip):
    self.vqvae = vqvae
    self.embedder = embedder
    self.batch_size = batch_size
    self.vocoder = vocoder  # The inversion of every set; None: Griffin-Lim.
    self.patches_per_clip = patches_per_clip

  @property
  def inversion_name(self) -> str:
    """The name of the set of true log-mels through the inversion alone."""
    return 'vocoder' if isinstance(self.vocoder, loading.NeuralVocoder) else 'griffin_lim'

  def log_mels(self, clips: np.ndarray) -> np.ndarray:
    """[batch, samples] -> [batch, frames, NUM_MELS] log-mel, frames a multiple of the stride."""
    log_mel = np.stack([contract.log_mel(clip) for clip in clips])
    frames = log_mel.shape[1] // self.vqvae.time_stride * self.vqvae.time_stride
    return log_mel[:, :frames]

  def features(self, clips: np.ndarray, patches: bool = True) -> dict:
    """[batch, samples] -> {'musicnn': [batch, 200], 'mfcc': [batch, 40], 'encoder': [batch, dim]}.

    Also 'profile' [batch, len(PROFILE_ENTRIES)] (NaN where undefined) and, with
    `patches` (for the two-sample classifier), 'patches' [batch, patches,
    PATCH_FRAMES, PATCH_MELS] float16.
    """
    log_mel = self.log_mels(clips)
    mfccs = np.stack([mfcc_from_log_mel(one) for one in log_mel])
    normalized = self.vqvae.normalize(log_mel, EVALUATED_STEM).astype(np.float32)
    encoded = np.asarray(self.vqvae.jit_encoder(
        self.vqvae.state, clip_plans.fixed_batch(normalized, self.batch_size)))
    features = {'musicnn': self.embedder.embed(clips, contract.SAMPLE_RATE_HZ),
                'mfcc': np.concatenate([mfccs.mean(1), mfccs.std(1)], axis=-1),
                'encoder': encoded[:len(clips)].mean(axis=1)}
    features['profile'] = music_structure.profiles(clips)
    if patches:
      features['patches'] = np.stack([two_sample.log_mel_patches(one, self.patches_per_clip)
                                      for one in log_mel])
    return features

  def reconstruct(self, log_mel: np.ndarray) -> np.ndarray:
    """[batch, frames, mels] log-mel -> the codec's reconstruction (un-normalized)."""
    normalized = self.vqvae.normalize(log_mel, EVALUATED_STEM).astype(np.float32)
    recon = np.asarray(self.vqvae.jit_reconstruct(
        self.vqvae.state, clip_plans.fixed_batch(normalized, self.batch_size)))
    return self.vqvae.denormalize(recon[:len(log_mel)], EVALUATED_STEM)


class FeatureSets:
  """Features of several clip sets, appended batch by batch: rows [n, dim] each."""

  def __init__(self):
    self._parts = {}

  def add(self, name: str, features: dict) -> None:
    for kind, rows in features.items():
      self._parts.setdefault(name, {}).setdefault(kind, []).append(np.asarray(rows))

  def get(self, name: str, kind: str) -> np.ndarray:
    return np.concatenate(self._parts[name][kind])

  def names(self) -> list[str]:
    return list(self._parts)

  def count(self, name: str) -> int:
    return len(self.get(name, FEATURE_KINDS[0]))


def invert(log_mel: np.ndarray, clip_samples: int, seed: int, first_index: int,
           batch_size: int, vocoder=None) -> np.ndarray:
  """Log-mel [batch, frames, mels] -> audio [batch, clip_samples] by `vocoder` (default:
  the pipeline's Griffin-Lim)."""
  indices = range(first_index, first_index + batch_size)
  audio = synthesis.log_mel_to_audio(
      clip_plans.fixed_batch(log_mel.astype(np.float32), batch_size), seed=seed,
      indices=indices, vocoder=vocoder)
  return clip_plans.fit_length(audio[:len(log_mel)], clip_samples)


def waveform_scores(original: np.ndarray, estimate: np.ndarray, visqol) -> dict:
  """One clip's reconstruction scores: MR-STFT and mel distance, ViSQOL if `visqol`."""
  scores = {'mr_stft_distance': reconstruction.multi_resolution_stft_distance(
                original, estimate)['total'],
            # The contract's log-mel, so the figure follows a change of bands or band edge.
            'mel_distance': reconstruction.mel_distance(
                original, estimate, contract.SAMPLE_RATE_HZ, n_fft=contract.N_FFT,
                hop_length=contract.HOP_LENGTH, num_mels=contract.NUM_MELS,
                fmin_hz=contract.MEL_FMIN_HZ, fmax_hz=contract.MEL_FMAX_HZ,
                log_floor=contract.LOG_MEL_FLOOR)}
  if visqol is not None:
    scores['visqol'] = visqol.score(original, estimate, contract.SAMPLE_RATE_HZ)
  return scores


def analyze_real_clips(analyzer: ClipAnalyzer, sets: FeatureSets, plan, set_name: str,
                       clip_samples: int, seed: int, reconstruct: bool = False, visqol=None,
                       num_visqol: int = 0, patches: bool = True,
                       copies: FeatureSets | None = None) -> dict[str, list[float]]:
  """Features of real clips (and, with `reconstruct`, of their codec and inversion copies).

  ViSQOL (`visqol`, slow) scores the first `num_visqol` clips only; `seed`
  seeds the inversion; without `patches`, no classifier patches. With
  `copies`, the copies go there with their music profile only (the reference
  half's: a profile needs no reference to be compared with, so it covers every
  held-out song), and no scores are kept.

  Returns:
    Per-clip waveform scores, 'vqvae/...' and 'griffin_lim/...' lists (empty
    without `reconstruct`).
  """
  scores = {}
  batches = clip_plans.read_clip_batches(plan, clip_samples, analyzer.batch_size)
  for batch_index, clips in enumerate(batches):
    first = batch_index * analyzer.batch_size
    sets.add(set_name, analyzer.features(clips, patches))
    if not reconstruct:
      continue
    log_mel = analyzer.log_mels(clips)
    for name, source_mel in (('vqvae_reconstruction', analyzer.reconstruct(log_mel)),
                             (analyzer.inversion_name, log_mel)):
      audio = invert(source_mel, clip_samples, seed, first, analyzer.batch_size,
                     analyzer.vocoder)
      if copies is not None:
        copies.add(name, {'profile': music_structure.profiles(audio)})
        continue
      sets.add(name, analyzer.features(audio))
      for offset, (original, estimate) in enumerate(zip(clips, audio)):
        use_visqol = visqol if first + offset < num_visqol else None
        for score, value in waveform_scores(original, estimate, use_visqol).items():
          scores.setdefault(f'{name}/{score}', []).append(value)
  return scores


def analyze_codes(analyzer: ClipAnalyzer, sets: FeatureSets, set_name: str, codes: np.ndarray,
                  clip_samples: int, seed: int) -> None:
  """Codes [n, steps] decoded, inverted and analysed as clips, one batch at a time."""
  batch_size = analyzer.batch_size
  for first in range(0, len(codes), batch_size):
    chunk = codes[first:first + batch_size]
    log_mel = analyzer.vqvae.codes_to_log_mel(clip_plans.fixed_batch(chunk, batch_size),
                                              EVALUATED_STEM)[:len(chunk)]
    sets.add(set_name, analyzer.features(invert(log_mel, clip_samples, seed, first,
                                                batch_size, analyzer.vocoder)))
