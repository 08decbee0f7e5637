r"""Measure the codec and the generator on a data set's held-out music.

What `python -m melodygan_jax.evaluate` runs (melodygan_jax/evaluate.py holds its flags):

  python -m melodygan_jax.evaluate --vqvae_workdir=runs/vqvae [--gan_workdir=runs/gan] \
      --data_dir=data/ --output=metrics.json [--num_samples=N] [--max_clips=N] \
      [--max_training_clips=N] [--seed=K] [--clip_seconds=6] [--num_visqol=8] \
      [--num_resamples=200] [--vocoder_workdir=runs/vocoder] [--c2st_steps=300]

Every audio set is made of clips of --clip_seconds, analysed streaming in
batches (memory does not grow with the data set). Held-out real clips are cut
from the cleaned WAVs (prepare's report.json) and split by source file into
two disjoint halves of equal size: half A is the reference every set is
compared with; half B against A is the real-vs-real floor. Compared sets, all
of the same size as B:
  floor                 real held-out clips (half B; the profile: both halves)
  vqvae_reconstruction  half B through the codec and the inversion: the ceiling
                        a generator of this codec can reach
  griffin_lim           half B's true log-mel through the inversion alone (named
                        vocoder when --vocoder_workdir makes the inversion a trained
                        vocoder, which then inverts every set)
  gan                   generated codes, decoded and inverted (with --gan_workdir)
  baseline_iid          codes drawn i.i.d. from the training code frequencies
  baseline_uniform      uniformly drawn codes
Per set, against half A: FAD, FAD∞ (with its R²) and KAD on musicnn MSD
embeddings, and the Fréchet distance of MFCC statistics and of VQ-VAE encoder
features, each with a bootstrap 95% interval ({"value", "low", "high"} in the
JSON). What an embedding does not hear: per set, a music-structure `profile`
(evaluation/music_profile.py: pulse clarity, tempo stability, chroma stability
and entropy, key clarity, harmonic share, onset density, bar-scale repetition;
per entry the mean with its interval, the per-clip values and the distance from
the held-out songs in their clips' standard deviations) and `c2st_auc`, the
held-out AUC of a small classifier trained to tell the set from half A on log-mel
patches (evaluation/two_sample.py; 0.5 = indistinguishable, the floor's is real
vs real). A profile compares with no reference, so those of real music and its
copies (floor, vqvae_reconstruction, griffin_lim) cover both halves, with
intervals that draw whole songs (halves of a few songs each can differ by more
than a generator does from real music); `training/profile` is the training
clips' (what the generator was shown). Memorization: each generated clip's
nearest training clip in musicnn space, and the share closer than 95% of
held-out real clips get. Rhythm following, for a generator with a rhythm bank
(evaluation/rhythm_following.py): clip by clip, the pulse clarity heard in each
piece against that of the songs' envelope it was given to play, as a
correlation and a slope (1: each envelope's pulse comes out as it went in).
Reconstruction of half B's waveforms: ViSQOL (on --num_visqol clips),
multi-resolution STFT distance and mel distance against the original, for the
codec + inversion and for the inversion alone (its floor); on whole held-out
segments: log-mel L1, mel spectral convergence and MCD, beside the mean-spectrum
codec. Codes: codebook usage and perplexity; with a GAN, code-histogram and
bigram JS distances, latent Fréchet distance, distinct share and copied runs.
"""
import dataclasses
import math
import time

from absl import logging
import numpy as np

from melodygan_jax import errors
from melodygan_jax.audio import contract
from melodygan_jax.audio import music_structure
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import records
from melodygan_jax.data import reference_clips
from melodygan_jax.evaluation import clip_analysis
from melodygan_jax.evaluation import clip_plans
from melodygan_jax.evaluation import codec_metrics
from melodygan_jax.evaluation import distances
from melodygan_jax.evaluation import embeddings as embeddings_lib
from melodygan_jax.evaluation import intervals
from melodygan_jax.evaluation import latent_metrics
from melodygan_jax.evaluation import memorization
from melodygan_jax.evaluation import music_profile
from melodygan_jax.evaluation import reconstruction
from melodygan_jax.evaluation import rhythm_following
from melodygan_jax.evaluation import two_sample
from melodygan_jax.generation import sampling
from melodygan_jax.runs import loading
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.runs import style_strength as style_strength_lib


