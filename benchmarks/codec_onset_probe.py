"""Does a codec keep the songs' beat? Onsets of held-out clips against their reconstructions.

  python benchmarks/codec_onset_probe.py --dataset_dir=W/data --vqvae_workdir W1/vqvae W2/vqvae
      [--num_clips=40] [--clip_seconds=10]

The middle `--clip_seconds` of each held-out song (the first `--num_clips`), as
log-mel, through each codec (encode, quantize, decode; no inversion, so no
phase retrieval in the way), and for each: the correlation of the onset-strength
envelope (music_structure.onset_envelope, on the mel in dB) with the song's, its
spread against the song's (1 = as peaky; above it, onsets exaggerated), and the
pulse clarity of both (music_structure.pulse_clarity, what evaluate's profile
reports after inversion). Prints a row per codec and one JSON line.
"""
import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # pylint: disable=wrong-import-position

from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.audio import music_structure  # pylint: disable=wrong-import-position
from melodygan_jax.data import audio_crops  # pylint: disable=wrong-import-position
from melodygan_jax.data import records  # pylint: disable=wrong-import-position
from melodygan_jax.generation import reconstruct  # pylint: disable=wrong-import-position
from melodygan_jax.runs import loading  # pylint: disable=wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--dataset_dir', required=True, help='A prepared data set (data_prep)')
  parser.add_argument('--vqvae_workdir', nargs='+', required=True, help='Codec runs to compare')
  parser.add_argument('--num_clips', type=int, default=40)
  parser.add_argument('--clip_seconds', type=float, default=10.0)
  args = parser.parse_args()
  clip_samples = int(args.clip_seconds * contract.SAMPLE_RATE_HZ)
  held_out = audio_crops.split_audio(args.dataset_dir, records.VALIDATION_SPLIT, clip_samples)
  clips = [contract.log_mel(clip)
           for clip in audio_crops.validation_clips(held_out, clip_samples, args.num_clips)]
  if len(clips) < 2:
    sys.exit(f'codec_onset_probe: {args.dataset_dir} holds {len(clips)} held-out song(s) of '
             f'{args.clip_seconds:g} s; need 2 or more')
  envelopes = [music_structure.onset_envelope_of_log_mel(log_mel) for log_mel in clips]
  songs_pulse = float(np.nanmean([music_structure.pulse_clarity(e) for e in envelopes]))
  print(f'{len(clips)} held-out clips of {args.clip_seconds:g} s; the songs\' pulse clarity '
        f'{songs_pulse:.3f}')
  print(f'{"codec":40s} {"step":>6s} {"envelope corr.":>15s} {"spread":>7s} {"pulse":>6s}')
  results = {'num_clips': len(clips), 'songs_pulse_clarity': songs_pulse, 'codecs': []}
  for workdir in args.vqvae_workdir:
    vqvae = loading.load_vqvae(workdir)
    correlations, spreads, pulses = [], [], []
    for log_mel, envelope in zip(clips, envelopes):
      normalized = vqvae.normalization.normalize(log_mel, 'mix')
      rebuilt = vqvae.normalization.denormalize(
          reconstruct.reconstruct_normalized(vqvae, normalized, chunk_frames=1024,
                                             overlap_frames=64), 'mix')
      rebuilt_envelope = music_structure.onset_envelope_of_log_mel(rebuilt)
      correlations.append(np.corrcoef(envelope, rebuilt_envelope)[0, 1])
      spreads.append(rebuilt_envelope.std() / envelope.std())
      pulses.append(music_structure.pulse_clarity(rebuilt_envelope))
    row = {'workdir': workdir, 'step': vqvae.step,
           'envelope_correlation': float(np.mean(correlations)),
           'envelope_spread': float(np.mean(spreads)), 'pulse_clarity': float(np.nanmean(pulses))}
    results['codecs'].append(row)
    print(f'{workdir[-40:]:40s} {vqvae.step:6d} {row["envelope_correlation"]:15.3f} '
          f'{row["envelope_spread"]:7.3f} {row["pulse_clarity"]:6.3f}')
  print(json.dumps(results))


if __name__ == '__main__':
  main()
