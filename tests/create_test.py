"""create: songs to music in one command, within a budget, refusing early, resuming after kill -9."""
import json
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

from data_prep import demo_corpus
from melodygan_jax import create as create_lib
from melodygan_jax import errors
from melodygan_jax.audio import contract
from melodygan_jax.runs import workdir as workdir_lib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def create(*flags, **kwargs) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'melodygan_jax.create', *flags], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=600, **kwargs)


def one_line_error(result: subprocess.CompletedProcess) -> str:
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert lines and lines[-1].startswith('create: '), result.stderr[-2000:]
  return lines[-1]


def test_what_cannot_work_is_refused_before_any_work(corpus_dir, tmp_path):
  workdir = tmp_path / 'run'
  message = one_line_error(create(f'--songs={tmp_path / "nowhere"}', f'--workdir={workdir}'))
  assert 'nowhere: no such folder' in message
  empty = tmp_path / 'empty'
  empty.mkdir()
  assert 'no audio files' in one_line_error(create(f'--songs={empty}', f'--workdir={workdir}'))
  # The test corpus holds 36 s of songs: less than the 5 minutes asked for by default.
  message = one_line_error(create(f'--songs={corpus_dir / "songs"}', f'--workdir={workdir}'))
  assert '0.6 minutes of audio in 4 files' in message and '--min_audio_minutes' in message
  other = tmp_path / 'other'
  other.mkdir()
  (other / 'config.json').write_text('{}')
  message = one_line_error(create(f'--songs={corpus_dir / "songs"}', f'--workdir={other}',
                                  '--min_audio_minutes=0.1'))
  assert 'not made by create' in message
  assert '--hours=0' in one_line_error(create(f'--songs={corpus_dir / "songs"}',
                                              f'--workdir={workdir}', '--hours=0'))
  assert not workdir.exists()  # Nothing was written for any of them.


def test_songs_are_counted_as_prepare_reads_them(tmp_path):
  # Prepare's suffixes (.wave, .w64 among them) in a linked folder, as a user who links in
  # their music library has them: create must not call such a folder empty.
  library = tmp_path / 'library'
  library.mkdir()
  three_minutes = np.zeros(3 * 60 * 8000, np.int16)
  soundfile.write(library / 'first.wave', three_minutes, 8000, format='WAV')
  soundfile.write(library / 'second.w64', three_minutes, 8000, format='W64')
  (library / 'notes.txt').write_text('not audio')
  songs = tmp_path / 'songs'
  songs.mkdir()
  (songs / 'library').symlink_to(library)
  (songs / 'again').symlink_to(library)  # The same files by a second path count once.
  count, seconds = create_lib.audio_seconds(str(songs))
  assert count == 2 and seconds == pytest.approx(360.0)
  settings = {'songs': str(songs)}
  assert create_lib.check_inputs(str(songs), str(tmp_path / 'run'), settings) is None
  message = str(pytest.raises(errors.UserError, create_lib.check_inputs, str(library / 'x'),
                              str(tmp_path / 'run'), settings).value)
  assert message.endswith('/x: no such folder')
  (library / 'first.wave').unlink()
  (library / 'second.w64').unlink()
  message = str(pytest.raises(errors.UserError, create_lib.check_inputs, str(songs),
                              str(tmp_path / 'run'), settings).value)
  assert message.endswith(': no audio files (.aac, .aif, .aifc, .aiff, .caf, .flac, .m4a, .mka, '
                          '.mp3, .mp4, .oga, .ogg, .opus, .w64, .wav, .wave, .webm, .wma)')