EVALUATED_STEM = clip_plans.EVALUATED_STEM


class EvaluationError(errors.UserError, ValueError):
  """Evaluation cannot run on these inputs (one line, names the fix)."""


@dataclasses.dataclass(frozen=True)
class EvaluationOptions:
  num_samples: int | None = None  # Clips per compared set; default (and most) half B's size.
  max_clips: int | None = None    # Most real clips read per split.
  # Most training clips the memorization check reads and training segments the code
  # statistics read (None: max_clips), spread over every training song like any cap; the
  # generated clips and the floor meet the same ones.
  max_training_clips: int | None = None
  seed: int = 0
  clip_seconds: float = 6.0
  num_visqol: int = 8             # ViSQOL is slow (~1.5 s per 10 s clip): a subset.
  num_resamples: int = 200        # Bootstrap draws per interval.
  batch_size: int = 8             # Clips per decode / inversion / embedding batch.
  vocoder_workdir: str | None = None  # A vocoder run inverts every set; default Griffin-Lim.
  c2st_steps: int = two_sample.TwoSampleOptions.num_steps  # Classifier steps per set.
  # The generator's global noise scale; None: the run's calibrated strength (runs/style_strength.py).
  style_strength: float | None = None


def distances_to_reference(reference: np.ndarray, evaluated: np.ndarray, kind: str,
                           options: EvaluationOptions, bandwidth: float) -> dict:
  """Fréchet (and for musicnn FAD∞, KAD) of one set against the reference, with intervals."""
  seed, resamples = options.seed, options.num_resamples
  if kind != 'musicnn':
    return {f'frechet_{kind}': intervals.interval_entry(distances.fad_interval(
        reference, evaluated, num_resamples=resamples, seed=seed))}
  min_n = max(2, len(evaluated) // 4)

  def fad_infinity_value(a, b):
    return distances.fad_infinity(a, b, num_points=6, min_n=min_n, seed=seed).value
  extrapolation = distances.fad_infinity(reference, evaluated, min_n=min_n, seed=seed)
  low = high = math.nan  # Too few clips to draw at two sizes: no FAD∞, no interval.
  if not math.isnan(extrapolation.value):
    infinity = distances.bootstrap_interval(fad_infinity_value, reference, evaluated,
                                            num_resamples=max(resamples // 4, 20), seed=seed)
    low, high = infinity.low, infinity.high
  return {'fad': intervals.interval_entry(distances.fad_interval(
              reference, evaluated, num_resamples=resamples, seed=seed)),
          'fad_infinity': {'value': extrapolation.value, 'low': low, 'high': high},
          'fad_infinity_r2': extrapolation.r2,
          'kad': intervals.interval_entry(distances.kad_interval(
              reference, evaluated, bandwidth=bandwidth, num_resamples=resamples, seed=seed))}


def stream_codes(vqvae: loading.LoadedVQVAE, meta, data, split: str,
                 max_segments: int | None) -> np.ndarray:
  """The codes of a split's whole segments [n, steps, levels] (small: ints, not spectrograms).

  Under a cap, every k-th batch of the whole split: an even spread over its songs, not
  its first shards' songs.
  """
  stride = 1
  if max_segments is not None:
    stride = max(meta.num_records(split, data.stems) // max_segments, 1)
  codes, count = [], 0
  for index, (mel, _) in enumerate(codec_metrics.segments(meta, data, split)):
    if index % stride:
      continue
    codes.append(np.asarray(vqvae.jit_encode_to_codes(vqvae.state, mel)))
    count += len(mel)
    if max_segments is not None and count >= max_segments:
      break
  if not codes:
    raise EvaluationError(f'no {split} segments in the data set')
  return np.concatenate(codes)[:max_segments]


def training_cap(options: EvaluationOptions) -> int | None:
  return options.max_clips if options.max_training_clips is None else options.max_training_clips


class PhaseTimer:
  """Wall seconds of each phase of an evaluation, logged as each ends (a large collection
  takes long: the log says where)."""

  def __init__(self):
    self.seconds = {}
    self._last = time.perf_counter()

  def done(self, phase: str, what: str) -> None:
    now = time.perf_counter()
    self.seconds[phase] = now - self._last
    self._last = now
    logging.info('evaluate: %s (%s) in %.0f s', phase, what, self.seconds[phase])

  def metrics(self) -> dict:
    return {f'evaluate/seconds/{phase}': value for phase, value in self.seconds.items()}


def real_clip_plans(meta, dataset_dir: str, clip_samples: int, options: EvaluationOptions):
  """Half A (reference), half B (floor) of held-out clips, and training clips."""
  wavs = reference_clips.clean_wavs(dataset_dir)
  if not wavs:
    raise EvaluationError(f'{dataset_dir}: no cleaned WAVs listed in {records.REPORT_FILENAME}; '
                          'prepare the data set again with this version')
  held_out = clip_plans.plan_clips(
      wavs, clip_plans.split_sources(meta, records.VALIDATION_SPLIT), clip_samples,
      options.max_clips)
  sources = sorted({clip.source for clip in held_out})
  if len(sources) < 2:
    raise EvaluationError(
        f'{dataset_dir}: {len(sources)} held-out file(s) with a {options.clip_seconds:g} s '
        'clip; the real-vs-real floor needs two (raise --validation_fraction in prepare, or '
        'lower --clip_seconds)')
  half_a, half_b = clip_plans.split_halves(
      len(held_out), groups=[sources.index(clip.source) for clip in held_out], seed=options.seed)
  if len(half_a) < clip_plans.MIN_CLIPS_A_HALF:
    raise EvaluationError(
        f'{dataset_dir}: the held-out files give {len(half_a)} {options.clip_seconds:g} s '
        f'clip(s) a half (whole files to each half, the halves of one size); the '
        f'real-vs-real floor needs {clip_plans.MIN_CLIPS_A_HALF} (raise --validation_fraction '
        'in prepare, or lower --clip_seconds)')
  training = clip_plans.plan_clips(
      wavs, clip_plans.split_sources(meta, records.TRAIN_SPLIT), clip_samples,
      training_cap(options))
  return [held_out[i] for i in half_a], [held_out[i] for i in half_b], training


def evaluate_audio(vqvae: loading.LoadedVQVAE, meta, data, dataset_dir: str,
                   generator: loading.LoadedGenerator | None,
                   options: EvaluationOptions, train_codes: np.ndarray, timer: PhaseTimer,
                   vocoder=None) -> dict:
  """Every audio set against half A; reconstruction scores; memorization."""
  clip_samples = int(round(options.clip_seconds * contract.SAMPLE_RATE_HZ))
  half_a, half_b, training = real_clip_plans(meta, dataset_dir, clip_samples, options)
  num_clips = len(half_b) if options.num_samples is None else min(options.num_samples,
                                                                  len(half_b))
  half_a, half_b = half_a[:num_clips], half_b[:num_clips]
  timer.done('plan', f'{len(half_a)} clips a half, {len(training)} training clips')
  analyzer = clip_analysis.ClipAnalyzer(vqvae, embeddings_lib.Embedder(batch_size=16),
                                        options.batch_size, vocoder)
  sets = clip_analysis.FeatureSets()
  visqol = reconstruction.Visqol() if options.num_visqol > 0 else None
  reference_copies = clip_analysis.FeatureSets()
  clip_analysis.analyze_real_clips(analyzer, sets, half_a, 'reference', clip_samples,
                                   options.seed, reconstruct=True, copies=reference_copies)
  timer.done('reference', f'{len(half_a)} real clips, the profiles of their copies')
  # The training clips: the memorization check and their profile; no classifier compares them.
  clip_analysis.analyze_real_clips(analyzer, sets, training, 'training', clip_samples,
                                   options.seed, patches=False)
  timer.done('training', f'{len(training)} real clips')
  scores = clip_analysis.analyze_real_clips(
      analyzer, sets, half_b, 'floor', clip_samples, options.seed, reconstruct=True,
      visqol=visqol, num_visqol=options.num_visqol)
  timer.done('floor', f'{len(half_b)} real clips, their reconstructions and inversions')

  steps = sampling.steps_for_seconds(options.clip_seconds, vqvae.time_stride)
  code_sets = {kind: latent_metrics.baseline_codes(kind, train_codes, vqvae.codebook_size,
                                                   (num_clips, steps, vqvae.num_levels),
                                                   seed=options.seed + 1)
               for kind in ('iid', 'uniform')}
  code_sets = {f'baseline_{kind}': codes for kind, codes in code_sets.items()}
  given_pulse = None
  if generator is not None:
    code_sets['gan'] = generate(generator, vqvae, num_clips, steps, options)
    given_pulse = rhythm_following.given_pulse(generator, options.seed, num_clips, steps,
                                               options.batch_size, vqvae.time_stride)
  for name, codes in code_sets.items():
    clip_analysis.analyze_codes(analyzer, sets, name, codes, clip_samples, options.seed)
    timer.done(name, f'{len(codes)} clips decoded and inverted')

  metrics = {'audio/clip_seconds': options.clip_seconds, 'audio/num_clips': num_clips,
             'audio/num_training_clips': len(training)}
  reference = sets.get('reference', 'musicnn')
  bandwidth = distances.median_pairwise_distance(reference)
  for name in sets.names():
    if name in ('reference', 'training'):
      continue
    metrics[f'{name}/num_clips'] = sets.count(name)
    for kind in clip_analysis.FEATURE_KINDS:
      for figure, value in distances_to_reference(sets.get('reference', kind), sets.get(
          name, kind), kind, options, bandwidth).items():
        metrics[f'{name}/{figure}'] = value
  for name, values in scores.items():
    metrics[name] = intervals.interval_entry(
        intervals.mean_interval(values, options.num_resamples, options.seed))
  sources = {name: [clip.source for clip in plan]
             for name, plan in (('reference', half_a), ('floor', half_b),
                                ('training', training))}
  timer.done('distances', 'intervals of every embedding distance')
  metrics.update(structure_metrics(sets, reference_copies, sources, options))
  if given_pulse is not None:
    played = sets.get('gan', 'profile')[:, music_structure.PROFILE_ENTRIES.index('pulse_clarity')]
    metrics.update({f'gan/{name}': value for name, value in rhythm_following.following(
        given_pulse, played, options.num_resamples, options.seed).items()})
  timer.done('structure', 'music profiles and two-sample classifiers')
  metrics.update(memorization_metrics(sets, [name for name in code_sets]))
  return metrics, code_sets


def structure_metrics(sets: clip_analysis.FeatureSets,
                      reference_copies: clip_analysis.FeatureSets,
                      sources: dict[str, list[str]], options: EvaluationOptions) -> dict:
  """Per compared set: its music profile beside the held-out songs', and its C2ST AUC
  against half A.

  A profile needs no reference, so the profiles of real music and of its copies cover
  both halves (one half's songs can differ from the other's more than a model's
  pieces do from real music), with intervals that draw whole songs; the training
  clips' profile shows what the generator was shown.

  Args:
    sets: features of 'reference' (half A), 'floor' (half B), 'training' and the
      compared sets.
    reference_copies: the profiles of half A's codec and inversion copies.
    sources: source file per clip of 'reference', 'floor' and 'training'; the
      copies share their originals', generated sets have none (each clip is its
      own group in the classifier's train/test split and in the intervals).
    options: seed, bootstrap draws, classifier steps.

  Returns:
    {'<set>/profile': {entry: {...}}, '<set>/c2st_auc': {'value', 'low', 'high'}},
    'training/profile' included.
  """
  metrics = {}
  held_out_songs = sources['reference'] + sources['floor']
  held_out = np.concatenate([sets.get('reference', 'profile'), sets.get('floor', 'profile')])
  compared = [name for name in sets.names() if name not in ('reference', 'training')]

  def summarize(profiles, songs):
    return music_profile.summarize(profiles, held_out, options.clip_seconds,
                                   options.num_resamples, options.seed, songs=songs)
  for name in compared:
    if name == 'floor':
      metrics['floor/profile'] = summarize(held_out, held_out_songs)
    elif name in reference_copies.names():
      metrics[f'{name}/profile'] = summarize(np.concatenate(
          [reference_copies.get(name, 'profile'), sets.get(name, 'profile')]), held_out_songs)
    else:
      metrics[f'{name}/profile'] = summarize(sets.get(name, 'profile'), None)
  metrics['training/profile'] = summarize(sets.get('training', 'profile'),
                                          sources['training'])

  def groups_of(clip_sources):
    names = sorted(set(clip_sources))
    return np.array([names.index(source) for source in clip_sources])

  tester = two_sample.TwoSampleTester(
      sets.get('reference', 'patches'), groups_of(sources['reference']),
      dataclasses.replace(two_sample.TwoSampleOptions(), num_steps=options.c2st_steps,
                          num_resamples=options.num_resamples, seed=options.seed))
  floor_groups = groups_of(sources['floor'])
  for offset, name in enumerate(compared):
    patches = sets.get(name, 'patches')
    real_derived = name in ('floor', 'vqvae_reconstruction', 'griffin_lim', 'vocoder')
    groups = floor_groups[:len(patches)] if real_derived else None
    metrics[f'{name}/c2st_auc'] = tester.test(patches, groups, seed_offset=offset).entry()
  return metrics


def generate(generator: loading.LoadedGenerator, vqvae: loading.LoadedVQVAE,
             num_clips: int, steps: int, options: EvaluationOptions) -> np.ndarray:
  """Codes [num_clips, steps], a fixed-size batch at a time (clip i from fold_in(seed, i))."""
  codes = []
  for first in range(0, num_clips, options.batch_size):
    keys, noise = sampling.keys_and_noise(generator, options.seed,
                                          range(first, first + options.batch_size))
    codes.append(sampling.generate_codes(generator, keys, noise, steps))
  return np.concatenate(codes)[:num_clips]


def memorization_metrics(sets: clip_analysis.FeatureSets, names: list[str]) -> dict:
  """Nearest training clip of each generated clip, against the held-out floor (half B)."""
  training = sets.get('training', 'musicnn')
  metrics = {}
  for name in names:
    found = memorization.memorization(sets.get(name, 'musicnn'), training,
                                      sets.get('floor', 'musicnn'))
    metrics[f'{name}/too_close_to_training_share'] = found.too_close_share
    metrics[f'{name}/nearest_training_distance_median'] = float(
        np.median(found.nearest_training_distance))
    metrics['floor/nearest_training_distance_p5'] = found.threshold
  return metrics


def evaluate_codes(code_sets: dict, vqvae: loading.LoadedVQVAE, meta, data,
                   options: EvaluationOptions, training: np.ndarray) -> dict:
  """Code statistics of every generated set against held-out codes (`training`: the
  training segments' codes), through `ngrams`."""
  held_out = stream_codes(vqvae, meta, data, records.VALIDATION_SPLIT, options.max_clips)
  codebooks = np.asarray(vqvae.codebooks)
  steps = held_out.shape[1]
  metrics = {}
  for name, codes in code_sets.items():
    for figure, value in latent_metrics.compare(codes[:, :steps], held_out, training,
                                                codebooks).items():
      metrics[f'{name}/codes_{figure}'] = value
  # The floor: as many training sequences as held-out ones (the figures depend on counts).
  picks = np.random.default_rng(options.seed).choice(
      len(training), size=min(len(training), len(held_out)), replace=False)
  floor = training[np.sort(picks)]
  metrics['floor/codes_code_js_distance'] = latent_metrics.level_js_distance(
      floor, held_out, vqvae.codebook_size)
  metrics['floor/codes_bigram_js_distance'] = latent_metrics.bigram_js_distance(
      floor, held_out, vqvae.codebook_size)
  metrics['floor/codes_latent_frechet'] = latent_metrics.frechet_distance(
      latent_metrics.sequence_features(floor, codebooks),
      latent_metrics.sequence_features(held_out, codebooks))
  return metrics


def evaluate(vqvae_workdir: str, data_dir: str, gan_workdir: str | None = None,
             options: EvaluationOptions = EvaluationOptions()) -> dict:
  """All figures, as the JSON `main` writes.

  Args:
    vqvae_workdir: a finished VQ-VAE run (with a GAN: the one it decodes with).
    data_dir: a data_prep.prepare --output_dir.
    gan_workdir: a finished GAN run, or None for the codec alone.
    options: sizes, seed and costs.

  Returns:
    Figure name -> float, int, or {'value', 'low', 'high'} for a figure with an interval.

  Raises:
    EvaluationError, workdir_lib.WorkdirError, input_pipeline.DatasetError: one line.
  """
  if options.clip_seconds < embeddings_lib.PATCH_SECONDS:
    raise EvaluationError(f'--clip_seconds={options.clip_seconds:g} is shorter than one '
                          f'{embeddings_lib.PATCH_SECONDS:g} s musicnn patch')
  started = time.perf_counter()
  vqvae = loading.load_vqvae(vqvae_workdir)
  generator = loading.load_generator(gan_workdir) if gan_workdir else None
  vocoder = loading.load_vocoder(options.vocoder_workdir) if options.vocoder_workdir else None
  meta = input_pipeline.load_dataset_meta(data_dir)
  data = vqvae.config.data
  data.dataset_dir = data_dir
  if meta.segment_frames % vqvae.time_stride:
    raise workdir_lib.WorkdirError(f'{data_dir}: segments of {meta.segment_frames} frames are '
                                  f'not a multiple of the VQ-VAE stride {vqvae.time_stride}')
  input_pipeline.check_data_config(data, meta)
  if generator is not None and not np.array_equal(np.asarray(generator.vqvae.codebooks),
                                                  np.asarray(vqvae.codebooks)):
    raise EvaluationError(f'{gan_workdir} was trained on another VQ-VAE than {vqvae_workdir}; '
                          f'pass --vqvae_workdir={generator.vqvae.workdir}')
  if EVALUATED_STEM not in data.stems:
    raise EvaluationError(f'{vqvae_workdir}: trained on {list(data.stems)}; evaluation '
                          f'compares the {EVALUATED_STEM!r} stem')
  metrics = {'vqvae/step': vqvae.step}
  if generator is not None:
    generator = style_strength_lib.with_strength(generator, options.style_strength)
    metrics['gan/step'] = generator.step
    metrics['gan/style_strength'] = generator.style_strength
  if vocoder is not None:
    metrics['vocoder/step'] = vocoder.step
  timer = PhaseTimer()
  metrics.update(codec_metrics.evaluate_vqvae(
      vqvae, meta, data, max_segments=options.max_clips, num_resamples=options.num_resamples,
      seed=options.seed))
  timer.done('codec', 'whole held-out segments through the codec')
  # Encoded once: the i.i.d. baseline's code frequencies and the code statistics.
  train_codes = stream_codes(vqvae, meta, data, records.TRAIN_SPLIT, training_cap(options))
  timer.done('training_codes', f'{len(train_codes)} training segments encoded')
  audio_metrics, code_sets = evaluate_audio(vqvae, meta, data, data_dir, generator, options,
                                            train_codes, timer, vocoder)
  metrics.update(audio_metrics)
  metrics.update(evaluate_codes(code_sets, vqvae, meta, data, options, train_codes))
  timer.done('codes', 'code statistics')
  metrics.update(timer.metrics())
  metrics['evaluate/seconds'] = time.perf_counter() - started
  return metrics


def summary_lines(metrics: dict) -> list[str]:
  """One line per figure; a profile gives one line per entry (its per-clip values stay in
  the JSON)."""
  rows = []
  for name, value in metrics.items():
    if name.endswith('/profile'):
      rows.extend((f'{name}/{entry}', music_profile.format_profile_row(entry, summary))
                  for entry, summary in value.items())
    else:
      rows.append((name, format_figure(value)))
  width = max(len(name) for name, _ in rows)
  return [f'{name:{width}s} {shown}' for name, shown in rows]


def format_figure(value) -> str:
  """'1.23 [1.01, 1.52]' for a figure with an interval, else the value."""
  if isinstance(value, dict):
    return f'{value["value"]:.4g} [{value["low"]:.4g}, {value["high"]:.4g}]'
  if isinstance(value, float) and not math.isnan(value):
    return f'{value:.4g}'
  return str(value)
