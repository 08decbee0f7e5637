"""The codec on whole held-out segments: mel-domain reconstruction and codebook use.

Log-mel L1, mel spectral convergence and mel cepstral distortion of every
held-out segment through the VQ-VAE, beside the trivial codec that outputs the
data set's mean spectrum; codebook usage and perplexity per residual level.
"""
import numpy as np

from melodygan_jax.audio import spectral_metrics
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import records
from melodygan_jax.evaluation import clip_analysis
from melodygan_jax.evaluation import intervals
from melodygan_jax.models import quantizer as quantizer_lib
from melodygan_jax.runs import loading


def mel_cepstral_distortion(reference: np.ndarray, estimate: np.ndarray) -> float:
  """MCD in dB: mean over frames of (10 / ln 10) sqrt(2 sum_k (c_k - c'_k)^2), k = 1..19.

  The usual formula is for cepstra of the natural-log amplitude; librosa's
  MFCCs are cepstra of dB power, 20 / ln 10 times larger, hence the factor 1/2.
  c0 (overall level) is left out, as usual.
  """
  difference = reference[:, 1:] - estimate[:, 1:]
  return float(np.mean(0.5 * np.sqrt(2.0 * np.sum(difference**2, axis=-1))))


def segments(meta, data, split: str, batch_size: int = 16):
  """Whole normalized segments of a split: [batch, segment_frames, mels] batches + stems."""
  for batch in input_pipeline.sequential_batches(data, meta, split, batch_size,
                                                 crop_frames=meta.segment_frames):
    real = batch['weight'] > 0
    if real.any():
      yield batch['mel'][real], batch['stem'][real]


def evaluate_vqvae(vqvae: loading.LoadedVQVAE, meta, data, *, max_segments: int | None,
                   num_resamples: int, seed: int) -> dict:
  """Mel-domain reconstruction of whole held-out segments, and codebook use."""
  stems = list(data.stems)
  per_segment = {'log_mel_l1': [], 'mel_spectral_convergence': [],
                 'mel_cepstral_distortion_db': [], 'mean_spectrum_sc': []}
  code_counts = np.zeros((vqvae.num_levels, vqvae.codebook_size))
  for mel, stem_ids in segments(meta, data, records.VALIDATION_SPLIT):
    recon, aux = vqvae.jit_outputs(vqvae.state, mel)
    recon, codes = np.asarray(recon), np.asarray(aux['codes'])
    for level in range(vqvae.num_levels):
      code_counts[level] += np.bincount(codes[..., level].reshape(-1),
                                        minlength=vqvae.codebook_size)
    for index, stem_id in enumerate(stem_ids):
      stem = stems[int(stem_id)]
      target = vqvae.denormalize(mel[index], stem)
      estimate = vqvae.denormalize(recon[index], stem)
      per_segment['log_mel_l1'].append(spectral_metrics.log_mel_l1(target, estimate))
      per_segment['mel_spectral_convergence'].append(
          float(spectral_metrics.spectral_convergence(target, estimate)))
      per_segment['mel_cepstral_distortion_db'].append(mel_cepstral_distortion(
          clip_analysis.mfcc_from_log_mel(target),
          clip_analysis.mfcc_from_log_mel(estimate)))
      # The trivial codec: every frame the data set's mean spectrum.
      mean_spectrum = vqvae.denormalize(np.zeros_like(mel[index]), stem)
      per_segment['mean_spectrum_sc'].append(
          float(spectral_metrics.spectral_convergence(target, mean_spectrum)))
    if max_segments is not None and len(per_segment['log_mel_l1']) >= max_segments:
      break

  def entry(values):
    return intervals.interval_entry(intervals.mean_interval(values, num_resamples, seed))
  metrics = {f'vqvae/{name}': entry(values) for name, values in per_segment.items()
             if name != 'mean_spectrum_sc'}
  metrics['baseline_mean_spectrum/mel_spectral_convergence'] = entry(
      per_segment['mean_spectrum_sc'])
  per_level = [quantizer_lib.codebook_statistics(counts) for counts in code_counts]
  for name in ('codebook_usage', 'perplexity'):
    metrics[f'vqvae/{name}'] = float(np.mean([level[name] for level in per_level]))
  metrics['vqvae/codebook_usage_min'] = float(min(level['codebook_usage']
                                                  for level in per_level))
  metrics['vqvae/num_levels'] = vqvae.num_levels
  metrics['vqvae/bits_per_second'] = vqvae.bits_per_second()
  metrics['vqvae/num_segments'] = len(per_segment['log_mel_l1'])
  return metrics
