"""The neural vocoder: its STFT head, its training, its workdir check, its use by the CLIs."""
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile

from configs import vocoder_refiner
from configs import vocoder_tiny
from melodygan_jax import errors
from melodygan_jax.audio import contract
from melodygan_jax.audio import inversion
from melodygan_jax.audio import neural_vocoder
from melodygan_jax.data import audio_crops
from melodygan_jax.generation import reconstruct
from melodygan_jax.models import vocoder as vocoder_models
from melodygan_jax.runs import loading
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import calibration
from melodygan_jax.training import metric_writer
from melodygan_jax.training import vocoder_trainer


TRAIN_STEPS = 40


def test_head_inverse_stft_inverts_the_forward_stft():
  """A known signal -> our STFT -> (log-magnitude, angle) -> the head's spectrum -> iSTFT."""
  num_samples = 37 * contract.HOP_LENGTH
  t = np.arange(num_samples) / contract.SAMPLE_RATE_HZ
  noise = np.random.default_rng(0).standard_normal(num_samples)
  signal = (0.05 * np.sin(2 * np.pi * 440.0 * t) + 0.03 * np.sin(2 * np.pi * 3_001.0 * t)
            + 0.01 * noise).astype(np.float32)[None]
  spectrum = inversion.stft(jnp.asarray(signal), contract.num_frames(num_samples))
  log_magnitude = jnp.log(jnp.abs(spectrum) + 1e-12)
  rebuilt = vocoder_models.spectrum_from_head(log_magnitude, jnp.angle(spectrum))
  audio = np.asarray(inversion.istft(rebuilt, num_samples))
  assert audio.shape == signal.shape
  np.testing.assert_allclose(audio, signal, atol=1e-5)
  # A wrong angle convention (sin, cos swapped) must not pass.
  swapped = vocoder_models.spectrum_from_head(log_magnitude, jnp.pi / 2 - jnp.angle(spectrum))
  assert np.max(np.abs(np.asarray(inversion.istft(swapped, num_samples)) - signal)) > 1e-2


def test_jax_log_mel_is_the_contract_log_mel():
  samples = (0.1 * np.random.default_rng(1).standard_normal(7_001)).astype(np.float32)
  np.testing.assert_allclose(np.asarray(inversion.log_mel(jnp.asarray(samples)[None]))[0],
                             contract.log_mel(samples), atol=1e-4)


def test_phase_loss_counts_audible_phase_errors_only():
  rng = np.random.default_rng(3)
  samples = jnp.asarray(0.1 * rng.standard_normal((2, 4_096)), jnp.float32)
  spectrum = inversion.stft(samples, contract.num_frames(4_096))
  loss = vocoder_trainer.anti_wrapping_phase_loss
  assert float(loss(spectrum, spectrum)) < 1e-5
  # A whole turn is no error; a constant offset is one in phase, none in its differences.
  assert float(loss(spectrum, spectrum * jnp.exp(2j * jnp.pi))) < 1e-4
  offset = float(loss(spectrum, spectrum * jnp.exp(0.5j)))
  assert 0.45 < offset < 0.55
  noisy = spectrum * jnp.exp(1j * jnp.asarray(rng.uniform(-1, 1, spectrum.shape), jnp.float32))
  assert float(loss(spectrum, noisy)) > offset + 0.2  # Differences count too.
  # Phase errors where the true spectrum is silent are not heard, and not counted.
  silent = jnp.asarray(np.arange(spectrum.shape[-1]) >= 100)
  quiet = jnp.where(silent, 0.0, spectrum)
  assert float(loss(quiet, jnp.where(silent, noisy, quiet))) < 1e-5
  assert float(loss(quiet, jnp.where(silent, quiet, noisy))) > 0.5


@pytest.mark.parametrize('magnitude_prior', [True, False])
def test_generator_turns_frames_into_hop_samples_per_frame(magnitude_prior):
  config = vocoder_tiny.get_config()
  config.model.dtype = 'float32'
  config.model.magnitude_prior = magnitude_prior
  log_mel = jnp.asarray(np.random.default_rng(2).normal(-4.0, 2.0, (3, 13, contract.NUM_MELS)),
                        jnp.float32)
  audio = neural_vocoder.synthesize(neural_vocoder.build_generator(config.model), log_mel)
  assert audio.shape == (3, 12 * contract.HOP_LENGTH) and audio.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(audio)))


