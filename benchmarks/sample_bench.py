"""Generation speed end to end, and the inversion against librosa, on the same clips.

  python benchmarks/sample_bench.py [--seconds=10] [--num_samples=8]

End to end: the default GAN (configs/gan.py) generates codes, the default
VQ-VAE (configs/vqvae.py) decodes them and Griffin-Lim (32 iterations) inverts
them, in batches, as melodygan_jax.generation.sample does (weights are random: speed does
not depend on training). Inversion: 5 s clips of real music (Debian's
drascula-music): log-mel -> audio with librosa.feature.inverse.mel_to_audio and
with melodygan_jax.audio.inversion at the same 32 iterations, for one clip and for a
batch of 16; quality is the mel spectral convergence of the re-analysed output
(mean over the clips; lower is better).
"""
import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import librosa  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from flax import nnx  # pylint: disable=wrong-import-position

from configs import gan as gan_config  # pylint: disable=wrong-import-position
from configs import vqvae as vqvae_config  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.audio import spectral_metrics  # pylint: disable=wrong-import-position
from melodygan_jax.audio import audio_io  # pylint: disable=wrong-import-position
from melodygan_jax.audio import inversion  # pylint: disable=wrong-import-position
from melodygan_jax.generation import long_form  # pylint: disable=wrong-import-position
from melodygan_jax.generation import sampling  # pylint: disable=wrong-import-position
from melodygan_jax.audio import synthesis  # pylint: disable=wrong-import-position
from melodygan_jax.runs import loading  # pylint: disable=wrong-import-position
from melodygan_jax.training import gan_trainer  # pylint: disable=wrong-import-position
from melodygan_jax.training import vqvae_trainer  # pylint: disable=wrong-import-position
import real_music  # pylint: disable=wrong-import-position

ITERATIONS = 32
CLIP_S = 5.0


def end_to_end(seconds: float, num_samples: int, batch_size: int) -> float:
  """Seconds of audio per wall-second: generate, decode, invert (after a warm-up)."""
  v_config = vqvae_config.get_config()
  (graphdef, _), state, _, _ = vqvae_trainer.init_state(v_config)
  codebook = nnx.merge(graphdef, state.params, state.codebook).quantizer.codebooks()
  g_config = gan_config.get_config()
  gen_graphdef, _, gan_state, _ = gan_trainer.init_state(g_config, *codebook.shape)
  generator = loading.LoadedGenerator(config=g_config, vqvae=None, graphdef=gen_graphdef,
                                     params=gan_state.generator_ema, step=0, workdir='')
  decode = jax.jit(lambda state, codes: nnx.merge(
      graphdef, state.params, state.codebook).decode_codes(codes))
  steps = sampling.steps_for_seconds(seconds, int(np.prod(v_config.model.strides)))
  vocoder = inversion.GriffinLimVocoder(iterations=ITERATIONS)

  def run_all():
    for first in range(0, num_samples, batch_size):
      indices = list(range(first, min(first + batch_size, num_samples)))
      keys, noise = sampling.keys_and_noise(generator, 0, indices)
      codes = long_form.generate_codes(generator.graphdef, generator.params, codebook, keys,
                                       jnp.asarray(noise), long_form.plan_for(generator, steps),
                                       generator.temperature)
      log_mel = decode(state, codes)  # Normalized; the scale does not change the cost.
      clips = vocoder(log_mel, synthesis.clip_keys(0, indices))
      np.asarray(clips)  # Audio back on the host, as it is written to files.

  run_all()
  start = time.perf_counter()
  run_all()
  return num_samples * seconds / (time.perf_counter() - start)


