r"""Measure every stage on a data set's validation split.

  python -m melodygan_jax.evaluate --vqvae_workdir=runs/vqvae [--gan_workdir=runs/gan] \
      --data_dir=data/ --output=metrics.json [--num_samples=64]

VQ-VAE (whole validation segments through encode, quantize, decode):
  log_mel_l1, mel_spectral_convergence, mel_cepstral_distortion_db (c1..c19 of
  librosa MFCCs, which are cepstra of dB mel power), codebook_usage, perplexity.
With a GAN: generated clips (one segment long) are decoded, inverted to audio
and re-analysed; the Fréchet distance of their audio features to held-out real
segments' is reported for MFCC statistics (per clip mean and std) and for the
VQ-VAE encoder's time-pooled features, beside two baselines decoded the same
way (uniform codes; codes i.i.d. from the real frequencies) and the floor
(held-out real against train real).
"""
import json
import math
import sys

from absl import app
from absl import flags
import jax.numpy as jnp
import librosa
import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax.audio import contract
from melodygan_jax.audio import spectral_metrics
from melodygan_jax.audio import synthesis
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import records
from melodygan_jax.evaluation import latent_metrics
from melodygan_jax.generation import pretrained
from melodygan_jax.generation import sample
from melodygan_jax.models import quantizer as quantizer_lib


def mfcc_from_log_mel(log_mel: np.ndarray) -> np.ndarray:
  """[frames, mels] log mel magnitude -> [frames, NUM_MFCC], as data_prep's MFCCs."""
  power_db = librosa.power_to_db(np.exp(2.0 * np.asarray(log_mel, np.float64)).T)
  return librosa.feature.mfcc(S=power_db, n_mfcc=contract.NUM_MFCC).T


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
    yield batch['mel'][real], batch['stem'][real]


def evaluate_vqvae(vqvae: pretrained.LoadedVQVAE, meta, data) -> dict:
  stems = list(data.stems)
  totals = {'l1': 0.0, 'sc': 0.0, 'mcd': 0.0, 'count': 0}
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
      totals['l1'] += spectral_metrics.log_mel_l1(target, estimate)
      totals['sc'] += float(spectral_metrics.spectral_convergence(target, estimate))
      totals['mcd'] += mel_cepstral_distortion(mfcc_from_log_mel(target),
                                               mfcc_from_log_mel(estimate))
      totals['count'] += 1
  count = max(totals['count'], 1)
  per_level = [quantizer_lib.codebook_statistics(counts) for counts in code_counts]
  codebook = {f'vqvae/{name}': float(np.mean([level[name] for level in per_level]))
              for name in ('codebook_usage', 'perplexity')}
  codebook['vqvae/codebook_usage_min'] = float(min(level['codebook_usage']
                                                   for level in per_level))
  codebook['vqvae/bits_per_second'] = vqvae.bits_per_second()
  return {'vqvae/log_mel_l1': totals['l1'] / count,
          'vqvae/mel_spectral_convergence': totals['sc'] / count,
          'vqvae/mel_cepstral_distortion_db': totals['mcd'] / count,
          **codebook, 'vqvae/num_segments': totals['count']}


class AudioFeatures:
  """Per clip: MFCC mean and std, and the VQ-VAE encoder's time-pooled output."""

  def __init__(self, vqvae: pretrained.LoadedVQVAE, stem: str):
    self.vqvae = vqvae
    self.stem = stem

  def of_log_mel(self, log_mels: np.ndarray, mfccs: np.ndarray) -> dict:
    mfcc_stats = np.concatenate([mfccs.mean(1), mfccs.std(1)], axis=-1)
    normalized = self.vqvae.normalize(log_mels, self.stem).astype(np.float32)
    frames = (log_mels.shape[1] // self.vqvae.time_stride) * self.vqvae.time_stride
    pooled = np.mean(np.asarray(self.vqvae.jit_encoder(self.vqvae.state,
                                                       normalized[:, :frames])), axis=1)
    return {'mfcc': mfcc_stats, 'encoder': pooled}

  def of_audio(self, clips: np.ndarray) -> dict:
    pairs = [contract.log_mel_and_mfcc(clip) for clip in clips]
    return self.of_log_mel(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))


