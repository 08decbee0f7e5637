r"""From a folder of songs to new music like them, in one command and a time budget.

  python -m melodygan_jax.create --songs=my_songs/ --workdir=runs/mine [--hours=1] \
      [--preset=auto|cpu|gpu|tpu|tiny] [--vocoder] [--held_out_fraction=F]

Everything goes into WORKDIR:
  data/               prepare's data set (cleaned WAVs, shards, stats, report)
  vqvae/  gan/        the codec's and the GAN's run folders (vocoder/ with --vocoder)
  metrics.json        evaluate's figures: FAD/KAD with intervals, the floor, i.i.d. codes,
                      memorisation
  samples/index.html  generated pieces beside held-out songs, to listen to
  create.json         the settings, the plan and each finished stage with its time

Before any work the command checks the input and measures this machine: a few
train steps of each preset config on synthetic batches (training/calibration.py,
about a minute). It then prints the plan, every stage with its configs, steps
and minutes, and the disk it needs. The stages share the budget: prepare takes
what it takes (the first stage; its time comes out of the budget), evaluation
and samples get a measured allowance, and what is left goes to training, split
between the codec and the GAN as CODEC_SHARE says. After each stage the rest is
planned again from the time actually left, so the run ends within the budget.

Running the same command again after an interruption (kill -9 included) goes on
where it stopped: finished stages are never redone, a training stage resumes
from its last checkpoint with the steps it was planned with.
"""
import dataclasses
import json
import math
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags
import soundfile

from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax import input_files
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.data import records
from melodygan_jax.evaluation import clip_plans
from melodygan_jax.runs import workdir as workdir_lib  # Reads run folders without JAX.
from melodygan_jax.training import step_budget  # Plain Python: create never imports JAX.

STATE_FILENAME = 'create.json'
PRESETS = {  # Configs per preset: (codec, GAN), paths relative to the repository.
    'tiny': ('configs/vqvae_tiny.py', 'configs/gan_tiny.py'),  # Minutes: tests, a first try.
    'cpu': ('configs/vqvae.py', 'configs/gan_cpu.py'),
    'gpu': ('configs/vqvae.py', 'configs/gan.py'),
    'tpu': ('configs/vqvae.py', 'configs/gan.py'),
}
# The CPU's vocoder is the spectral refiner trained through its mel refinement: at equal
# minutes its held-out curve is below the default's and still falling, at 37x real time
# (docs/results.md, "The refiner trained through its refinement, for speed").
VOCODER_CONFIGS = {'tiny': 'configs/vocoder_tiny.py', 'cpu': 'configs/vocoder_refiner.py',
                   'gpu': 'configs/vocoder_large.py', 'tpu': 'configs/vocoder_large.py'}
# The training time's split, chosen by the final samples' figures: on the 1-hour CPU run
# of 95 songs (docs/create.md), 40/60 gave the GAN 1,118 steps on a 697-step codec and
# beat 55/45 (541 on 798) on KAD (15.4 against 24.0), pulse (0.49, 0.47) and chroma
# stability (0.54, 0.32): the codec's reconstructions are near the songs' within minutes,
# the GAN is the stage still learning at the end of the budget.
CODEC_SHARE = 0.40
VOCODER_SHARE = 0.25  # Of the training time, with --vocoder.
MIN_STEPS = {'vqvae': 200, 'gan': 200, 'vocoder': 200}
PREPARE_X_REAL_TIME = 200.0  # Planned rate of prepare before it has run (2 workers: 400-780x).
PREPARE_START_S = 10.0  # Its start-up and the data set's writing (8 s for 2 min of songs).
# A training stage's time beside its steps: start-up (the interpreter, JAX and TensorFlow,
# the data set, the first and last checkpoints: 21 s for the codec on this CPU) and its
# compiles, each as long as the calibration's (which compiled the same train step): the
# train step's, the eval step's, and a resume's, which compiles again where the cache is off.
STAGE_START_S = 25.0
STAGE_COMPILES = 3
COMPILE_S_UNMEASURED = 20.0  # A calibration without compile times (an older workdir's).
# And what grows with the songs, measured on 6.65 h of them with 32% held out (this CPU): the
# codec's final eval reads the whole held-out split (264 s for 2.1 h of it); the GAN first
# encodes every song to codes and decodes the training codes' onset envelopes (181 s).
CODEC_EVAL_S_PER_HELD_OUT_HOUR = 125.0
GAN_START_S_PER_AUDIO_HOUR = 27.0
# evaluate, on 10 s clips, gets about a fifth of the budget: its held-out halves have as many
# clips as that allows (at least 30 a side, at most what the held-out songs hold), and the
# memorization check 240 training clips (40 minutes spread over every training song). Its
# time, fitted to the phases it logs (docs/create.md; halves of 45 clips, 240 training clips,
# 346 s, nothing else running): a fixed part (loading, the codec's held-out segments, the
# code statistics), each training clip read, embedded and profiled, and each pair of
# held-out clips: both read, embedded and profiled with their codec and inversion copies,
# one clip of each of the three code sets decoded and inverted, their share of the
# distances' intervals and of the two-sample classifiers. Measured where the calibration's
# evaluate_probe_s (a clip's log-mel, Griffin-Lim and profile) was EVALUATE_PROBE_S, and
# scaled by the probe on every other machine.
EVALUATE_SHARE = 0.2
EVALUATE_CLIP_S = 10.0
EVALUATE_MIN_HALF = 30
EVALUATE_TRAINING_CLIPS = 240
EVALUATE_PROBE_S = 0.32
EVALUATE_FIXED_S = 28.0
EVALUATE_TRAINING_CLIP_S = 0.19
EVALUATE_HALF_CLIP_S = 6.1
# Kept back from training for evaluate, which runs after the last training stage, when no
# later stage can give back what it takes beyond its plan: from 11% under to 18% over it
# (the 1-hour run; the tiny preset, on an idle and on a loaded 2-core CPU).
EVALUATE_RESERVE_SHARE = 0.03
# samples: its start-up, the GAN's compile, and 8 pieces of 10 s generated, inverted and
# drawn, each about two of the calibration's evaluate probes (24 s on this CPU at 1 hour).
SAMPLES_START_S = 20.0
SAMPLES_PROBES = 16
# A training stage saves every few minutes (53 MB for configs/vqvae.py, under a second), so a
# kill without notice loses little; SIGTERM (a preemption, create's own deadline) saves at once.
CHECKPOINT_EVERY_S = 180.0
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Stage:
  name: str
  command: list[str]
  planned_s: float
  description: str
  steps: int | None = None  # Of a training stage.
  workdir: str | None = None  # Of a training stage: where its checkpoints are.