@pytest.mark.parametrize('refiner_channels', [0, 4])
def test_untrained_generator_with_priors_is_griffin_lim(refiner_channels):
  """Every correction starts at zero (the head's and the spectral refiner's): before
  training, the vocoder is exactly fast Griffin-Lim from the NNLS magnitude, with
  the same keys."""
  config = vocoder_tiny.get_config()
  config.model.dtype = 'float32'
  config.model.phase_prior_iterations = 32
  config.model.refiner_channels = refiner_channels
  num_samples = 40 * contract.HOP_LENGTH
  t = np.arange(num_samples) / contract.SAMPLE_RATE_HZ
  signal = (0.6 * np.sin(2 * np.pi * 220.0 * t) * np.exp(-3 * t)  # Loud: bins far above exp(4.6).
            + 0.02 * np.random.default_rng(3).standard_normal(num_samples)).astype(np.float32)
  log_mel = jnp.asarray(contract.log_mel(signal))[None]
  keys = jax.random.split(jax.random.key(7), 1)
  vocoded = neural_vocoder.synthesize(neural_vocoder.build_generator(config.model), log_mel,
                                      keys, phase_prior_iterations=32)
  griffin_lim = inversion.GriffinLimVocoder(iterations=32)(log_mel, keys)
  np.testing.assert_allclose(np.asarray(vocoded), np.asarray(griffin_lim), atol=1e-4)
  other_keys = jax.random.split(jax.random.key(8), 1)  # The keys do reach the phase prior.
  assert np.abs(np.asarray(neural_vocoder.synthesize(
      neural_vocoder.build_generator(config.model), log_mel, other_keys,
      phase_prior_iterations=32)) - np.asarray(griffin_lim)).max() > 1e-2
  # From the peak-locked phase instead: Griffin-Lim from that start, whatever the keys.
  magnitude = inversion.mel_to_magnitude(jnp.exp(log_mel), neural_vocoder.PRIOR_NNLS_ITERATIONS)
  from_peaks = inversion.istft(magnitude * inversion.griffin_lim_phase(
      magnitude, None, 8, initial_phase=inversion.peak_locked_phase(magnitude)), num_samples)
  for some_keys in (keys, other_keys):
    np.testing.assert_allclose(np.asarray(neural_vocoder.synthesize(
        neural_vocoder.build_generator(config.model), log_mel, some_keys,
        phase_prior_iterations=8, phase_prior_start='peak_locked')), np.asarray(from_peaks),
        atol=1e-4)
  with config.unlocked():  # A field of configs that set it; runs without it start at random.
    config.model.phase_prior_start = 'heap'
  config.data.dataset_dir = '/no/data/read/before/the/fields/are/checked'
  with pytest.raises(errors.ConfigError, match='config.model.phase_prior_start'):
    vocoder_trainer.check_config(config)


@pytest.fixture(scope='module')
def trained_vocoder(prepared_dir, tmp_path_factory):
  """The tiny config trained TRAIN_STEPS steps on the demo data set: (workdir, untrained eval)."""
  config = vocoder_tiny.get_config()
  config.data.dataset_dir = str(prepared_dir)
  config.train.num_steps = TRAIN_STEPS
  config.train.log_every_steps = 5
  config.train.eval_every_steps = TRAIN_STEPS
  config.train.checkpoint_every_steps = TRAIN_STEPS
  workdir = tmp_path_factory.mktemp('vocoder')
  checked = vocoder_trainer.check_config(config)
  workdir_lib.absolute_paths(config)
  workdir_lib.write_or_check_config(config, str(workdir))
  trainer = vocoder_trainer.VocoderTrainer(config, checked=checked)
  before = trainer.evaluate(trainer.create_state(),
                            metric_writer.MetricWriter(str(workdir / 'before')), 0)
  vocoder_trainer.train_and_evaluate(config, str(workdir), checked)
  return workdir, before