def inversion_figures(clips_log_mel: list[np.ndarray]) -> dict:
  keys = synthesis.clip_keys(0, range(len(clips_log_mel)))
  batch = jnp.asarray(np.stack(clips_log_mel))
  jax_vocoder = inversion.GriffinLimVocoder(iterations=ITERATIONS)

  def jax_invert(log_mels, keys):
    return np.asarray(jax_vocoder(log_mels, keys))

  def librosa_invert(log_mel, seed):
    np.random.seed(seed)  # mel_to_audio draws its random phases from the global state.
    return librosa.feature.inverse.mel_to_audio(
        np.exp(log_mel).T, sr=contract.SAMPLE_RATE_HZ, n_fft=contract.N_FFT,
        hop_length=contract.HOP_LENGTH, win_length=contract.WIN_LENGTH, power=1.0,
        fmin=contract.MEL_FMIN_HZ, fmax=contract.MEL_FMAX_HZ, n_iter=ITERATIONS)

  jax_invert(batch[:1], keys[:1])  # Warm-up (compile) for both batch sizes.
  jax_invert(batch, keys)
  librosa_invert(clips_log_mel[0], 0)
  start = time.perf_counter()
  one_jax = jax_invert(batch[:1], keys[:1])
  one_jax_s = time.perf_counter() - start
  start = time.perf_counter()
  one_librosa = librosa_invert(clips_log_mel[0], 0)
  one_librosa_s = time.perf_counter() - start
  start = time.perf_counter()
  all_jax = jax_invert(batch, keys)
  batch_jax_s = time.perf_counter() - start
  start = time.perf_counter()
  all_librosa = [librosa_invert(m, i) for i, m in enumerate(clips_log_mel)]
  batch_librosa_s = time.perf_counter() - start
  sc = spectral_metrics.audio_spectral_convergence
  return {
      'one_clip_jax_ms': one_jax_s * 1e3, 'one_clip_librosa_ms': one_librosa_s * 1e3,
      'batch16_jax_ms': batch_jax_s * 1e3, 'batch16_librosa_ms': batch_librosa_s * 1e3,
      'sc_jax': float(np.mean([sc(a, m) for a, m in zip(all_jax, clips_log_mel)])),
      'sc_librosa': float(np.mean([sc(a, m) for a, m in zip(all_librosa, clips_log_mel)])),
      'sc_one_clip_jax': sc(one_jax[0], clips_log_mel[0]),
      'sc_one_clip_librosa': sc(one_librosa, clips_log_mel[0]),
  }


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--seconds', type=float, default=10.0)
  parser.add_argument('--num_samples', type=int, default=8)
  parser.add_argument('--batch_size', type=int, default=8)
  args = parser.parse_args()
  real_time = end_to_end(args.seconds, args.num_samples, args.batch_size)

  paths = real_music.music_files(16 * 30)
  clips = []
  for path in paths:
    samples = audio_io.read_mono(path)
    for start in range(int(10 * contract.SAMPLE_RATE_HZ), len(samples) - int(CLIP_S * 22050),
                       int(30 * contract.SAMPLE_RATE_HZ)):
      clips.append(contract.log_mel(samples[start:start + int(CLIP_S * contract.SAMPLE_RATE_HZ)]))
      if len(clips) == 16:
        break
    if len(clips) == 16:
      break
  figures = inversion_figures(clips)
  device = jax.devices()[0]
  print(f'default GAN + VQ-VAE + Griffin-Lim ({ITERATIONS} it.), {args.num_samples} x '
        f'{args.seconds:g} s on {device.platform} ({device.device_kind}): '
        f'{real_time:.1f} s of audio per second')
  print(f'inversion of {CLIP_S:g} s real-music clips, {ITERATIONS} iterations:')
  print(f'{"":28s} {"JAX ms":>9s} {"librosa ms":>11s} {"speedup":>8s}')
  print(f'{"one clip":28s} {figures["one_clip_jax_ms"]:9.1f} {figures["one_clip_librosa_ms"]:11.1f} '
        f'{figures["one_clip_librosa_ms"] / figures["one_clip_jax_ms"]:8.1f}')
  print(f'{"batch of 16":28s} {figures["batch16_jax_ms"]:9.1f} {figures["batch16_librosa_ms"]:11.1f} '
        f'{figures["batch16_librosa_ms"] / figures["batch16_jax_ms"]:8.1f}')
  print(f'mel spectral convergence (16 clips, mean): JAX {figures["sc_jax"]:.4f}, '
        f'librosa {figures["sc_librosa"]:.4f}')
  result = {
      'platform': device.platform,
      'real_time_end_to_end': round(real_time, 2),
      'inversion_one_clip_jax_ms': round(figures['one_clip_jax_ms'], 1),
      'inversion_one_clip_librosa_ms': round(figures['one_clip_librosa_ms'], 1),
      'inversion_batch16_jax_ms': round(figures['batch16_jax_ms'], 1),
      'inversion_batch16_librosa_ms': round(figures['batch16_librosa_ms'], 1),
      'speedup_vs_librosa': round(figures['one_clip_librosa_ms'] / figures['one_clip_jax_ms'], 2),
      'speedup_vs_librosa_batch16': round(
          figures['batch16_librosa_ms'] / figures['batch16_jax_ms'], 2),
      'spectral_convergence_jax': round(figures['sc_jax'], 4),
      'spectral_convergence_librosa': round(figures['sc_librosa'], 4),
  }
  print(json.dumps(result))


if __name__ == '__main__':
  main()