def test_too_little_audio_after_cleaning_is_refused_after_prepare(prepared_dir, tmp_path):
  # Before prepare, a file libsndfile cannot read (an M4A, say) counts as no audio, and
  # cleaning may cut silence: prepare's report decides, and the plan scales with it.
  (tmp_path / 'data').symlink_to(prepared_dir)
  message = str(pytest.raises(errors.UserError, create_lib.check_prepared, str(tmp_path),
                              5.0).value)
  assert re.fullmatch(r'\S+/data: 0\.\d minutes of audio after cleaning, from 4 files \(0 '
                      r'skipped, see report\.json\); at least 5 are needed '
                      r'\(--min_audio_minutes\)', message), message
  assert create_lib.check_prepared(str(tmp_path), 0.1) == pytest.approx(4 * 9.0, rel=0.05)


def test_a_workdir_of_other_settings_or_features_is_refused(corpus_dir, tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  songs = str(corpus_dir / 'songs')
  state = {'settings': {'songs': songs, 'workdir': str(workdir), 'hours': 1.0, 'preset': 'tiny',
                        'vocoder': False},
           'feature_version': contract.FEATURE_VERSION}
  (workdir / 'create.json').write_text(json.dumps(state))
  message = one_line_error(create(f'--songs={songs}', f'--workdir={workdir}', '--preset=cpu'))
  assert "--preset=cpu: " in message and "started with 'tiny'" in message
  state['feature_version'] = 1
  (workdir / 'create.json').write_text(json.dumps(state))
  message = one_line_error(create(f'--songs={songs}', f'--workdir={workdir}', '--preset=tiny'))
  assert 'feature version 1' in message and 'new --workdir' in message


def test_a_stage_killed_by_its_deadline_uses_its_last_checkpoint(tmp_path):
  # A process without a SIGTERM handler (a trainer starting up, or tearing down after its
  # last save) dies of the deadline's SIGTERM: with a checkpoint that is a stop at its share,
  # without one a failure.
  sleeper = [sys.executable, '-c', 'import time; print("step 1/10", flush=True); time.sleep(60)']
  stage = create_lib.Stage('vqvae', sleeper, 1.0, 'a stage', steps=10,
                           workdir=str(tmp_path / 'vqvae'))
  with pytest.raises(errors.UserError, match=r'stage vqvae failed \(exit -15\)'):
    create_lib.run_stage(stage, tmp_path / 'first.log', time.time() + 2, time.time() + 60)
  (tmp_path / 'vqvae' / 'checkpoints' / '7').mkdir(parents=True)
  (tmp_path / 'vqvae' / 'checkpoints' / '9.orbax-checkpoint-tmp-1').mkdir()  # Unfinished.
  started = time.time()
  assert create_lib.run_stage(stage, tmp_path / 'second.log', time.time() + 2,
                              time.time() + 60) is None
  assert time.time() - started < 30
  assert workdir_lib.latest_step(str(tmp_path / 'vqvae')) == 7


def test_the_plan_fits_the_budget_and_grows_the_stage_overheads_with_the_songs(capsys):
  calibration = {'backend': 'cpu', 'device_count': 1, 'gan': {'step_s': 1.38},
                 'vqvae': {'warmup_s': 1.29, 'adversarial_s': 1.80, 'adversarial_start_step': 1000}}
  state = {'num_files': 95, 'calibration': calibration, 'finished': {}, 'steps': {},
           'vqvae_adversarial_start_step': 1000}

  def planned(held_out, audio_hours):
    settings = {'workdir': '/w', 'preset': 'cpu', 'songs': '/s', 'hours': 1.0,
                'vocoder': False, 'held_out_fraction': held_out}
    return {stage.name: stage for stage in
            create_lib.plan(settings, state, 3600.0, audio_hours * 3600)}

  few, many = planned(0.05, 6.65), planned(0.32, 6.65)
  # A checkpoint every 3 minutes of planned steps (1.38 s each): a kill loses little.
  assert '--config.train.checkpoint_every_steps=130' in few['gan'].command
  for stages in (few, many):
    assert sum(stage.planned_s for stage in stages.values()) <= 3600.0
  # Holding out more songs makes the codec's final eval longer (it reads the held-out split)
  # and leaves fewer codec steps; the GAN's start-up grows with the songs it encodes.
  assert many['vqvae'].steps < few['vqvae'].steps
  held_out_s = 0.27 * 6.65 * create_lib.CODEC_EVAL_S_PER_HELD_OUT_HOUR
  codec_s = lambda stages: stages['vqvae'].planned_s - create_lib.training_seconds(
      calibration, 'vqvae', stages['vqvae'].steps, 1000)
  assert abs(codec_s(many) - codec_s(few) - held_out_s) < 1.0
  gan_start_s = lambda stages: stages['gan'].planned_s - stages['gan'].steps * 1.38
  assert gan_start_s(planned(0.05, 13.3)) - gan_start_s(few) == pytest.approx(
      6.65 * create_lib.GAN_START_S_PER_AUDIO_HOUR)
  # Too little time left before any stage ran: refused. Once a stage has run (and overran),
  # the GAN trains the steps that still fit: refusing would waste what was spent.
  settings = {'workdir': '/w', 'preset': 'cpu', 'songs': '/s', 'hours': 1.0, 'vocoder': False}
  with pytest.raises(errors.UserError, match='it needs at least'):
    create_lib.plan(settings, state, 900.0, 6.65 * 3600)
  state['finished'] = {'prepare': {}}
  create_lib.plan(settings, state, 900.0, 6.65 * 3600)
  # The GAN is planned again when the codec has run: nothing said of it yet.
  assert 'of gan fit the time left' not in capsys.readouterr().out
  state['finished'] = {'prepare': {}, 'vqvae': {}}
  (gan,) = [stage for stage in create_lib.plan(settings, state, 900.0, 6.65 * 3600)
            if stage.name == 'gan']
  assert 1 <= gan.steps < create_lib.MIN_STEPS['gan']
  assert f'only {gan.steps} steps of gan fit the time left' in capsys.readouterr().out


def test_too_few_long_held_out_songs_skip_evaluate_and_give_its_time_to_training(tmp_path):
  (tmp_path / 'data').mkdir()
  def prepared(*songs):
    files = [{'source': source, 'status': status, 'split': split, 'clean_duration_s': seconds}
             for source, status, split, seconds in songs]
    (tmp_path / 'data' / 'report.json').write_text(json.dumps({'files': files}))
    return create_lib.evaluation_skipped_because(str(tmp_path))

  train = ('a.wav', 'used', 'train', 200.0)
  # Whole songs go to each half, the halves of one size: 3 and 2 clips make halves of 2.
  assert prepared(train, ('b.wav', 'used', 'validation', 20.0),
                  ('c.wav', 'used', 'validation', 31.0)) is None
  assert prepared(train, ('b.wav', 'used', 'validation', 19.9),
                  ('c.wav', 'used', 'validation', 31.0)).startswith(
                      'the 2 held-out song(s) give 1 clip(s) of 10 s a half')
  # A song under a clip's length, or one prepare could not use, holds no clip.
  reason = prepared(train, ('b.wav', 'used', 'validation', 9.5),
                    ('c.wav', 'used', 'validation', 31.0), ('d.wav', 'failed', 'validation', 0))
  assert reason.startswith('the 2 held-out song(s) give 0 clip(s)') and 'needs 2' in reason
  # Recorded in the run's state (a resume after a kill at that moment checks again).
  state_path = tmp_path / 'create.json'
  state = {'finished': {'prepare': {}}}
  create_lib.skip_evaluation_if_it_cannot_run(str(tmp_path), state, state_path)
  assert json.loads(state_path.read_text())['finished']['evaluate']['skipped'] == reason
  ran = {'finished': {'prepare': {}, 'evaluate': {'seconds': 60.0}}}
  create_lib.skip_evaluation_if_it_cannot_run(str(tmp_path), ran, state_path)
  assert ran['finished']['evaluate'] == {'seconds': 60.0}

  calibration = {'backend': 'cpu', 'device_count': 1, 'gan': {'step_s': 1.38},
                 'vqvae': {'warmup_s': 1.29, 'adversarial_s': 1.80, 'adversarial_start_step': 1000},
                 'evaluate_probe_s': 0.32}
  settings = {'workdir': str(tmp_path), 'preset': 'cpu', 'songs': '/s', 'hours': 1.0,
              'vocoder': False}
  def planned(finished):
    state = {'num_files': 95, 'calibration': calibration, 'finished': finished, 'steps': {},
             'vqvae_adversarial_start_step': 1000}
    return {stage.name: stage for stage in
            create_lib.plan(settings, state, 3500.0, 6.65 * 3600)}

  evaluated = planned({'prepare': {}})
  skipped = planned({'prepare': {}, 'evaluate': {'skipped': reason}})
  assert 'evaluate' in evaluated and 'evaluate' not in skipped
  # Once prepare has run, evaluate reads what its held-out songs hold (0 + 3 clips here), not
  # the 30% of 6.65 h that the share would hold on average.
  assert '--max_clips=3' in evaluated['evaluate'].command
  assert set(skipped) == {'vqvae', 'gan', 'samples'}
  assert sum(stage.planned_s for stage in skipped.values()) <= 3500.0
  assert skipped['gan'].steps > evaluated['gan'].steps
  assert skipped['vqvae'].steps > evaluated['vqvae'].steps
  assert create_lib.summary(str(tmp_path), {'finished': {'evaluate': {'skipped': reason}}}) == [
      f'no metrics.json: evaluate skipped: {reason}']


def test_the_vocoder_is_planned_from_its_own_measured_steps():
  calibration = {'backend': 'cpu', 'device_count': 1, 'gan': {'step_s': 1.38},
                 'vqvae': {'warmup_s': 1.29, 'adversarial_s': 1.80, 'adversarial_start_step': 1000},
                 'vocoder': {'warmup_s': 0.4, 'adversarial_s': 0.4,
                             'adversarial_start_step': 18_000}}
  settings = {'workdir': '/w', 'preset': 'cpu', 'songs': '/s', 'hours': 1.0, 'vocoder': True,
              'held_out_fraction': 0.32}

  def planned(calibration, hours=1.0):
    state = {'num_files': 95, 'calibration': calibration, 'finished': {}, 'steps': {},
             'vqvae_adversarial_start_step': 1000}
    return {stage.name: stage for stage in create_lib.plan(
        {**settings, 'hours': hours}, state, hours * 3600, 6.65 * 3600)}

  measured = planned(calibration)
  vocoder = measured['vocoder']
  assert '--config=' + create_lib.find_config('configs/vocoder_refiner.py') in vocoder.command
  trains_s = vocoder.planned_s - create_lib.stage_overhead_s(calibration, 'vocoder')
  assert trains_s == pytest.approx(0.4 * vocoder.steps)
  # Its share of the training time, as the codec and the GAN get theirs.
  gan_trains_s = measured['gan'].planned_s - measured['gan'].steps * 1.38
  assert trains_s / (measured['gan'].steps * 1.38) == pytest.approx(
      create_lib.VOCODER_SHARE / ((1 - create_lib.CODEC_SHARE) * (1 - create_lib.VOCODER_SHARE)),
      rel=0.01)
  assert gan_trains_s > 0
  # A workdir calibrated before the vocoder was: three codec steps a step, as planned then,
  # which left the vocoder under its 200 steps in an hour (refused), and in 4 hours under a
  # tenth of the steps its measured cost fits.
  older_calibration = {name: figures for name, figures in calibration.items()
                       if name != 'vocoder'}
  with pytest.raises(errors.UserError, match='for the vocoder stage'):
    planned(older_calibration)
  older = planned(older_calibration, hours=4.0)
  assert older['vocoder'].planned_s - create_lib.stage_overhead_s(
      older_calibration, 'vocoder') == pytest.approx(
      3 * 1.80 * older['vocoder'].steps)
  assert 10 * older['vocoder'].steps < planned(calibration, hours=4.0)['vocoder'].steps


def test_a_stage_shorter_than_its_config_warm_up_warms_up_a_tenth_of_its_steps():
  # A slow vocoder with a long warm-up (configs/vocoder_large.py's 1,000 steps) given an
  # hour: the trainer refuses a warm-up as long as the run, so create shortens it.
  calibration = {'backend': 'gpu', 'device_count': 1, 'gan': {'step_s': 1.38},
                 'vqvae': {'warmup_s': 1.29, 'adversarial_s': 1.80, 'adversarial_start_step': 1000,
                           'warmup_steps': 200},
                 'vocoder': {'warmup_s': 1.0, 'adversarial_s': 1.0, 'adversarial_start_step': 0,
                             'warmup_steps': 1000}}
  state = {'num_files': 95, 'calibration': calibration, 'finished': {}, 'steps': {},
           'vqvae_adversarial_start_step': 1000}
  settings = {'workdir': '/w', 'preset': 'gpu', 'songs': '/s', 'hours': 1.0, 'vocoder': True,
              'held_out_fraction': 0.32}
  stages = {stage.name: stage
            for stage in create_lib.plan(settings, state, 3600.0, 6.65 * 3600)}
  vocoder_steps = stages['vocoder'].steps
  assert create_lib.MIN_STEPS['vocoder'] <= vocoder_steps <= 1000
  assert f'--config.train.warmup_steps={vocoder_steps // 10}' in stages['vocoder'].command
  # The codec's steps are more than its warm-up: its config's own.
  assert stages['vqvae'].steps > 200
  assert not any('warmup_steps' in part for part in stages['vqvae'].command)


def test_evaluate_is_planned_from_the_machines_measured_speed():
  audio_s = 20 * 3600  # Enough held-out songs that the budget, not the songs, sets the clips.
  measured = create_lib.evaluate_size(audio_s, 0.36, 4 * 3600, create_lib.EVALUATE_PROBE_S)
  assert measured == create_lib.evaluate_size(audio_s, 0.36, 4 * 3600)  # Older workdirs.
  slow = create_lib.evaluate_size(audio_s, 0.36, 4 * 3600, 2 * create_lib.EVALUATE_PROBE_S)
  fast = create_lib.evaluate_size(audio_s, 0.36, 4 * 3600, 0.5 * create_lib.EVALUATE_PROBE_S)
  # Within its share of the budget, a faster machine reads more clips, a slower one fewer.
  assert fast[0] > measured[0] > slow[0] >= 2 * create_lib.EVALUATE_MIN_HALF
  share_s = create_lib.EVALUATE_SHARE * 4 * 3600
  assert all(abs(seconds - share_s) < 1.0 for _, seconds in (measured, slow, fast))
  # At the minimum of clips, a slower machine plans more seconds for the same clips.
  short = [create_lib.evaluate_size(audio_s, 0.36, 900, speed * create_lib.EVALUATE_PROBE_S)
           for speed in (1.0, 4.0)]
  assert short[0][0] == short[1][0] == 2 * create_lib.EVALUATE_MIN_HALF
  assert short[1][1] == pytest.approx(4.0 * short[0][1])


def test_a_resumed_stage_is_planned_for_the_steps_after_its_checkpoint(tmp_path):
  calibration = {'backend': 'cpu', 'device_count': 1, 'gan': {'step_s': 1.38},
                 'vqvae': {'warmup_s': 1.29, 'adversarial_s': 1.80, 'adversarial_start_step': 1000}}
  settings = {'workdir': str(tmp_path), 'preset': 'cpu', 'songs': '/s', 'hours': 4.0,
              'vocoder': False, 'held_out_fraction': 0.32}
  state = {'num_files': 95, 'calibration': calibration, 'finished': {'prepare': {}},
           'steps': {}, 'vqvae_adversarial_start_step': 1000}
  first = {stage.name: stage for stage in create_lib.plan(settings, state, 13_000.0, 24_000.0)}
  # The codec started and saved at about half its steps; then the run was stopped.
  state['steps']['vqvae'] = first['vqvae'].steps
  (tmp_path / 'vqvae' / 'checkpoints' / str(first['vqvae'].steps // 2)).mkdir(parents=True)
  spent_s = create_lib.training_seconds(calibration, 'vqvae', first['vqvae'].steps // 2, 1000)
  resumed = {stage.name: stage for stage in
             create_lib.plan(settings, state, 13_000.0 - spent_s, 24_000.0)}
  assert resumed['vqvae'].steps == first['vqvae'].steps  # Exact resume.
  assert resumed['vqvae'].planned_s == pytest.approx(first['vqvae'].planned_s - spent_s)
  assert resumed['gan'].steps == pytest.approx(first['gan'].steps, abs=2)  # Its time is its own.


def wait_for(path: pathlib.Path, text: str, timeout_s: float) -> None:
  deadline = time.time() + timeout_s
  while time.time() < deadline:
    if path.exists() and text in path.read_text():
      return
    time.sleep(1)
  tail = path.read_text()[-3000:] if path.exists() else '(no such file)'
  raise AssertionError(f'{text!r} not in {path} after {timeout_s:.0f} s; it ends:\n{tail}')


@pytest.mark.end_to_end
def test_songs_to_samples_within_the_budget_and_resumed_after_kill_9(tmp_path):
  # 5 songs of 22 s: the 2 that prepare holds out (by a hash of their names) have two 10 s
  # clips each, a half of two clips, as evaluate's comparison with real music needs.
  demo_corpus.build_corpus(tmp_path / 'corpus', num_songs=5, seconds=22.0, seed=1)
  workdir = tmp_path / 'run'
  flags = [f'--songs={tmp_path / "corpus" / "songs"}', f'--workdir={workdir}', '--preset=tiny',
           '--min_audio_minutes=0.5']
  # Too little time for the minimum steps: refused after measuring, before any stage, with
  # the budget that would do (from the calibration now kept in the workdir).
  message = one_line_error(create(*flags, '--hours=0.01'))
  assert 'leaves' in message and 'it needs at least' in message
  assert not (workdir / 'data').exists()
  needed = float(re.search(r'\(([\d.]+) h in all\)', message).group(1))
  assert 0.01 < needed < 0.5, message
  assert 'it needs at least' in one_line_error(create(*flags, f'--hours={needed - 0.01:.2f}'))
  # Just that budget: each training stage at its minimum steps, beside the start-ups and
  # compiles the calibration measured.
  hours = needed
  log = tmp_path / 'first.log'
  with open(log, 'w') as output:
    first = subprocess.Popen([sys.executable, '-m', 'melodygan_jax.create', *flags,
                              f'--hours={hours}'], cwd=REPO_ROOT, stdout=output,
                             stderr=subprocess.STDOUT, text=True)
  try:
    # The budget bounds the whole run, so the GAN's first steps come well within it (on a
    # loaded machine too: the calibration measured it).
    wait_for(log, 'gan: step 50/', timeout_s=1.1 * hours * 3600)
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
  state = json.loads((workdir / 'create.json').read_text())
  assert set(state['finished']) == {'prepare', 'vqvae'}
  assert state['calibration']['evaluate_probe_s'] > 0.0  # evaluate planned from it.
  # The GAN's trainer hears SIGTERM when create dies: it saves and stops.
  wait_for(workdir / 'logs' / 'gan.log', 'preempted: saved the checkpoint', timeout_s=120)
  vqvae_log_size = (workdir / 'logs' / 'vqvae.log').stat().st_size
  started = time.time()
  second = create(*flags, f'--hours={hours}')
  assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
  plan = second.stdout.split('create: gan')[0]
  assert 'prepare' not in plan and 'vqvae' not in plan  # Finished stages are never redone.
  assert (workdir / 'logs' / 'vqvae.log').stat().st_size == vqvae_log_size
  assert 'resuming from the checkpoint of step' in (workdir / 'logs' / 'gan.log').read_text()
  final = json.loads((workdir / 'create.json').read_text())
  assert set(final['finished']) == {'prepare', 'vqvae', 'gan', 'evaluate', 'samples'}
  assert final['finished']['prepare'] == state['finished']['prepare']
  # The GAN's time is that of both its runs, beside the plan it first started with.
  killed_gan = state['running']['gan']
  assert final['finished']['gan']['seconds'] > killed_gan['seconds'] > 0.0
  assert final['finished']['gan']['planned_seconds'] == killed_gan['planned_seconds']
  assert final['running'] == {}
  assert 'failure' not in final['finished']['evaluate']
  assert 'skipped' not in final['finished']['evaluate']
  metrics = json.loads((workdir / 'metrics.json').read_text())
  for name in ('floor', 'vqvae_reconstruction', 'gan', 'baseline_iid'):
    kad = metrics[f'{name}/kad']
    # Halves of two clips have one distinct resample, so the interval can collapse onto the
    # value, computed by another sum: equal up to rounding.
    assert kad['low'] <= kad['value'] + 1e-9 * abs(kad['value']) and kad['low'] <= kad['high'], (
        name, kad)
  assert 0.0 <= metrics['gan/too_close_to_training_share'] <= 1.0
  assert 'memorisation: ' in second.stdout and 'style strength ' in second.stdout
  manifest = json.loads((workdir / 'samples' / 'manifest.json').read_text())
  assert len(manifest['samples']) == 8 and (workdir / 'samples' / 'index.html').exists()
  # The listening page shows evaluate's figures.
  assert '<td>gan/too_close_to_training_share</td>' in (
      workdir / 'samples' / 'index.html').read_text()
  # Within the budget plus a tenth, the time of both runs counted.
  assert final['spent_s'] <= 1.1 * hours * 3600
  assert time.time() - started <= 1.1 * hours * 3600
  assert 'create: done in' in second.stdout


def test_the_summary_names_the_style_strength_and_flags_a_model_that_copies(tmp_path):
  interval = lambda value: {'value': value, 'low': value - 1, 'high': value + 1}
  profile = {'pulse_clarity': {'value': 0.51}, 'chroma_stability': {'value': 0.59}}
  metrics = {'gan/kad': interval(15.5), 'gan/profile': profile,
             'gan/c2st_auc': {'value': 1.0}, 'baseline_iid/kad': interval(26.4),
             'gan/style_strength': 2.447, 'gan/too_close_to_training_share': 0.3}
  (tmp_path / 'metrics.json').write_text(json.dumps(metrics))
  lines = create_lib.summary(str(tmp_path), {'finished': {}})
  gan_row, = [line for line in lines if line.startswith('gan ')]
  assert gan_row.split()[1:] == ['15.5', '[14.5,', '16.5]', '0.51', '0.59', '1.00']
  assert any(line.startswith('style strength 2.45:') for line in lines)
  assert lines[-1].startswith('memorisation: 30%') and 'TOO HIGH' in lines[-1]
  assert not any(line.startswith('rhythm following') for line in lines)  # No rhythm bank.
  metrics['gan/rhythm_following_slope'] = {'value': 0.53, 'low': 0.41, 'high': 0.66}
  (tmp_path / 'metrics.json').write_text(json.dumps(metrics))
  assert create_lib.summary(str(tmp_path), {})[-2].startswith('rhythm following 0.53 [0.41, 0.66]')
  metrics['gan/too_close_to_training_share'] = 0.04
  (tmp_path / 'metrics.json').write_text(json.dumps(metrics))
  assert 'about what held-out real music gets' in create_lib.summary(str(tmp_path), {})[-1]
  (tmp_path / 'metrics.json').unlink()
  assert create_lib.summary(str(tmp_path), {'finished': {}}) == [
      'no metrics.json: it did not run']
