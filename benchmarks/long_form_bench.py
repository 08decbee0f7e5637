r"""Long-form generation on real music: short against long context, 10 s and 60 s,
continuation of held-out songs, and generation speed.

  python benchmarks/long_form_bench.py [--gan_steps=2000] [--max_clips=120]
      [--clip_seconds=10,60] [--num_songs=12] [--prompts_per_song=3] [--prompt_seconds=10]
      [--gans=short,long,context]

On evaluate_bench's data (the two Debian soundtracks, 30% of the files held
out) and its codec (configs/vqvae_tiny.py, 3,000 steps), compares two GANs:
  short  evaluate_bench's: configs/gan_tiny.py as it is, 2,000 steps; 32-code
         crops (1.5 s), generator receptive field 33 codes, discriminator at
         2 scales;
  long   trained here for --gan_steps (cached): the same widths with the long
         context of configs/gan.py, 224-code crops (10.4 s), generator
         dilations 1..64 (receptive field 257 codes), discriminator at 4
         scales (296 codes);
  context  the long one trained with random context masking
         (--config.model.context_probability=0.9, and configs/gan.py's
         loss.context_moment_weight=3.0): it continues a prompt from
         its codes (generation/continuation.py) where the other two are
         projected onto it.
Then, per GAN and per --clip_seconds: `evaluate` (FAD, FAD∞, KAD with 95%
bootstrap intervals beside the real-vs-real floor and the i.i.d. and uniform
code baselines, all against held-out real clips of the same length).
Continuation, per GAN: up to --prompts_per_song prompts of --prompt_seconds of
each of --num_songs held-out songs (from 0, 2P, 4P ... s, while the song holds
a prompt and its next part) are continued for --prompt_seconds more (`sample
--prompt`); the distance between the musicnn embeddings of the prompt and of
the continuation, against the same distance for the song's own next part (the
real continuation; and that part through the codec and Griffin-Lim, the best a
continuation could score through them), for a sample generated without the
prompt, and for random
pairs of a prompt and the next part of another; then the FAD and KAD (95%
bootstrap intervals) of the continuations, of as many unprompted samples and
of the prompts themselves (the real-vs-real floor) against the real next parts.
Speed: one 60 s sample end to end (generation in windows, decoding,
Griffin-Lim), after a warm-up, in real-time factor.
Ends with one JSON line of the figures. Each evaluate output is kept in
benchmarks/.cache/evaluate/long_form_*.json and reused while it is newer than its
GAN's checkpoints (delete it to measure again).
"""
import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import evaluate_bench  # pylint: disable=wrong-import-position

from melodygan_jax.audio import audio_io  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import distances  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import embeddings as embeddings_lib  # pylint: disable=wrong-import-position
from melodygan_jax.evaluation import intervals  # pylint: disable=wrong-import-position
from melodygan_jax.audio import synthesis  # pylint: disable=wrong-import-position
from melodygan_jax.generation import sample as sample_lib  # pylint: disable=wrong-import-position
from melodygan_jax.generation import user_audio  # pylint: disable=wrong-import-position
from melodygan_jax.runs import loading  # pylint: disable=wrong-import-position


CACHE = evaluate_bench.CACHE
LONG_CONTEXT = ('--config.data.crop_steps=224',
                '--config.model.generator_dilations=(1, 2, 4, 8, 16, 32, 64, 1)',
                '--config.model.discriminator_dilations=(1, 2, 4, 8, 1, 2)',
                '--config.model.discriminator_scales=4')
FIGURES = ('fad', 'fad_infinity', 'kad')
SETS = ('floor', 'gan', 'baseline_iid', 'baseline_uniform')


def trained_long_gan(vqvae: pathlib.Path, steps: int, context_probability: float = 0.0
                     ) -> pathlib.Path:
  """configs/gan_tiny.py with the long context (and context masking when
  `context_probability` > 0), trained once (cached) for `steps`."""
  workdir = CACHE / (f'gan_long_context_{steps}' if context_probability else f'gan_long_{steps}')
  masking = (f'--config.model.context_probability={context_probability}',) * bool(
      context_probability)
  if not (workdir / 'checkpoints' / str(steps)).exists():
    started = time.perf_counter()
    evaluate_bench.run_module(
        'melodygan_jax.train', '--config=configs/gan_tiny.py', f'--workdir={workdir}',
        f'--config.vqvae_workdir={vqvae}', f'--config.train.num_steps={steps}',
        f'--config.train.checkpoint_every_steps={steps}', *LONG_CONTEXT, *masking)
    (workdir / 'train_seconds.txt').write_text(f'{time.perf_counter() - started:.1f}\n')
  return workdir