def test_tiny_config_trains_and_its_mel_loss_falls(trained_vocoder):
  workdir, before = trained_vocoder
  rows = workdir_lib.read_metrics(str(workdir))
  train_rows = [row for row in rows if 'train/mel_l1' in row]
  assert [row['step'] for row in train_rows] == list(range(5, TRAIN_STEPS + 1, 5))
  # Crops differ a lot in loudness, so one batch's loss is noisy: the second half's mean.
  first = train_rows[0]['train/mel_l1']
  later = np.mean([row['train/mel_l1'] for row in train_rows[len(train_rows) // 2:]])
  assert later < 0.9 * first, (first, later)
  # Adversarial terms are on after the warm-up, and the discriminators trained.
  assert train_rows[-1]['train/discriminator'] > 0 and train_rows[0]['train/discriminator'] == 0
  # Untrained, the vocoder is Griffin-Lim from its priors; trained, it is closer to the music.
  evaluated = [row for row in rows if 'eval/mel_distance' in row][-1]
  assert evaluated['eval/mel_distance'] < before['eval/mel_distance'], (before, evaluated)
  assert evaluated['eval/mr_stft'] < before['eval/mr_stft'], (before, evaluated)
  assert evaluated['eval/griffin_lim_mel_distance'] == pytest.approx(
      before['eval/griffin_lim_mel_distance'])
  # The network's own output, before the inference refinement, is scored too, and it is
  # what training moves.
  assert evaluated['eval/unrefined_mr_stft'] != pytest.approx(evaluated['eval/mr_stft'])
  assert evaluated['eval/unrefined_mr_stft'] < before['eval/unrefined_mr_stft'], (
      before, evaluated)
  assert evaluated['eval/unrefined_mr_stft_vs_griffin_lim'] == pytest.approx(
      evaluated['eval/unrefined_mr_stft'] / evaluated['eval/griffin_lim_mr_stft'])
  assert workdir_lib.latest_step(str(workdir)) == TRAIN_STEPS


def test_a_run_of_other_mel_settings_is_refused_with_one_line(trained_vocoder, prepared_dir,
                                                              tmp_path):
  workdir = tmp_path / 'other_mels'
  shutil.copytree(trained_vocoder[0], workdir)
  features = json.loads((workdir / workdir_lib.FEATURES_FILENAME).read_text())
  features['num_mels'], features['mel_fmax_hz'] = 80, 8_000.0  # Feature version 1's mel.
  (workdir / workdir_lib.FEATURES_FILENAME).write_text(json.dumps(features))
  with pytest.raises(workdir_lib.WorkdirError) as refused:
    loading.load_vocoder(str(workdir))
  message = str(refused.value)
  assert '\n' not in message and 'num_mels 80 (now 128)' in message and 'retrain' in message
  config = vocoder_tiny.get_config()
  config.data.dataset_dir = str(prepared_dir)
  with pytest.raises(workdir_lib.WorkdirError, match='other mel settings'):  # Resuming, too.
    vocoder_trainer.train_and_evaluate(config, str(workdir))


def test_copy_synthesis_writes_the_input_duration(trained_vocoder, corpus_dir, tmp_path):
  song = sorted((corpus_dir / 'songs').rglob('*.wav'))[0]
  output = tmp_path / 'copy.wav'
  metrics = reconstruct.reconstruct_file(None, str(song), str(output),
                                         vocoder_workdir=str(trained_vocoder[0]))
  info = soundfile.info(str(output))
  assert info.samplerate == contract.SAMPLE_RATE_HZ and info.channels == 1
  assert info.frames == round(soundfile.info(str(song)).duration * contract.SAMPLE_RATE_HZ)
  samples, _ = soundfile.read(str(output))
  assert np.all(np.isfinite(samples)) and np.max(np.abs(samples)) > 1e-3
  assert metrics['vocoder'] == {'kind': 'neural', 'workdir': str(trained_vocoder[0]),
                                'step': TRAIN_STEPS, 'variant': 'tiny',
                                'mel_refinement_iterations': 4, 'phase_prior_iterations': 8,
                                'phase_prior_start': 'random'}
  with pytest.raises(errors.UserError, match='--vocoder_workdir'):
    reconstruct.reconstruct_file(None, str(song), str(tmp_path / 'none.wav'))


def test_a_clip_is_decoded_in_one_pass_by_a_local_model(trained_vocoder):
  """Any length decodes in one call (so no joins), the same keys giving the same audio;
  the network itself is local: without the (whole-clip) Griffin-Lim phase prior, the
  middle of a clip is the same decoded alone with some context."""
  vocoder = loading.load_vocoder(str(trained_vocoder[0]))
  log_mel = np.random.default_rng(3).normal(-5.0, 2.0, (1, 301, contract.NUM_MELS))
  keys = jax.random.split(jax.random.key(4), 1)
  whole = np.asarray(vocoder(log_mel, keys))
  assert whole.shape == (1, 300 * contract.HOP_LENGTH)
  np.testing.assert_array_equal(np.asarray(vocoder(log_mel, keys)), whole)
  # Its phase prior from another start at inference: another waveform, recorded as such.
  peaks = loading.load_vocoder(str(trained_vocoder[0]), phase_prior=(4, 'peak_locked'))
  assert peaks.describe()['phase_prior_start'] == 'peak_locked'
  other = np.asarray(peaks(log_mel, keys))
  assert other.shape == whole.shape and np.all(np.isfinite(other))
  assert np.abs(other - whole).max() > 1e-3
  with pytest.raises(ValueError, match='at least 1 iteration'):
    loading.load_vocoder(str(trained_vocoder[0]), phase_prior=(0, 'peak_locked'))
  with pytest.raises(ValueError, match='mel_refinement_iterations=-1'):
    loading.load_vocoder(str(trained_vocoder[0]), mel_refinement_iterations=-1)
  config = vocoder_tiny.get_config()
  config.model.dtype = 'float32'
  config.model.phase_prior_iterations = 0
  generator = neural_vocoder.build_generator(config.model, seed=5)
  local = lambda mel: np.asarray(neural_vocoder.synthesize(generator, jnp.asarray(mel)))
  part, whole = local(log_mel[:, 90:211]), local(log_mel)
  middle = slice(60 * contract.HOP_LENGTH, 61 * contract.HOP_LENGTH)
  np.testing.assert_allclose(part[0, middle],
                             whole[0, 150 * contract.HOP_LENGTH:151 * contract.HOP_LENGTH],
                             atol=1e-4)


def test_sample_with_a_vocoder_writes_the_asked_duration(trained_gan, trained_vocoder, tmp_path):
  from melodygan_jax.generation import sample  # pylint: disable=g-import-not-at-top
  manifest = sample.sample(str(trained_gan[0]), str(tmp_path), num_samples=2, seconds=1.5,
                           batch_size=2, show_progress=False, num_references=0,
                           vocoder_workdir=str(trained_vocoder[0]))
  assert manifest['vocoder']['kind'] == 'neural' and manifest['vocoder']['step'] == TRAIN_STEPS
  for entry in manifest['samples']:
    samples, rate = soundfile.read(str(tmp_path / entry['wav']))
    assert rate == contract.SAMPLE_RATE_HZ and len(samples) == round(1.5 * rate)
    assert np.all(np.isfinite(samples)) and np.max(np.abs(samples)) > 1e-3
  assert 'vocoder: ' in (tmp_path / 'index.html').read_text()


def test_calibration_times_the_vocoder_steps_phase_by_phase():
  """create plans the vocoder stage from these: the discriminators' step costs more, and a
  run that stops before they start is planned at the warm-up cost throughout."""
  config = vocoder_tiny.get_config()
  figures = calibration.vocoder_seconds_per_step(config, steps=2)
  assert figures['adversarial_start_step'] == config.loss.adversarial_start_step
  assert figures['warmup_steps'] == config.train.warmup_steps  # create shortens a longer one.
  assert 0 < figures['warmup_s'] < figures['adversarial_s'], figures
  with config.unlocked():
    config.train.num_steps = config.loss.adversarial_start_step
  figures = calibration.vocoder_seconds_per_step(config, steps=2)
  assert figures['adversarial_s'] == figures['warmup_s'] > 0


def test_train_crops_are_a_function_of_the_step(prepared_dir):
  """A resumed run reads the crops an uninterrupted one would: nothing to save but the step."""
  audio = audio_crops.split_audio(str(prepared_dir), 'train', 2_048)
  assert len(audio.paths) == 3  # The fixture's 4 songs, one held out.
  held_out = audio_crops.split_audio(str(prepared_dir), 'validation', 2_048)
  assert not set(audio.paths) & set(held_out.paths) and held_out.paths
  uninterrupted = audio_crops.train_batches(audio, 2_048, 3, seed=5)
  batches = [next(uninterrupted)['audio'] for _ in range(4)]
  resumed = next(audio_crops.train_batches(audio, 2_048, 3, seed=5, start_step=3))['audio']
  np.testing.assert_array_equal(resumed, batches[3])
  assert not np.array_equal(batches[2], batches[3]) and batches[3].shape == (3, 2_048)
  # Two hosts read the rows of the same global batch: one host's batch of 6, halved.
  global_batch = next(audio_crops.train_batches(audio, 2_048, 6, seed=5, start_step=3))['audio']
  hosts = [next(audio_crops.train_batches(audio, 2_048, 3, seed=5, start_step=3,
                                          process_index=i, process_count=2))['audio']
           for i in range(2)]
  np.testing.assert_array_equal(np.concatenate(hosts), global_batch)


def test_the_losses_can_hear_the_mel_refined_output(prepared_dir):
  """loss.refinement_iterations: the losses score what inference plays, the network's
  output after the mel refinement, and the gradient reaches the network through it."""
  metrics = {}
  for iterations in (0, 4):
    config = vocoder_tiny.get_config()
    config.data.dataset_dir = str(prepared_dir)
    config.loss.refinement_iterations = iterations
    trainer = vocoder_trainer.VocoderTrainer(config, checked=vocoder_trainer.check_config(config))
    batch = next(trainer.train_batches(0))  # The same crops and the same weights for both.
    _, metrics[iterations] = trainer.jit_train_step(trainer.create_state(), batch)
  unrefined, refined = (jax.device_get(metrics[n]) for n in (0, 4))
  # The untrained network is Griffin-Lim from its priors; refined, its mel is nearer the crop's.
  assert refined['train/mel_l1'] < 0.85 * unrefined['train/mel_l1'], (refined, unrefined)
  assert refined['train/log_magnitude_l1'] == pytest.approx(unrefined['train/log_magnitude_l1'])
  assert 0 < refined['train/grad_norm'] != pytest.approx(unrefined['train/grad_norm'])
  # Refused: a negative count, inference that never refines, or refines another number of
  # steps than the losses heard.
  for iterations, inference in ((-1, 4), (4, 0), (4, 8)):
    config.loss.refinement_iterations = iterations
    config.model.mel_refinement_iterations = inference
    with pytest.raises(errors.ConfigError, match='config.loss.refinement_iterations'):
      vocoder_trainer.check_config(config)


def test_the_refiner_config_stays_reconstruction_only_for_any_step_count():
  config = vocoder_refiner.get_config()
  config.train.num_steps = 1_000_000  # As a flag or create's budget may set it.
  assert config.loss.adversarial_start_step > config.train.num_steps
  config.loss.adversarial_start_step = 5_000  # Asking for the discriminators changes nothing else.
  assert config.train.num_steps == 1_000_000


@pytest.mark.end_to_end
def test_fine_tuning_on_the_codec_starts_from_a_trained_vocoder(trained_vqvae, trained_vocoder,
                                                                prepared_dir, tmp_path):
  config = vocoder_tiny.get_config()
  config.data.dataset_dir = str(prepared_dir)
  config.vqvae_workdir = str(trained_vqvae[0])
  config.init_vocoder_workdir = str(trained_vocoder[0])
  config.train.num_steps, config.train.warmup_steps = 3, 1
  config.train.eval_every_steps = config.train.checkpoint_every_steps = 3
  checked = vocoder_trainer.check_config(config)
  trainer = vocoder_trainer.VocoderTrainer(config, checked=checked)
  started = trainer.fresh_start(trainer.create_state())
  trained = loading.load_vocoder(str(trained_vocoder[0]))
  for ours, theirs in zip(jax.tree.leaves(started.generator), jax.tree.leaves(trained.params)):
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
  # What the generator hears is the codec's round trip, not the true log-mel.
  true_mel = contract.log_mel(trainer.validation_clips[0])[None]
  heard = np.asarray(trainer.jit_input_log_mel(trainer.codec, jnp.asarray(true_mel)))
  assert heard.shape == true_mel.shape
  assert 0.05 < np.mean(np.abs(heard - true_mel)) < 3.0
  vocoder_trainer.train_and_evaluate(config, str(tmp_path), checked)
  assert workdir_lib.latest_step(str(tmp_path)) == 3