def find_config(relative: str) -> str:
  """A config file of this checkout (or of the installed package)."""
  path = REPO_ROOT / relative
  if not path.exists():
    raise errors.UserError(f'{relative}: not found beside the package ({REPO_ROOT})')
  return str(path)


def audio_seconds(songs_dir: str) -> tuple[int, float]:
  """(files, seconds) of the audio files under `songs_dir`, read from their headers: the
  files prepare reads first, listed as prepare lists them (linked folders followed)."""
  count, seconds = 0, 0.0
  for path in input_files.list_files(songs_dir):
    if path.suffix.lower() not in audio_io.AUDIO_EXTENSIONS or not path.is_file():
      continue
    count += 1
    try:
      seconds += soundfile.info(str(path)).duration
    except (RuntimeError, soundfile.LibsndfileError):
      pass  # MP3/M4A that libsndfile cannot read, or a broken file: prepare decides.
  return count, seconds


def check_inputs(songs_dir: str, workdir: str, settings: dict,
                 min_audio_minutes: float = 5.0) -> dict | None:
  """Refuses what cannot work before spending the budget; returns a resumed run's state.

  Raises:
    errors.UserError: no songs, too little audio, a workdir of another command or
      feature version, or other settings than the run being resumed (one line).
  """
  if not os.path.isdir(songs_dir):
    raise errors.UserError(f'--songs={songs_dir}: no such folder')
  state_path = pathlib.Path(workdir) / STATE_FILENAME
  if state_path.exists():
    state = json.loads(state_path.read_text())
    if state.get('feature_version') != contract.FEATURE_VERSION:
      raise errors.UserError(
          f'--workdir={workdir}: made with feature version {state.get("feature_version")}, this '
          f'code computes {contract.FEATURE_VERSION}: use a new --workdir')
    for name in ('songs', 'preset', 'vocoder', 'held_out_fraction'):
      if state['settings'].get(name) != settings[name]:
        raise errors.UserError(
            f'--{name}={settings[name]}: {workdir} was started with '
            f'{state["settings"].get(name)!r}; '
            'run it with the same settings to resume, or use a new --workdir')
    return state
  if os.path.isdir(workdir) and any(os.scandir(workdir)):
    raise errors.UserError(f'--workdir={workdir}: a folder that holds other files (not made by '
                           'create); give a new or empty one')
  count, seconds = audio_seconds(songs_dir)
  if count == 0:
    raise errors.UserError(f'--songs={songs_dir}: no audio files '
                           f'({", ".join(sorted(audio_io.AUDIO_EXTENSIONS))})')
  if 0 < seconds < min_audio_minutes * 60:
    raise errors.UserError(
        f'--songs={songs_dir}: {seconds / 60:.1f} minutes of audio in {count} files; at least '
        f'{min_audio_minutes:g} are needed to learn anything (--min_audio_minutes)')
  return None


def resolve_preset(preset: str, backend: str) -> str:
  if preset != 'auto':
    return preset
  return {'gpu': 'gpu', 'cuda': 'gpu', 'rocm': 'gpu', 'tpu': 'tpu'}.get(backend, 'cpu')


