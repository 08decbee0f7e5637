r"""Score separated stems against true ones: SDR, SIR, SAR and SI-SDR per stem.

  python -m data_prep.score_separation --reference_dir=demo/corpus/stems \
      --estimate_dir=data/clean [--output=separation.json]

reference_dir holds <song>/vocals.wav and <song>/instrumental.wav (the demo
corpus writes them); estimate_dir is prepare's clean/ folder: <song>.wav (the
mix) with <song>.vocals.wav and <song>.instrumental.wav. The plain mixture
scored as both stems is the baseline, so the improvement in dB shows.
SDR/SIR/SAR are BSS Eval with 512-tap distortion filters over the whole
signal (mir_eval); SI-SDR is scale-invariant SDR (Le Roux et al. 2019). Both
ignore prepare's loudness gain. Score a run made with --noremove_silence if
the songs have long silences, so the stems stay aligned with the references.
"""
import json
import pathlib
import sys
import warnings

from absl import app
from absl import flags
import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax.audio import audio_io

STEMS = ('vocals', 'instrumental')


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
  """Scale-invariant SDR in dB."""
  reference = reference - reference.mean()
  estimate = estimate - estimate.mean()
  scale = np.dot(estimate, reference) / max(np.dot(reference, reference), 1e-12)
  target = scale * reference
  noise = estimate - target
  return float(10 * np.log10(max(np.dot(target, target), 1e-12) / max(np.dot(noise, noise), 1e-12)))


def bss_eval(references: np.ndarray, estimates: np.ndarray) -> dict[str, np.ndarray]:
  """SDR, SIR, SAR per source of [sources, samples] arrays."""
  import mir_eval  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():  # mir_eval warns that bss_eval is deprecated in favour of museval.
    warnings.simplefilter('ignore')
    sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(references, estimates,
                                                            compute_permutation=False)
  return {'sdr': sdr, 'sir': sir, 'sar': sar}


def score(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray]) -> dict:
  """Metrics per stem of one song; all signals mono at the same rate."""
  length = min(len(x) for x in [*references.values(), *estimates.values()])
  refs = np.stack([references[stem][:length] for stem in STEMS])
  ests = np.stack([estimates[stem][:length] for stem in STEMS])
  metrics = bss_eval(refs, ests)
  return {stem: {'sdr': float(metrics['sdr'][i]), 'sir': float(metrics['sir'][i]),
                 'sar': float(metrics['sar'][i]), 'si_sdr': si_sdr(refs[i], ests[i])}
          for i, stem in enumerate(STEMS)}


def score_folders(reference_dir: str, estimate_dir: str) -> dict:
  """Every song of reference_dir with estimates: per song, and the means.

  Raises:
    ValueError: no song of reference_dir has estimates in estimate_dir.
  """
  songs = {}
  for folder in sorted(p for p in pathlib.Path(reference_dir).iterdir() if p.is_dir()):
    estimate_dir_path = pathlib.Path(estimate_dir)
    mix_path = estimate_dir_path / f'{folder.name}.wav'
    stem_paths = {stem: estimate_dir_path / f'{folder.name}.{stem}.wav' for stem in STEMS}
    if not mix_path.exists() or not all(p.exists() for p in stem_paths.values()):
      continue
    references = {stem: audio_io.read_mono(folder / f'{stem}.wav') for stem in STEMS}
    estimates = {stem: audio_io.read_mono(path) for stem, path in stem_paths.items()}
    mix = audio_io.read_mono(mix_path)
    separated = score(references, estimates)
    mixture = score(references, {stem: mix for stem in STEMS})
    songs[folder.name] = {
        stem: {**separated[stem], **{f'mixture_{k}': v for k, v in mixture[stem].items()},
               'sdr_improvement': separated[stem]['sdr'] - mixture[stem]['sdr'],
               'si_sdr_improvement': separated[stem]['si_sdr'] - mixture[stem]['si_sdr']}
        for stem in STEMS}
  if not songs:
    raise errors.ConfigError(f'no song of {reference_dir} has <song>.wav, <song>.vocals.wav and '
                     f'<song>.instrumental.wav in {estimate_dir}')
  keys = next(iter(songs.values()))['vocals'].keys()
  mean = {stem: {key: float(np.mean([song[stem][key] for song in songs.values()]))
                 for key in keys} for stem in STEMS}
  return {'songs': songs, 'mean': mean, 'num_songs': len(songs)}


def main(argv):
  if len(argv) > 1:
    sys.exit(f'score_separation: unexpected arguments: {" ".join(argv[1:])}')
  config = flags.FLAGS
  try:
    report = score_folders(config.reference_dir, config.estimate_dir)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f'score_separation: {e}')
  if config.output:
    atomic_files.write_json(config.output, report)
  print(f'{report["num_songs"]} songs; mean dB (separated / mixture baseline / improvement):')
  for stem in STEMS:
    row = report['mean'][stem]
    print(f'  {stem:12s} SDR {row["sdr"]:6.2f} / {row["mixture_sdr"]:6.2f} / '
          f'{row["sdr_improvement"]:+6.2f}   SI-SDR {row["si_sdr"]:6.2f} / '
          f'{row["mixture_si_sdr"]:6.2f} / {row["si_sdr_improvement"]:+6.2f}   '
          f'SIR {row["sir"]:6.2f}  SAR {row["sar"]:6.2f}')
  print(json.dumps(report['mean']))


def run():
  flags.DEFINE_string('reference_dir', None, 'Folder of <song>/{vocals,instrumental}.wav.')
  flags.DEFINE_string('estimate_dir', None, "prepare's clean/ folder.")
  flags.DEFINE_string('output', '', 'Optional JSON report.')
  flags.mark_flags_as_required(['reference_dir', 'estimate_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
