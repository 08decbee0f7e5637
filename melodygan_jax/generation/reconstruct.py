"""Round-trip a song through a trained VQ-VAE: encode, quantize, decode, invert.

What `python -m melodygan_jax.reconstruct` runs (melodygan_jax/reconstruct.py
holds its flags). The waveform comes from the trained vocoder of --vocoder_workdir, else from
Griffin-Lim (--iterations). Without --workdir the song's own log-mel goes
straight to the vocoder (copy synthesis: what the vocoder alone keeps of the
song, the ceiling of everything decoded through it).

Any file data_prep reads, of any length. The song gets prepare's loudness
normalization (not its silence removal, so the output keeps the input's
duration), then runs through the VQ-VAE in chunks that overlap by more than
the model's receptive field, so the joins are seamless. Prints the
reconstruction metrics and writes a 22 050 Hz 16-bit WAV.
"""
import numpy as np

from melodygan_jax import errors
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.audio import loudness
from melodygan_jax.audio import spectral_metrics
from melodygan_jax.audio import synthesis
from melodygan_jax.runs import loading


def prepare_input(path: str) -> np.ndarray:
  """Decoded, mono, 22 050 Hz, loudness-normalized like the training data."""
  samples = audio_io.read_mono(path)
  try:
    return loudness.normalize_loudness(samples, loudness.TARGET_LUFS,
                                       loudness.TRUE_PEAK_CEILING_DBTP)
  except loudness.UnmeasurableLoudness:  # Too short to measure, or silent: keep its level.
    return samples


def reconstruct_normalized(vqvae: loading.LoadedVQVAE, normalized: np.ndarray,
                           chunk_frames: int, overlap_frames: int) -> np.ndarray:
  """[frames, mels] normalized log-mel -> its VQ-VAE reconstruction, chunk by chunk.

  Every chunk is run with `overlap_frames` of context on each side, of which
  only the middle `chunk_frames` are kept; all chunks have one shape, so the
  model compiles once.
  """
  stride = vqvae.time_stride
  if chunk_frames % stride or overlap_frames % stride:
    raise errors.UserError(f'--chunk_frames and --overlap_frames must be multiples of {stride}')
  num_frames = len(normalized)
  num_chunks = -(-num_frames // chunk_frames)
  total = num_chunks * chunk_frames
  padded = np.pad(normalized, ((overlap_frames, total - num_frames + overlap_frames), (0, 0)),
                  mode='reflect' if num_frames > overlap_frames + 1 else 'edge')
  windows = np.stack([padded[i * chunk_frames:(i + 1) * chunk_frames + 2 * overlap_frames]
                      for i in range(num_chunks)])
  model_output = np.asarray(vqvae.jit_reconstruct(vqvae.state, windows))
  middle = model_output[:, overlap_frames:overlap_frames + chunk_frames]
  return middle.reshape(total, -1)[:num_frames]


def reconstruct_file(workdir: str | None, input_path: str, output_path: str, stem: str = 'mix',
                     chunk_frames: int = 1024, overlap_frames: int = 64,
                     iterations: int = 32, vocoder_workdir: str | None = None) -> dict:
  """Reconstructs one file; returns its metrics.

  Args:
    workdir: a finished VQ-VAE run; None: copy synthesis through the vocoder alone.
    input_path, output_path: the song and the WAV written.
    stem: whose normalization statistics the VQ-VAE uses.
    chunk_frames, overlap_frames: the VQ-VAE's windows.
    iterations: Griffin-Lim's, when there is no `vocoder_workdir`.
    vocoder_workdir: a finished configs/vocoder.py run.

  Raises:
    errors.UserError: a missing or unreadable input, a workdir that cannot be
      used, or chunk sizes that do not fit the VQ-VAE's stride (one line).
  """
  if not workdir and not vocoder_workdir:
    raise errors.UserError('give --workdir (a VQ-VAE run), --vocoder_workdir (a vocoder run) '
                           'or both')
  vocoder = loading.vocoder_from_flag(vocoder_workdir, iterations)
  try:
    samples = prepare_input(input_path)
  except FileNotFoundError as e:
    raise errors.UserError(f'--input={input_path}: no such file') from e
  except audio_io.AudioReadError as e:
    raise audio_io.AudioReadError(f'{input_path}: {e}') from e
  log_mel = contract.log_mel(samples)
  metrics = {'input': input_path, 'output': output_path,
             'seconds': len(samples) / contract.SAMPLE_RATE_HZ,
             'vocoder': loading.describe_vocoder(vocoder)}
  recon_log_mel = log_mel
  if workdir:
    vqvae = loading.load_vqvae(workdir)
    normalized = vqvae.normalize(log_mel, stem)
    recon_log_mel = vqvae.denormalize(
        reconstruct_normalized(vqvae, normalized, chunk_frames, overlap_frames), stem)
    metrics.update(log_mel_l1=spectral_metrics.log_mel_l1(log_mel, recon_log_mel),
                   mel_spectral_convergence=float(spectral_metrics.spectral_convergence(
                       log_mel, recon_log_mel)))
  # The whole song in one pass: both vocoders are convolutional over frames, so no seams.
  clip = synthesis.log_mel_to_audio(recon_log_mel[None], vocoder=vocoder)[0]
  clip = np.pad(clip, (0, max(len(samples) - len(clip), 0)))[:len(samples)]
  audio_io.write_wav(output_path, synthesis.finish(clip))
  metrics['audio_mel_spectral_convergence'] = spectral_metrics.audio_spectral_convergence(
      clip, log_mel)
  return metrics