def jax_backend() -> str:
  """JAX's default backend, asked of a subprocess: JAX's threads in this process would make
  the fork of every stage's subprocess unsafe."""
  result = subprocess.run([sys.executable, '-c', 'import jax; print(jax.default_backend())'],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
  if result.returncode != 0:
    last = (result.stderr.strip().splitlines() or ['no message'])[-1]
    raise errors.UserError(f'--preset=auto: JAX does not start ({last}); name a --preset')
  return result.stdout.strip().splitlines()[-1]


def calibrate(vqvae_config: str, gan_config: str, vocoder_config: str | None = None) -> dict:
  """Seconds per train step of the configs on this machine (a subprocess, ~1 minute)."""
  result = subprocess.run(
      [sys.executable, '-m', 'melodygan_jax.training.calibration',
       f'--vqvae_config={vqvae_config}', f'--gan_config={gan_config}']
      + ([f'--vocoder_config={vocoder_config}'] if vocoder_config else []),
      capture_output=True, text=True, check=False, cwd=REPO_ROOT)
  lines = [line for line in result.stdout.splitlines() if line.startswith('{')]
  if result.returncode != 0 or not lines:
    tail = (result.stderr.strip().splitlines() or ['no output'])[-1]
    configs = ', '.join(filter(None, (vqvae_config, gan_config, vocoder_config)))
    raise errors.UserError(f'measuring {configs} failed (exit {result.returncode}): {tail}')
  return json.loads(lines[-1])


def vocoder_figures(calibration: dict) -> tuple[dict, int]:
  """(step costs, adversarial start) of the vocoder's two phases: measured with its config,
  or, in a workdir calibrated before the vocoder was, 3 codec steps a step throughout."""
  if 'vocoder' in calibration:
    return calibration['vocoder'], calibration['vocoder']['adversarial_start_step']
  step_s = 3 * calibration['vqvae']['adversarial_s']
  return {'warmup_s': step_s, 'adversarial_s': step_s}, 0


def stage_figures(calibration: dict, name: str) -> dict:
  """The calibration's figures of the `name` training stage (see vocoder_figures)."""
  return vocoder_figures(calibration)[0] if name == 'vocoder' else calibration[name]


def stage_overhead_s(calibration: dict, name: str) -> float:
  """Seconds the `name` training stage spends beside its steps on this machine, before what
  grows with the songs: its start-up and compiles (STAGE_START_S, STAGE_COMPILES)."""
  figures = stage_figures(calibration, name)
  return STAGE_START_S + STAGE_COMPILES * figures.get('compile_s', COMPILE_S_UNMEASURED)


def samples_seconds(calibration: dict) -> float:
  """Planned seconds of the samples stage on this machine."""
  probe_s = calibration.get('evaluate_probe_s') or EVALUATE_PROBE_S
  return (SAMPLES_START_S + calibration['gan'].get('compile_s', COMPILE_S_UNMEASURED)
          + SAMPLES_PROBES * probe_s)


def training_seconds(calibration: dict, name: str, steps: int, adversarial_start: int) -> float:
  """Planned seconds of `steps` steps of the `name` training stage, from the calibration
  (`adversarial_start`: the codec's)."""
  if name == 'vqvae':
    return step_budget.phased_seconds(calibration['vqvae'], steps, adversarial_start)
  if name == 'gan':
    return steps * calibration['gan']['step_s']
  figures, vocoder_adversarial_start = vocoder_figures(calibration)
  return step_budget.phased_seconds(figures, steps, vocoder_adversarial_start)


def train_command(config: str, workdir: str, steps: int, overrides: dict,
                  step_s: float) -> list[str]:
  """The stage's train command: `steps` steps of `step_s` seconds each (planned), a
  checkpoint every CHECKPOINT_EVERY_S and at the end."""
  every = min(max(int(CHECKPOINT_EVERY_S / step_s), 50), steps)
  command = [sys.executable, '-m', 'melodygan_jax.train', f'--config={config}',
             f'--workdir={workdir}', f'--config.train.num_steps={steps}',
             f'--config.train.checkpoint_every_steps={every}',
             f'--config.train.eval_every_steps={steps}', '--config.train.log_every_steps=50']
  return command + [f'--config.{name}={value}' for name, value in overrides.items()]


def held_out_fraction(num_files: int, requested: float | None = None) -> float:
  """prepare's --validation_fraction: evaluation compares two halves of the held-out songs,
  so about 4 of them, a tenth of a large collection, and never most of a small one (or
  what --held_out_fraction asks)."""
  if requested is not None:
    return requested
  return min(max(4 / max(num_files, 1), 0.1), 0.3)


def evaluate_size(audio_s: float, held_out: float, budget_s: float,
                  probe_s: float | None = None,
                  held_out_clips: int | None = None) -> tuple[int, float]:
  """(held-out clips evaluate reads, its planned seconds) for `audio_s` of songs, `held_out`
  of them held out, in a budget of `budget_s`, on a machine whose calibration measured
  `probe_s` (its evaluate_probe_s; None, from a workdir older than it: the figures as
  measured). Once prepare has run, `held_out_clips` is what its held-out songs hold (the
  share held out by a hash of the names is `held_out` only on average)."""
  speed = 1.0 if probe_s is None else probe_s / EVALUATE_PROBE_S
  fixed_s, training_clip_s, pair_s = (speed * figure for figure in (
      EVALUATE_FIXED_S, EVALUATE_TRAINING_CLIP_S, EVALUATE_HALF_CLIP_S))
  available = (audio_s * held_out / EVALUATE_CLIP_S if held_out_clips is None
               else held_out_clips) / 2
  training = min(audio_s * (1 - held_out) / EVALUATE_CLIP_S, EVALUATE_TRAINING_CLIPS)
  fits = (EVALUATE_SHARE * budget_s - fixed_s - training_clip_s * training) / pair_s
  half = max(min(fits, available), min(EVALUATE_MIN_HALF, available))
  seconds = fixed_s + training_clip_s * training + pair_s * half
  return max(int(2 * half), 2), seconds


def check_prepared(workdir: str, min_audio_minutes: float) -> float:
  """Refuses a data set with too little audio after cleaning, or whose songs all went to the
  held-out split (nothing to train on); returns the seconds of songs prepare used, what the
  plan scales with (before prepare, a file libsndfile cannot read counted as none)."""
  report = json.loads((pathlib.Path(workdir) / 'data' / records.REPORT_FILENAME).read_text())
  clean_minutes = 60 * report.get('clean_audio_hours', 0.0)
  if clean_minutes < min_audio_minutes:
    raise errors.UserError(
        f'{workdir}/data: {clean_minutes:.1f} minutes of audio after cleaning, from '
        f'{report.get("num_used", 0)} files ({report.get("num_skipped", 0)} skipped, see '
        f'report.json); at least {min_audio_minutes:g} are needed (--min_audio_minutes)')
  stats = json.loads((pathlib.Path(workdir) / 'data' / 'stats.json').read_text())
  if 'train' not in stats.get('splits', {}).values():
    raise errors.UserError(f'{workdir}/data: every usable song was held out for evaluation; '
                           'add songs (at least 3 whole files)')
  return 3600 * report.get('audio_hours', 0.0)


def held_out_clips(workdir: str) -> list[int] | None:
  """The 10 s clips of each song prepare held out, or None before it has run."""
  path = pathlib.Path(workdir) / 'data' / records.REPORT_FILENAME
  if not path.exists():
    return None
  return [int(entry.get('clean_duration_s', 0.0) // EVALUATE_CLIP_S)
          for entry in json.loads(path.read_text()).get('files', [])
          if entry.get('status') == 'used' and entry.get('split') == records.VALIDATION_SPLIT]


def evaluation_skipped_because(workdir: str) -> str | None:
  """Why evaluate cannot run on the prepared data set, or None: its real-vs-real floor
  compares two halves of the held-out songs' 10 s clips, whole songs to each half, two clips
  a half at least (prepare holds songs out by a hash of their names, so a small collection
  may get too few)."""
  clips = held_out_clips(workdir) or []
  songs = [song for song, count in enumerate(clips) for _ in range(count)]
  half = (len(clip_plans.split_halves(len(songs), songs)[0]) if len(set(songs)) >= 2 else 0)
  if half >= clip_plans.MIN_CLIPS_A_HALF:
    return None
  return (f'the {len(clips)} held-out song(s) give {half} clip(s) of {EVALUATE_CLIP_S:g} s a '
          f'half, and the comparison with real music needs {clip_plans.MIN_CLIPS_A_HALF} '
          '(add songs, or raise --held_out_fraction); its time goes to training')


def skip_evaluation_if_it_cannot_run(workdir: str, state: dict, state_path: pathlib.Path) -> None:
  """Marks evaluate done with the reason it cannot run (and says it), so it is not planned."""
  if 'evaluate' in state['finished']:
    return
  skipped = evaluation_skipped_because(workdir)
  if skipped:
    state['finished']['evaluate'] = {'seconds': 0.0, 'planned_seconds': 0.0, 'skipped': skipped}
    atomic_files.write_json(state_path, state)
    print(f'create: evaluate skipped: {skipped}', flush=True)


def plan(settings: dict, state: dict, seconds_left: float, audio_s: float) -> list[Stage]:
  """The stages still to run, with their steps and planned seconds, from the time left."""
  workdir, preset = settings['workdir'], settings['preset']
  calibration = state['calibration']
  probe_s = calibration.get('evaluate_probe_s')
  done = state['finished']
  validation_fraction = held_out_fraction(state['num_files'], settings.get('held_out_fraction'))
  stages = []
  if 'prepare' not in done:
    prepare_s = PREPARE_START_S + audio_s / PREPARE_X_REAL_TIME
    stages.append(Stage('prepare', [
        sys.executable, '-m', 'data_prep.prepare', f'--input_dir={settings["songs"]}',
        f'--output_dir={workdir}/data', '--num_workers=2',
        f'--validation_fraction={validation_fraction:.3f}'], prepare_s,
        f'{audio_s / 3600:.2f} h of audio in {state["num_files"]} files, '
        f'{validation_fraction:.0%} of them held out'))
  training_stages = [name for name in ('vqvae', 'gan', 'vocoder')
                     if name not in done and (name != 'vocoder' or settings['vocoder'])]
  planned_prepare = sum(stage.planned_s for stage in stages)

  audio_hours = audio_s / 3600
  grows_with_songs_s = {
      'vqvae': CODEC_EVAL_S_PER_HELD_OUT_HOUR * validation_fraction * audio_hours,
      'gan': GAN_START_S_PER_AUDIO_HOUR * audio_hours}
  overhead_s = {name: stage_overhead_s(calibration, name) + grows_with_songs_s.get(name, 0.0)
                for name in training_stages}
  samples_s = 0.0 if 'samples' in done else samples_seconds(calibration)

  counts = held_out_clips(workdir) if 'prepare' in done else None
  clips = None if counts is None else sum(counts)

  def training_time(hours: float) -> float:
    """The training stages' seconds in a budget of `hours` (evaluation grows with it)."""
    evaluate_s = (0.0 if 'evaluate' in done else evaluate_size(
        audio_s, validation_fraction, hours * 3600, probe_s, clips)[1]
        + EVALUATE_RESERVE_SHARE * hours * 3600)
    return (seconds_left + (hours - settings['hours']) * 3600 - planned_prepare - evaluate_s
            - samples_s - sum(overhead_s[name] for name in training_stages))

  evaluate_clips, evaluate_s = evaluate_size(audio_s, validation_fraction,
                                             settings['hours'] * 3600, probe_s, clips)
  training_s = training_time(settings['hours'])
  shares = {'vqvae': CODEC_SHARE, 'gan': 1.0 - CODEC_SHARE}
  if settings['vocoder']:
    shares = {name: share * (1.0 - VOCODER_SHARE) for name, share in shares.items()}
    shares['vocoder'] = VOCODER_SHARE
  vqvae_config, gan_config = PRESETS[preset]
  adversarial_start = state['vqvae_adversarial_start_step']
  configs = {'vqvae': vqvae_config, 'gan': gan_config, 'vocoder': VOCODER_CONFIGS[preset]}
  overrides = {'vqvae': {'data.dataset_dir': f'{workdir}/data'},
               'gan': {'vqvae_workdir': f'{workdir}/vqvae'},
               'vocoder': {'data.dataset_dir': f'{workdir}/data'}}

  def steps_within(name: str, stage_s: float) -> int:
    if name == 'vqvae':
      return step_budget.phased_steps_within(calibration['vqvae'], stage_s, adversarial_start)
    if name == 'vocoder':
      figures, vocoder_adversarial_start = vocoder_figures(calibration)
      return step_budget.phased_steps_within(figures, stage_s, vocoder_adversarial_start)
    return int(stage_s / calibration['gan']['step_s'])

  # A started stage keeps its steps (exact resume) and is planned for the steps after its
  # last checkpoint; the stages not yet started share the rest.
  started = {name: state['steps'][name] for name in training_stages if state['steps'].get(name)}
  still_to_train_s = {
      name: training_seconds(calibration, name, steps, adversarial_start) - training_seconds(
          calibration, name, min(workdir_lib.latest_step(f'{workdir}/{name}') or 0, steps),
          adversarial_start)
      for name, steps in started.items()}
  free_s = training_s - sum(still_to_train_s.values())
  free_share = sum(shares[name] for name in training_stages if name not in started) or 1.0
  for name in training_stages:
    stage_s = max(free_s * shares[name] / free_share, 0.0)
    steps = started.get(name) or max(steps_within(name, stage_s), 1)
    all_steps_s = training_seconds(calibration, name, steps, adversarial_start)
    stage_overrides = overrides[name]
    warmup = stage_figures(calibration, name).get('warmup_steps')  # The GAN has none.
    if warmup is not None and steps <= warmup:
      # Fewer steps than the config's warm-up (which its trainer refuses): warm up a tenth.
      stage_overrides = {**stage_overrides, 'train.warmup_steps': steps // 10}
    command = train_command(find_config(configs[name]), f'{workdir}/{name}', steps,
                            stage_overrides, all_steps_s / steps)
    planned = still_to_train_s.get(name, all_steps_s)
    if steps < MIN_STEPS[name]:
      if done:
        # A run under way: refusing now would throw away what the budget already bought.
        # Said of the stage that runs next; a later one is planned again when its turn comes.
        if name == training_stages[0]:
          print(f'create: only {steps} steps of {name} fit the time left (fewer than '
                f'{MIN_STEPS[name]}: an earlier stage overran); training them', flush=True)
      else:
        # The budget at which every training stage's share holds its minimum steps (no
        # stage has run yet, so every one is in free_share).
        least_training_s = max(
            training_seconds(calibration, other, MIN_STEPS[other], adversarial_start)
            * free_share / shares[other] for other in training_stages)
        needed = settings['hours']
        for _ in range(30):  # training_time grows by 0.8-1 s a second of budget: converges.
          needed += (least_training_s - training_time(needed)) / 3600
        raise errors.UserError(
            f'--hours={settings["hours"]:g}: leaves {stage_s / 60:.1f} min for the {name} '
            f'stage, {steps} steps on this machine; it needs at least {MIN_STEPS[name]} '
            f'({math.ceil(needed * 100) / 100:.2f} h in all)')
    stages.append(Stage(name, command, planned + overhead_s[name],
                        f'{steps} steps of {configs[name]}', steps, f'{workdir}/{name}'))
  vocoder_flag = [f'--vocoder_workdir={workdir}/vocoder'] if settings['vocoder'] else []
  if 'evaluate' not in done:
    stages.append(Stage('evaluate', [
        sys.executable, '-m', 'melodygan_jax.evaluate', f'--vqvae_workdir={workdir}/vqvae',
        f'--gan_workdir={workdir}/gan', f'--data_dir={workdir}/data',
        f'--output={workdir}/metrics.json', f'--clip_seconds={EVALUATE_CLIP_S:g}',
        f'--max_clips={evaluate_clips}', f'--max_training_clips={EVALUATE_TRAINING_CLIPS}']
        + vocoder_flag, evaluate_s,
        f'up to {evaluate_clips // 2} held-out clips a half against as many generated'))
  if 'samples' not in done:
    stages.append(Stage('samples', [
        sys.executable, '-m', 'melodygan_jax.sample', f'--workdir={workdir}/gan',
        f'--output_dir={workdir}/samples', '--num_samples=8', '--seconds=10']
        + ([f'--metrics={workdir}/metrics.json']
           if (pathlib.Path(workdir) / 'metrics.json').exists() else []) + vocoder_flag,
        samples_s, '8 pieces of 10 s'))
  return stages


_STEP_LINE = re.compile(r'step (\d+)/(\d+)')


def _stop_with_parent() -> None:
  """In a stage's process: SIGTERM when create dies (kill -9 included), so no stage runs on
  unwatched, and a trainer saves its checkpoint as on a preemption (Linux; elsewhere a no-op)."""
  try:
    import ctypes  # pylint: disable=g-import-not-at-top
    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG.
  except (OSError, AttributeError):
    pass


def run_stage(stage: Stage, log_path: pathlib.Path, deadline: float, budget_end: float,
              heartbeat=lambda: None) -> str | None:
  """Runs one stage's command; its output goes to LOG, progress lines to the terminal.

  A training stage still running at `deadline` (its share of the budget) is
  sent SIGTERM: the trainer saves its checkpoint and stops, as on a
  preemption, and the stages after it use that checkpoint. `heartbeat()` is
  called every second (it records the time spent, for a resume after a kill).

  Returns:
    None, or why evaluation failed: it may (too few held-out songs to
    compare), and the samples are still made; the summary says why.

  Raises:
    errors.UserError: any other stage failed; names its log and its last error line.
  """
  # The stage writes its log itself, so what it prints survives a kill of create; its
  # progress lines are read back from the file.
  with open(log_path, 'a') as log, open(log_path) as reader:
    reader.seek(0, os.SEEK_END)
    process = subprocess.Popen(stage.command, stdout=log, stderr=subprocess.STDOUT,
                               text=True, cwd=REPO_ROOT, preexec_fn=_stop_with_parent,
                               env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    stopper = None
    stopped = threading.Event()

    def stop():
      stopped.set()
      process.send_signal(signal.SIGTERM)

    if stage.steps is not None:
      stopper = threading.Timer(max(deadline - time.time(), 0.0), stop)
      stopper.start()
    last_line = ''
    try:
      while True:
        status = process.poll()
        for line in reader.readlines():
          if line.strip():
            last_line = line.strip()
          match = _STEP_LINE.search(line)
          if match:
            left_min = max(budget_end - time.time(), 0) / 60
            print(f'  {stage.name}: step {match.group(1)}/{match.group(2)}, '
                  f'{left_min:.0f} min of the budget left', flush=True)
        heartbeat()
        if status is not None:
          break
        time.sleep(1.0)
    finally:
      if stopper is not None:
        stopper.cancel()
  # The trainer saves and exits 0 on SIGTERM; a SIGTERM that lands before its handler is
  # installed or after it is removed (start-up, teardown after the last save) kills it, and
  # its last complete checkpoint is as good.
  if stopped.is_set() and status == -signal.SIGTERM and stage.workdir is not None:
    saved = workdir_lib.latest_step(stage.workdir)
    if saved is not None:
      status = 0
      print(f'create: {stage.name} was killed at its deadline; its checkpoint of step {saved} '
            'is used', flush=True)
  if stopper is not None and status == 0 and time.time() >= deadline:
    print(f'create: {stage.name} stopped at its share of the budget (its last checkpoint is '
          'used)', flush=True)
  if status != 0 and stage.name == 'evaluate':
    print(f'create: evaluation failed, see {log_path}: {last_line[:300]}', flush=True)
    return last_line[:300]
  if status != 0:
    raise errors.UserError(f'stage {stage.name} failed (exit {status}); see {log_path}: '
                           f'{last_line[:300]}')
  return None


def summary(workdir: str, state: dict) -> list[str]:
  """What the final metrics say, memorisation last: a model that copies is a failure."""
  path = pathlib.Path(workdir) / 'metrics.json'
  if not path.exists():
    evaluation = state['finished'].get('evaluate', {})
    if 'skipped' in evaluation:
      return [f'no metrics.json: evaluate skipped: {evaluation["skipped"]}']
    return [f'no metrics.json: {evaluation.get("failure", "it did not run")}']
  metrics = json.loads(path.read_text())
  lines = [f'{"":22s} {"KAD":>20s} {"pulse clarity":>14s} {"chroma stability":>17s} '
           f'{"C2ST AUC":>9s}']
  # The training songs have a profile and no KAD: what the generator was shown.
  for name in ('training', 'floor', 'vqvae_reconstruction', 'gan', 'baseline_iid'):
    kad = metrics.get(f'{name}/kad')
    profile = metrics.get(f'{name}/profile')
    if not isinstance(kad, dict) and not profile:
      continue
    shown = ['-' if not isinstance(kad, dict)
             else f'{kad["value"]:.1f} [{kad["low"]:.1f}, {kad["high"]:.1f}]']
    for entry in ('pulse_clarity', 'chroma_stability'):
      value = (profile or {}).get(entry, {}).get('value')
      shown.append('-' if value is None else f'{value:.2f}')
    auc = metrics.get(f'{name}/c2st_auc', {}).get('value')
    shown.append('-' if auc is None else f'{auc:.2f}')
    lines.append(f'{name:22s} {shown[0]:>20s} {shown[1]:>14s} {shown[2]:>17s} {shown[3]:>9s}')
  strength = metrics.get('gan/style_strength')
  if strength is not None:
    lines.append(f'style strength {strength:.2f}: the global noise scaled so the pieces change '
                 f'code as often as the songs (sample --style_strength=1: as trained)')
  slope = metrics.get('gan/rhythm_following_slope')
  if isinstance(slope, dict) and slope['value'] == slope['value']:  # Not NaN.
    lines.append(f'rhythm following {slope["value"]:.2f} [{slope["low"]:.2f}, '
                 f'{slope["high"]:.2f}]: how far a piece\'s pulse rises with that of the songs\' '
                 f'rhythm it is given (1: one for one)')
  share = metrics.get('gan/too_close_to_training_share')
  if share is not None:
    verdict = ('about what held-out real music gets (~5%)' if share <= 0.1
               else 'TOO HIGH: the GAN copies its training songs')
    lines.append(f'memorisation: {share:.0%} of generated clips are closer to a training clip '
                 f'than 95% of held-out songs are; {verdict}')
  return lines


def create(songs: str, workdir: str, hours: float, preset: str, vocoder: bool,
           min_audio_minutes: float = 5.0, held_out: float | None = None) -> dict:
  """Runs (or resumes) every stage within `hours`; returns the final state."""
  settings = {'songs': os.path.abspath(songs), 'workdir': os.path.abspath(workdir),
              'hours': hours, 'preset': preset, 'vocoder': vocoder,
              'held_out_fraction': held_out}
  if hours <= 0:
    raise errors.UserError(f'--hours={hours:g}: must be positive')
  if held_out is not None and not 0 < held_out <= 0.5:
    raise errors.UserError(f'--held_out_fraction={held_out:g}: must be in (0, 0.5]')
  if preset not in ('auto',) + tuple(PRESETS):
    raise errors.UserError(f'--preset={preset}: choose auto, {", ".join(PRESETS)}')
  state = check_inputs(settings['songs'], settings['workdir'], settings, min_audio_minutes)
  workdir_path = pathlib.Path(settings['workdir'])
  workdir_path.mkdir(parents=True, exist_ok=True)
  state_path = workdir_path / STATE_FILENAME
  if state is None:
    num_files, audio_s = audio_seconds(settings['songs'])
    print('create: measuring this machine (a few train steps of each model)...', flush=True)
    measuring_since = time.time()  # The measurement's minutes come out of the budget too.
    resolved = resolve_preset(preset, jax_backend() if preset == 'auto' else '')
    vqvae_config, gan_config = (find_config(path) for path in PRESETS[resolved])
    calibration = calibrate(vqvae_config, gan_config, find_config(VOCODER_CONFIGS[resolved])
                            if settings['vocoder'] else None)
    state = {'settings': settings, 'feature_version': contract.FEATURE_VERSION,
             'preset': resolved, 'audio_s': audio_s, 'num_files': num_files,
             'spent_s': time.time() - measuring_since,
             'finished': {},
             'steps': {}, 'calibration': calibration,
             'vqvae_adversarial_start_step': calibration['vqvae']['adversarial_start_step']}
    atomic_files.write_json(state_path, state)
  state['settings']['hours'] = hours  # A resumed run may be given more (or less) time.
  settings = {**state['settings'], 'preset': state['preset']}
  if 'prepare' in state['finished']:  # Killed between prepare's end and the checks.
    state['audio_s'] = check_prepared(settings['workdir'], min_audio_minutes)
    skip_evaluation_if_it_cannot_run(settings['workdir'], state, state_path)
  budget_s = hours * 3600
  started = time.time()
  spent_before = state['spent_s']
  stages = plan(settings, state, budget_s - spent_before, state['audio_s'])
  free_gb = shutil.disk_usage(workdir_path).free / 1e9
  needed_gb = 3.0 * state['audio_s'] / 3600 + 1.0  # WAVs, shards, checkpoints, samples.
  print(f'create: plan for {hours:g} h on {state["calibration"]["backend"]} '
        f'(preset {state["preset"]}); {spent_before / 60:.0f} min already spent')
  for stage in stages:
    print(f'  {stage.name:9s} {stage.planned_s / 60:6.1f} min  {stage.description}')
  print(f'  disk: about {needed_gb:.1f} GB needed, {free_gb:.0f} GB free', flush=True)
  if free_gb < needed_gb:
    raise errors.UserError(f'--workdir={workdir}: {free_gb:.1f} GB free, about '
                           f'{needed_gb:.1f} GB needed')
  logs = workdir_path / 'logs'
  logs.mkdir(exist_ok=True)
  while stages:
    stage = stages[0]
    if stage.steps is not None:
      state['steps'][stage.name] = stage.steps
    # A stage's time over every run of it (an interrupted one's earlier runs count too) and
    # its plan when it first started (a resumed one is planned for what is left of it).
    running = state.setdefault('running', {}).setdefault(
        stage.name, {'seconds': 0.0, 'planned_seconds': stage.planned_s})
    earlier_s = running['seconds']
    atomic_files.write_json(state_path, state)
    stage_start = time.time()
    print(f'create: {stage.name} ({stage.planned_s / 60:.1f} min planned)', flush=True)
    budget_end = started + budget_s - spent_before
    # A training stage may overrun its plan by a tenth before it is stopped, as long as the
    # stages after it still end within the budget plus 5% (half the tenth the whole run may
    # overrun it by: the margin is for their own overruns).
    later_s = sum(later.planned_s for later in stages[1:])
    deadline = min(stage_start + 1.1 * stage.planned_s,
                   budget_end + 0.05 * budget_s - later_s)
    last_write = [0.0]

    def heartbeat():
      if time.time() - last_write[0] >= 10:  # The time spent survives a kill -9.
        state['spent_s'] = spent_before + (time.time() - started)
        running['seconds'] = earlier_s + (time.time() - stage_start)
        atomic_files.write_json(state_path, state)
        last_write[0] = time.time()

    failure = run_stage(stage, logs / f'{stage.name}.log', deadline, budget_end, heartbeat)
    took = earlier_s + (time.time() - stage_start)
    state['finished'][stage.name] = {'seconds': took,
                                     'planned_seconds': running['planned_seconds']}
    del state['running'][stage.name]
    if failure:
      state['finished'][stage.name]['failure'] = failure
    state['spent_s'] = spent_before + (time.time() - started)
    atomic_files.write_json(state_path, state)
    print(f'create: {stage.name} done in {took / 60:.1f} min', flush=True)
    if stage.name == 'prepare':
      state['audio_s'] = check_prepared(settings['workdir'], min_audio_minutes)
      skip_evaluation_if_it_cannot_run(settings['workdir'], state, state_path)
    # The rest is planned again from the time actually left.
    stages = plan(settings, state, budget_s - state['spent_s'], state['audio_s'])
  for line in summary(settings['workdir'], state):
    print(f'  {line}')
  print(f'create: done in {state["spent_s"] / 60:.0f} min of {hours * 60:.0f}; listen: '
        f'{workdir_path / "samples" / "index.html"}')
  return state


def main(argv):
  with errors.exit_on_user_error('create'):
    if len(argv) > 1:
      raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    config = flags.FLAGS
    create(config.songs, config.workdir, config.hours, config.preset, config.vocoder,
           config.min_audio_minutes, config.held_out_fraction)


def run():
  flags.DEFINE_string('songs', None, 'A folder of your songs (any format prepare reads).')
  flags.DEFINE_string('workdir', None, 'Where everything goes; run again to resume.')
  flags.DEFINE_float('hours', 1.0, 'The time budget, every stage included.')
  flags.DEFINE_enum('preset', 'auto', ['auto'] + list(PRESETS),
                    'Configs sized for the machine; auto: from the JAX backend (tiny: the '
                    'test configs, minutes, to try the command).')
  flags.DEFINE_bool('vocoder', False, 'Also train a neural vocoder (else Griffin-Lim).')
  flags.DEFINE_float('min_audio_minutes', 5.0, 'Refuse fewer minutes of songs than this: '
                     'less is too little to learn from.')
  flags.DEFINE_float('held_out_fraction', None, 'Share of the songs kept out of training '
                     'for evaluation (default: about 4 songs, a tenth of a large collection).')
  flags.mark_flags_as_required(['songs', 'workdir'])
  app.run(main)


if __name__ == '__main__':
  run()
