r"""Round-trip a song through a trained VQ-VAE (encode, quantize, decode, invert), or
through a vocoder alone.

  python -m melodygan_jax.reconstruct --workdir=runs/vqvae --input=song.mp3 \
      --output=song_vq.wav [--stem=mix] [--chunk_frames=1024] [--overlap_frames=64] \
      [--vocoder_workdir=runs/vocoder]
  python -m melodygan_jax.reconstruct --vocoder_workdir=runs/vocoder --input=song.mp3 \
      --output=song_vocoder.wav

Prints the reconstruction metrics and writes a 22 050 Hz 16-bit WAV
(generation/reconstruct.py says how).
"""
import json

from absl import app
from absl import flags

from melodygan_jax import errors
from melodygan_jax.generation import reconstruct as reconstruct_lib


def main(argv):
  config = flags.FLAGS
  with errors.exit_on_user_error('reconstruct'):
    if len(argv) > 1:
      raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    metrics = reconstruct_lib.reconstruct_file(
        config.workdir, config.input, config.output, config.stem, config.chunk_frames,
        config.overlap_frames, config.iterations, config.vocoder_workdir)
  vocoder = 'the vocoder' if config.vocoder_workdir else 'Griffin-Lim'
  if config.workdir:
    print(f'{metrics["seconds"]:.2f} s -> {config.output}: log-mel L1 '
          f'{metrics["log_mel_l1"]:.3f}, mel spectral convergence '
          f'{metrics["mel_spectral_convergence"]:.3f} (VQ-VAE), '
          f'{metrics["audio_mel_spectral_convergence"]:.3f} (after {vocoder})')
  else:
    print(f'{metrics["seconds"]:.2f} s -> {config.output}: copy synthesis through {vocoder}, '
          f'mel spectral convergence {metrics["audio_mel_spectral_convergence"]:.3f}')
  print(json.dumps(metrics))


def run():
  flags.DEFINE_string('workdir', None, 'A finished configs/vqvae.py run; without it, '
                      'copy synthesis through --vocoder_workdir alone.')
  flags.DEFINE_string('vocoder_workdir', None, 'A finished configs/vocoder.py run '
                      '(default: Griffin-Lim).')
  flags.DEFINE_string('input', None, 'Any audio file.')
  flags.DEFINE_string('output', None, 'The reconstructed WAV.')
  flags.DEFINE_string('stem', 'mix', 'Whose normalization statistics to use.')
  flags.DEFINE_integer('chunk_frames', 1024, 'Frames per VQ-VAE pass (multiple of the stride).')
  flags.DEFINE_integer('overlap_frames', 64, 'Context on each side of a chunk.')
  flags.DEFINE_integer('iterations', 32, 'Griffin-Lim iterations (without --vocoder_workdir).')
  flags.mark_flags_as_required(['input', 'output'])
  app.run(main)


if __name__ == '__main__':
  run()