def real_features(features: AudioFeatures, meta, data, split: str, stem_id: int) -> dict:
  """Features of the stored segments of one stem (their log-mel and true MFCCs)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  stem = data.stems[stem_id]
  log_mels, mfccs = [], []
  for path in meta.split_files.get(split, []):
    for record in tf.data.TFRecordDataset(path):
      parsed = records.parse_segment(record, meta.segment_frames)
      if parsed['stem'].numpy().decode() == stem:
        log_mels.append(parsed['mel'].numpy())
        mfccs.append(parsed['mfcc'].numpy())
  return features.of_log_mel(np.stack(log_mels), np.stack(mfccs))


def evaluate_gan(gan_workdir: str, vqvae: pretrained.LoadedVQVAE, meta, data,
                 num_samples: int, seed: int = 0) -> dict:
  generator = pretrained.load_generator(gan_workdir)
  stem = data.stems[0]
  features = AudioFeatures(vqvae, stem)
  steps = meta.segment_frames // vqvae.time_stride
  keys, noise = sample.sample_keys_and_noise(generator, seed, range(num_samples))
  generated_codes = np.asarray(sample.generate_codes(
      generator.graphdef, generator.params, jnp.asarray(vqvae.codebooks), keys,
      jnp.asarray(noise), steps, generator.temperature))
  train_codes = np.asarray(vqvae.jit_encode_to_codes(vqvae.state, np.concatenate(
      [mel for mel, _ in segments(meta, data, records.TRAIN_SPLIT)])))
  code_sets = {
      'gan': generated_codes,
      'baseline_uniform': latent_metrics.baseline_codes(
          'uniform', train_codes, vqvae.codebook_size, generated_codes.shape, seed=1),
      'baseline_iid': latent_metrics.baseline_codes(
          'iid', train_codes, vqvae.codebook_size, generated_codes.shape, seed=1),
  }
  held_out = real_features(features, meta, data, records.VALIDATION_SPLIT, 0)
  train = real_features(features, meta, data, records.TRAIN_SPLIT, 0)
  metrics = {}
  for name, codes in code_sets.items():
    log_mel = vqvae.codes_to_log_mel(codes, stem)
    clips = synthesis.log_mel_to_audio(log_mel, seed=seed)
    generated = features.of_audio(clips)
    for kind in ('mfcc', 'encoder'):
      metrics[f'{name}/frechet_{kind}'] = latent_metrics.frechet_distance(
          generated[kind], held_out[kind])
  for kind in ('mfcc', 'encoder'):
    metrics[f'floor/frechet_{kind}'] = latent_metrics.frechet_distance(
        train[kind], held_out[kind])
  metrics['gan/step'] = generator.step
  metrics['gan/num_samples'] = num_samples
  return metrics


def evaluate(vqvae_workdir: str, data_dir: str, gan_workdir: str | None = None,
             num_samples: int = 64) -> dict:
  vqvae = pretrained.load_vqvae(vqvae_workdir)
  meta = input_pipeline.load_dataset_meta(data_dir)
  data = vqvae.config.data
  data.dataset_dir = data_dir
  if meta.segment_frames % vqvae.time_stride:
    raise pretrained.WorkdirError(f'{data_dir}: segments of {meta.segment_frames} frames are '
                                  f'not a multiple of the VQ-VAE stride {vqvae.time_stride}')
  input_pipeline.check_data_config(data, meta)
  metrics = {'vqvae/step': vqvae.step}
  metrics.update(evaluate_vqvae(vqvae, meta, data))
  if gan_workdir:
    metrics.update(evaluate_gan(gan_workdir, vqvae, meta, data, num_samples))
  return metrics


def main(argv):
  if len(argv) > 1:
    sys.exit(f'evaluate: unexpected arguments: {" ".join(argv[1:])}')
  config = flags.FLAGS
  try:
    metrics = evaluate(config.vqvae_workdir, config.data_dir, config.gan_workdir,
                       config.num_samples)
  except (pretrained.WorkdirError, input_pipeline.DatasetError) as e:
    sys.exit(f'evaluate: {e}')
  atomic_files.write_json(config.output, metrics)
  width = max(len(name) for name in metrics)
  for name, value in metrics.items():
    print(f'{name:{width}s} {value:.4g}' if isinstance(value, float) and not math.isnan(value)
          else f'{name:{width}s} {value}')
  print(json.dumps(metrics))


def run():
  flags.DEFINE_string('vqvae_workdir', None, 'A finished configs/vqvae.py run.')
  flags.DEFINE_string('gan_workdir', None, 'A finished configs/gan.py run (optional).')
  flags.DEFINE_string('data_dir', None, 'A data_prep.prepare --output_dir.')
  flags.DEFINE_string('output', 'metrics.json', 'Where the metrics are written.')
  flags.DEFINE_integer('num_samples', 64, 'Generated clips (and baseline clips) compared.')
  flags.mark_flags_as_required(['vqvae_workdir', 'data_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