def held_out_songs(data: pathlib.Path, min_seconds: float) -> list[pathlib.Path]:
  """Clean WAVs of the held-out songs at least `min_seconds` long, sorted by source."""
  report = json.loads((data / 'report.json').read_text())
  return [data / entry['clean_wav'] for entry in sorted(report['files'],
                                                        key=lambda e: e['source'])
          if entry.get('status') == 'used' and entry.get('split') == 'validation'
          and entry['clean_duration_s'] >= min_seconds]


def embed(embedder, clips: list[np.ndarray]) -> np.ndarray:
  return embedder.embed(np.stack(clips), contract.SAMPLE_RATE_HZ)


def prompt_segments(songs: list[pathlib.Path], seconds: float, per_song: int):
  """(prompt, real next part) pairs of `seconds` each: from 0, 2x, 4x ... seconds of each song."""
  length = int(round(seconds * contract.SAMPLE_RATE_HZ))
  pairs = []
  for song in songs:
    audio = audio_io.read_mono(song)
    for start in range(0, min(per_song, len(audio) // (2 * length)) * 2 * length, 2 * length):
      pairs.append((audio[start:start + length], audio[start + length:start + 2 * length]))
  return pairs


def through_codec(vqvae, audio: np.ndarray, seed: int) -> np.ndarray:
  """`audio` encoded and decoded by the codec and inverted as samples are, at its own level:
  the best a continuation through this codec and inversion could sound."""
  normalized = user_audio.normalized_level(audio)
  codes = user_audio.encode_samples(vqvae, normalized, vqvae.config.data.stems[0])
  decoded = synthesis.log_mel_to_audio(vqvae.codes_to_log_mel(codes[None],
                                                              vqvae.config.data.stems[0]),
                                       seed=seed)[0]
  decoded = np.pad(decoded, (0, max(0, len(audio) - len(decoded))))[:len(audio)]
  gain = np.linalg.norm(audio) / max(np.linalg.norm(normalized), 1e-12)
  return (decoded * gain).astype(np.float32)


def continuation_figures(gan: pathlib.Path, songs: list[pathlib.Path], embedder, args,
                         work: pathlib.Path) -> dict:
  """Embedding distances (prompt vs continuation, real next part, unprompted sample) and the
  FAD and KAD of the continuations, of unprompted samples and of the prompts themselves (the
  real-vs-real floor) against the real next parts."""
  seconds = args.prompt_seconds
  length = int(round(seconds * contract.SAMPLE_RATE_HZ))
  prompt_ends, continued, real_next, coded_next = [], [], [], []
  vqvae = loading.load_generator(str(gan)).vqvae
  for index, (prompt, after) in enumerate(prompt_segments(songs, seconds,
                                                          args.prompts_per_song)):
    coded_next.append(through_codec(vqvae, after, index))
    prompt_path = work / f'prompt_{index}.wav'
    audio_io.write_wav(prompt_path, prompt)
    output = work / f'continued_{index}'
    manifest = sample_lib.sample(str(gan), str(output), num_samples=1, seconds=seconds,
                                 seed=index, show_progress=False, num_references=0,
                                 prompt=str(prompt_path), prompt_seconds=seconds)
    written = audio_io.read_mono(output / manifest['samples'][0]['wav'])
    prompt_ends.append(prompt)
    continued.append(written[-length:])
    real_next.append(after)
  plain = sample_lib.sample(str(gan), str(work / 'unprompted'), num_samples=len(prompt_ends),
                            seconds=seconds, seed=1000, show_progress=False, num_references=0)
  unprompted = [audio_io.read_mono(work / 'unprompted' / entry['wav'])[:length]
                for entry in plain['samples']]
  ends, cont, nxt, free, coded = (embed(embedder, clips) for clips in
                                  (prompt_ends, continued, real_next, unprompted, coded_next))
  distance = lambda a, b: np.linalg.norm(a - b, axis=-1)
  rng = np.random.default_rng(0)
  count = len(prompt_ends)
  pairs = [(i, j) for i in range(count) for j in range(count) if i != j]
  chosen = [pairs[k] for k in rng.choice(len(pairs), min(len(pairs), 200), replace=False)]
  random_pairs = np.array([np.linalg.norm(ends[i] - nxt[j]) for i, j in chosen])
  figures = {}
  for name, values in (('continuation', distance(ends, cont)),
                       ('real_next', distance(ends, nxt)),
                       ('real_next_through_codec', distance(ends, coded)),
                       ('unprompted_sample', distance(ends, free)),
                       ('random_real_pairs', random_pairs)):
    figures[name] = intervals.interval_entry(intervals.mean_interval(values, 1000))
  for name, clips in (('continuation', cont), ('unprompted_sample', free),
                      ('real_next_through_codec', coded), ('prompts_floor', ends)):
    figures[f'{name}/fad'] = intervals.interval_entry(
        distances.fad_interval(nxt, clips, args.num_resamples))
    figures[f'{name}/kad'] = intervals.interval_entry(
        distances.kad_interval(nxt, clips, num_resamples=args.num_resamples))
  figures['num_prompts'] = count
  return figures


def speed_figures(gan: pathlib.Path, work: pathlib.Path) -> dict:
  sample_lib.sample(str(gan), str(work / 'warmup'), num_samples=1, seconds=60.0,
                    show_progress=False, num_references=0)
  started = time.perf_counter()
  sample_lib.sample(str(gan), str(work / 'speed'), num_samples=1, seconds=60.0, seed=1,
                    show_progress=False, num_references=0)
  seconds = time.perf_counter() - started
  return {'seconds_for_60_s': round(seconds, 2), 'real_time_factor': round(seconds / 60.0, 4),
          'x_real_time': round(60.0 / seconds, 1)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--gan_steps', type=int, default=2000)
  parser.add_argument('--max_clips', type=int, default=120)
  parser.add_argument('--clip_seconds', default='10,60',
                      help='lengths to evaluate; empty: continuation and speed only')
  parser.add_argument('--num_songs', type=int, default=12)
  parser.add_argument('--prompt_seconds', type=float, default=10.0)
  parser.add_argument('--prompts_per_song', type=int, default=3,
                      help='prompts from 0, 2P, 4P ... s of each song long enough')
  parser.add_argument('--num_resamples', type=int, default=200)
  parser.add_argument('--gans', default='short,long,context', help='which GANs to measure')
  args = parser.parse_args()
  data = evaluate_bench.prepared(evaluate_bench.DEFAULT_MUSIC_DIRS)
  vqvae, short_gan = evaluate_bench.trained(data)  # configs/gan_tiny.py, 2,000 steps.
  chosen = args.gans.split(',')
  gans = {'short': lambda: short_gan, 'long': lambda: trained_long_gan(vqvae, args.gan_steps),
          'context': lambda: trained_long_gan(vqvae, args.gan_steps, context_probability=0.9)}
  unknown = sorted(set(chosen) - set(gans))
  if unknown:
    sys.exit(f'--gans={args.gans}: unknown {",".join(unknown)} (choose from {",".join(gans)})')
  gans = {name: train() for name, train in gans.items() if name in chosen}
  summary = {name: {} for name in gans}
  for name in set(gans) - {'short'}:
    summary[name]['train_seconds'] = float((gans[name] / 'train_seconds.txt').read_text())

  for clip_seconds in (float(s) for s in args.clip_seconds.split(',') if s):
    print(f'\n{clip_seconds:g} s clips against held-out real clips of {clip_seconds:g} s')
    print('| GAN | set | ' + ' | '.join(FIGURES) + ' |')
    print('| --- | --- |' + ' ---: |' * len(FIGURES))
    for name, gan in gans.items():
      output = CACHE / f'long_form_{name}_{clip_seconds:g}s.json'
      eval_args = argparse.Namespace(clip_seconds=clip_seconds, num_visqol=0,
                                     num_resamples=args.num_resamples)
      if output.exists() and output.stat().st_mtime > (gan / 'checkpoints').stat().st_mtime:
        metrics = json.loads(output.read_text())  # Measured before on this run: delete to redo.
      else:
        metrics = evaluate_bench.evaluate(vqvae, gan, data, output, eval_args,
                                          args.max_clips)['metrics']
      for set_name in SETS:
        print(f'| {name} | {set_name} | ' + ' | '.join(
            evaluate_bench.show(metrics[f'{set_name}/{figure}']) for figure in FIGURES) + ' |')
        for figure in FIGURES:
          summary[name][f'{clip_seconds:g}s/{set_name}/{figure}'] = metrics[
              f'{set_name}/{figure}']
      summary[name][f'{clip_seconds:g}s/num_clips'] = metrics['audio/num_clips']
      print(f'| {name} | ({metrics["audio/num_clips"]} clips per set) | | | |')

  songs = held_out_songs(data, 2 * args.prompt_seconds)[:args.num_songs]
  embedder = embeddings_lib.Embedder(batch_size=16)
  print(f'\ncontinuation of {args.prompts_per_song} prompts a song of {len(songs)} held-out '
        f'songs, musicnn embedding distance to the prompt ({args.prompt_seconds:g} s; mean, '
        '95% interval), FAD and KAD against the real next parts:')
  for name, gan in gans.items():
    work = CACHE / f'long_form_samples_{name}'
    figures = continuation_figures(gan, songs, embedder, args, work)
    speed = speed_figures(gan, work)
    summary[name].update({f'continuation/{key}': value for key, value in figures.items()})
    summary[name].update(speed)
    for key, value in figures.items():
      print(f'  {name:5s} {key:24s} {evaluate_bench.show(value)}')
    print(f'  {name:5s} 60 s sample end to end: {speed["seconds_for_60_s"]:.1f} s, '
          f'{speed["x_real_time"]:.1f}x real time')
  print(json.dumps(summary))


if __name__ == '__main__':
  main()
