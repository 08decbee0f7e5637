"""Long-form generation: windows that share coordinates, seamless joins and loops,
style projection, long-context models (prompts and styles of clips: sampling_test)."""
import types

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import soundfile
from flax import nnx

from configs import gan as gan_config
from configs import gan_tiny
from melodygan_jax import errors
from melodygan_jax import sample as sample_cli
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.audio import synthesis
from melodygan_jax.evaluation import rhythm_following
from melodygan_jax.generation import long_form
from melodygan_jax.generation import projection
from melodygan_jax.generation import sample
from melodygan_jax.generation import sampling
from melodygan_jax.generation import style
from melodygan_jax.models import gan as gan_models
from melodygan_jax.runs import loading
from melodygan_jax.training import gan_trainer
from melodygan_jax.training import latent_encoding
from melodygan_jax.training import parallel


@pytest.mark.parametrize('steps, loop', [(5, False), (16, False), (17, False), (61, False),
                                         (61, True), (64, True), (5, True)])
def test_windows_blend_back_to_the_sequence_they_were_cut_from(steps, loop):
  plan = long_form.plan_windows(steps, 16, loop, context_steps=3)
  assert all(start + plan.window_steps <= plan.blend_steps or loop for start in plan.starts)
  assert plan.view_indices().max() < plan.coordinate_steps
  sequence = np.random.default_rng(steps).standard_normal((plan.blend_steps, 3))
  windows = sequence[plan.window_indices()]  # Each window sees its slice, exactly.
  blended = np.asarray(long_form.blend_windows(jnp.asarray(windows, jnp.float32), plan))
  np.testing.assert_allclose(blended, sequence[:steps], atol=1e-5)
  # Windows that disagree are blended smoothly: no step jumps from one to the other.
  offsets = np.arange(len(plan.starts), dtype=np.float32)[:, None, None] * np.ones_like(windows)
  ramp = np.asarray(long_form.blend_windows(jnp.asarray(offsets, jnp.float32), plan))[:, 0]
  if len(plan.starts) > 1 and not loop:  # A hard switch would step by 1.
    assert np.abs(np.diff(ramp)).max() <= np.sin(np.pi / 2 / plan.overlap_steps) + 1e-6
  if steps <= 16 and not loop:
    assert plan.join_steps == () and len(plan.starts) == 1
  else:
    assert plan.join_steps and all(0 <= join < steps for join in plan.join_steps)


def test_loop_plans_wrap_and_long_plans_do_not_repeat():
  plan = long_form.plan_windows(40, 8, loop=True, context_steps=5)
  assert plan.coordinate_steps == 40 and plan.window_indices().max() == 39
  assert (plan.window_indices()[-1] < 8).any()  # The last window runs into the start...
  assert (plan.view_indices()[0] >= 35).any()  # ...and the first sees the end as context.
  ten_minutes = sampling.steps_for_seconds(600.0, 4)
  plan = long_form.plan_windows(ten_minutes, 224)
  assert plan.coordinate_steps >= ten_minutes and len(plan.starts) == len(set(plan.starts))
  assert len(plan.join_steps) == len(plan.starts) - 1
  with pytest.raises(ValueError, match='windows of 2'):
    long_form.plan_windows(10, 1)


def tiny_generator(output='snap', dilations=(1, 2, 4)):
  return gan_models.Generator(noise_dim=5, noise_channels=3, width=11, dilations=dilations,
                              num_levels=2, codebook_size=13, codebook_dim=7, output=output,
                              rngs=nnx.Rngs(0))


@pytest.mark.parametrize('output', ['gumbel', 'snap'])
def test_windowed_codes_are_reproducible_codes_of_any_length(output):
  codebooks = jax.random.normal(jax.random.key(0), (2, 13, 7))
  graphdef, params = nnx.split(tiny_generator(output))
  keys = jnp.stack([jax.random.key(1), jax.random.key(2)])
  for steps, loop in ((6, False), (50, False), (50, True)):
    plan = long_form.plan_windows(steps, 8, loop)
    noise = jax.random.normal(jax.random.key(3), (2, 5))
    codes = long_form.generate_codes(graphdef, params, codebooks, keys, noise, plan, 1.0)
    assert codes.shape == (2, steps, 2) and codes.dtype == jnp.int32
    assert int(codes.min()) >= 0 and int(codes.max()) < 13
    alone = long_form.generate_codes(graphdef, params, codebooks, keys[1:], noise[1:], plan, 1.0)
    np.testing.assert_array_equal(alone[0], codes[1])  # Sample i from key i alone.
  # A style that moves along the sample: one global noise vector per coordinate.
  plan = long_form.plan_windows(50, 8)
  morph = style.morph_over_time(np.ones(5), -np.ones(5) + 0.1, plan.coordinate_steps)
  moving = long_form.generate_codes(graphdef, params, codebooks, keys[:1],
                                    jnp.asarray(morph)[None], plan, 1.0)
  assert moving.shape == (1, 50, 2)
  # Held at its first vector it is that global noise throughout; moving, its end differs.
  held = long_form.generate_codes(graphdef, params, codebooks, keys[:1],
                                  jnp.asarray(np.broadcast_to(morph[:1], morph.shape))[None],
                                  plan, 1.0)
  start = long_form.generate_codes(graphdef, params, codebooks, keys[:1],
                                   jnp.asarray(morph[:1]), plan, 1.0)
  np.testing.assert_array_equal(held, start)
  assert np.any(np.asarray(moving)[0, -10:] != np.asarray(held)[0, -10:])
  a, b = np.ones(5), np.arange(5.0)
  back = style.morph_over_time(a, b, 40, there_and_back=True)  # For loops.
  np.testing.assert_allclose(back[0], a, atol=1e-6)
  np.testing.assert_allclose(back[20], b, atol=1e-5)
  np.testing.assert_allclose(back[1], back[-1], atol=1e-6)  # Symmetric about the wrap.


def test_the_beat_clock_keeps_one_tempo_across_windows_and_stretches():
  key, clock = jax.random.key(4), gan_models.BeatClock((4.0, 8.0), (0.5, 1.0, 4.0))
  whole = gan_models.step_inputs(key, (40,), 3, clock)
  ratios = len(clock.cycles)
  assert whole.shape == (40, 3 + 2 * ratios)
  # A later stretch of the sample, asked from its first step, continues the clock.
  later = clock(gan_models.clock_key(key), (), 24, first_step=16)
  np.testing.assert_allclose(later, whole[16:, 3:], atol=1e-4)
  # The beat cycle (ratio 1) turns once per period, a period inside the asked range.
  beat = clock.cycles.index(1.0)
  angle = np.unwrap(np.arctan2(whole[:, 3 + beat], whole[:, 3 + ratios + beat]))
  period = 2 * np.pi / np.mean(np.diff(angle))
  assert 4.0 <= period <= 8.0
  # Without a clock, the step input is the noise alone, as it always was.
  np.testing.assert_array_equal(gan_models.step_inputs(key, (2, 40), 3),
                                jax.random.normal(key, (2, 40, 3)))
  # A generator with a clock makes windowed codes of any length, sample i from key i alone.
  generator = gan_models.Generator(noise_dim=5, noise_channels=3, width=11, dilations=(1, 2, 4),
                                   num_levels=2, codebook_size=13, codebook_dim=7,
                                   output='snap', rngs=nnx.Rngs(0), beat_clock=clock)
  graphdef, params = nnx.split(generator)
  codebooks = jax.random.normal(jax.random.key(0), (2, 13, 7))
  keys = jnp.stack([jax.random.key(1), jax.random.key(2)])
  noise = jax.random.normal(jax.random.key(3), (2, 5))
  plan = long_form.plan_windows(50, 8, False)
  codes = long_form.generate_codes(graphdef, params, codebooks, keys, noise, plan, 1.0)
  assert codes.shape == (2, 50, 2)
  alone = long_form.generate_codes(graphdef, params, codebooks, keys[1:], noise[1:], plan, 1.0)
  np.testing.assert_array_equal(alone[0], codes[1])


@pytest.mark.parametrize('loop', [False, True])
def test_windows_with_context_compute_what_one_pass_computes(loop):
  generator = tiny_generator('snap', dilations=(1, 2, 4, 8))  # Receptive field 31.
  context = gan_models.receptive_field((1, 2, 4, 8)) // 2
  global_noise = jax.random.normal(jax.random.key(1), (5,))
  for context_steps, agree in ((context, True), (0, False)):
    plan = long_form.plan_windows(60, 12, loop, context_steps)
    coordinates = jax.random.normal(jax.random.key(2), (plan.coordinate_steps, 3))
    windowed = long_form.blend_windows(long_form.window_features(
        generator, global_noise, coordinates, plan), plan)
    if loop:  # One pass over three turns of the circle; the middle turn is the loop.
      whole = generator.features(global_noise[None], jnp.tile(coordinates, (3, 1))[None])[0]
      whole = whole[60:120]
    else:
      whole = generator.features(global_noise[None], coordinates[None])[0]
      whole = whole[context_steps:context_steps + 60]
    difference = float(jnp.abs(windowed - whole).max())
    assert (difference < 1e-4) == agree, (context_steps, difference)


def test_style_projection_recovers_the_global_noise_of_generated_codes():
  """Codes generated from a known global noise project back close to it."""
  codebooks = jax.random.normal(jax.random.key(0), (2, 13, 7))
  generator = tiny_generator('snap')
  graphdef, params = nnx.split(generator)
  truth = projection.onto_sphere(jax.random.normal(jax.random.key(5), (5,)))
  step_noise = jax.random.normal(jax.random.key(6), (4, 8, 3))
  codes = generator(jnp.broadcast_to(truth, (4, 5)), step_noise, codebooks,
                    jax.random.key(7))[1]
  start = jax.random.normal(jax.random.key(8), (5,))
  style, _, loss = projection.fit_inputs(graphdef, params, codebooks, codes, start,
                                         jax.random.normal(jax.random.key(9), (4, 8, 3)),
                                         free_steps=8)
  _, _, loss_from_start = projection.fit_inputs(graphdef, params, codebooks, codes, start,
                                                step_noise, free_steps=8, iterations=0)
  cosine = lambda a, b: float(jnp.dot(a, b) / jnp.linalg.norm(a) / jnp.linalg.norm(b))
  assert float(loss) < float(loss_from_start)
  assert cosine(style, truth) > cosine(start, truth)
  np.testing.assert_allclose(jnp.linalg.norm(style), np.sqrt(5), rtol=1e-5)
  # A style held (continuation: the prompt's, found first) stays; the coordinates still fit.
  held, coordinates, held_loss = projection.fit_inputs(
      graphdef, params, codebooks, codes, truth, jax.random.normal(jax.random.key(9), (4, 8, 3)),
      free_steps=8, fit_global=False)
  np.testing.assert_allclose(held, truth, rtol=1e-6, atol=1e-7)
  _, _, held_start_loss = projection.fit_inputs(
      graphdef, params, codebooks, codes, truth, jax.random.normal(jax.random.key(9), (4, 8, 3)),
      free_steps=8, iterations=0)
  assert float(held_loss) < float(held_start_loss) and coordinates.shape == (4, 8, 3)


def test_long_context_models_and_checks():
  config = gan_config.get_config()
  assert config.data.crop_steps * 4 * contract.HOP_LENGTH / contract.SAMPLE_RATE_HZ >= 10.0
  assert gan_models.receptive_field(config.model.generator_dilations) >= config.data.crop_steps
  coarsest = 2**(config.model.discriminator_scales - 1) * gan_models.receptive_field(
      config.model.discriminator_dilations)
  assert coarsest >= config.data.crop_steps
  tiny = gan_tiny.get_config()
  assert gan_models.receptive_field(tiny.model.generator_dilations) >= tiny.data.crop_steps
  short = gan_tiny.get_config()
  short.model.generator_dilations = (1, 2)
  with pytest.raises(errors.ConfigError,
                     match='config.model.generator_dilations') as error:
    gan_trainer.check_long_context(short.data.crop_steps, short.model)
  assert '\n' not in str(error.value)
  discriminator = gan_models.MultiScaleDiscriminator(codebook_dim=7, width=11, dilations=(1, 2),
                                                     num_scales=3, rngs=nnx.Rngs(0))
  logits = discriminator(jnp.ones((2, 13, 7)))
  assert logits.shape == (2, 3)
  pooled = gan_models.average_pool(jnp.arange(5.0)[None, :, None], 2)
  np.testing.assert_allclose(pooled[0, :, 0], [0.5, 2.5, 4.0])


def test_interpolation_does_not_depend_on_the_batch():
  generator = types.SimpleNamespace(config=types.SimpleNamespace(
      model=types.SimpleNamespace(noise_dim=5)), style_strength=1.5)
  _, whole = sampling.keys_and_noise(generator, 0, range(6), (1, 2), num_samples=6)
  _, last_batch = sampling.keys_and_noise(generator, 0, range(4, 6), (1, 2), num_samples=6)
  np.testing.assert_allclose(last_batch, whole[4:], atol=1e-6)
  _, end = sampling.keys_and_noise(generator, 2, [0], None)
  np.testing.assert_allclose(whole[-1], end[0], atol=1e-5)  # The last sample is seed B's.


def fake_flags(**overrides):
  values = dict(num_samples=1, batch_size=1, seconds=2.0, seed=0, interpolate=None,
                style_from=None, prompt=None, prompt_seconds=None, loop=False, metrics=None,
                num_references=0, style_strength=None)
  values.update(overrides)
  return types.SimpleNamespace(**values)


@pytest.mark.parametrize('overrides, flag', [
    (dict(seconds=601.0), '--seconds=601'),
    (dict(seconds=0.0), '--seconds=0'),
    (dict(prompt='/nonexistent.mp3'), '--prompt=/nonexistent.mp3'),
    (dict(style_from=['a.wav', 'b.wav', 'c.wav']), '--style_from=a.wav,b.wav,c.wav'),
    (dict(prompt_seconds=2.0), '--prompt_seconds'),
    (dict(interpolate=['1', '2'], style_from=['/dev/null']), '--interpolate and --style_from'),
])
def test_bad_sample_flags_fail_with_one_line_naming_the_flag(overrides, flag):
  if overrides.get('style_from') == ['/dev/null']:
    overrides['style_from'] = [__file__]
  with pytest.raises(errors.UserError) as error:
    sample_cli.parse_flags(fake_flags(**overrides))
  message = str(error.value)
  assert flag in message and '\n' not in message


FLUX_BLOCK_FRAMES = 4  # 46 ms: a join changes the sound, a frame-to-frame flicker does not.


def spectral_flux(clip: np.ndarray) -> np.ndarray:
  """Per frame boundary (hop 256): the mean rise of the log-magnitude spectrum, averaged
  over the FLUX_BLOCK_FRAMES frames after, over the FLUX_BLOCK_FRAMES frames before.

  Frame-to-frame flux is dominated by Griffin-Lim's flicker; over blocks it
  measures what a seam does, a change of sound from one side to the other.
  Frames too near the ends to have full blocks are NaN.
  """
  block = FLUX_BLOCK_FRAMES
  log_magnitude = np.log(np.abs(librosa.stft(clip, n_fft=1024, hop_length=256)) + 1e-4)
  sums = np.cumsum(np.pad(log_magnitude, ((0, 0), (1, 0))), axis=1)
  frames = np.arange(block, log_magnitude.shape[1] - block)
  rise = (sums[:, frames + block] - 2 * sums[:, frames] + sums[:, frames - block]) / block
  flux = np.full(log_magnitude.shape[1], np.nan)
  flux[frames] = np.mean(np.maximum(rise, 0.0), axis=0)
  return flux


def flux_at_and_between(clip: np.ndarray, joins) -> tuple[float, float]:
  """Mean flux at the frames around join positions (samples), and at all others."""
  flux = spectral_flux(clip)
  frames = np.arange(len(flux))
  near = np.zeros(len(flux), bool)
  for join in joins:
    near |= np.abs(frames - join / 256) <= 1.5
  return float(np.nanmean(flux[near])), float(np.nanmean(flux[~near]))


def read(path):
  return soundfile.read(path, dtype='float32')[0]


def test_long_samples_have_seamless_window_joins(trained_gan, tmp_path):
  manifest = sample.sample(str(trained_gan[0]), str(tmp_path / 'long'), num_samples=2,
                           seconds=20.0, seed=1, show_progress=False, num_references=0)
  for entry in manifest['samples']:
    clip = read(tmp_path / 'long' / entry['wav'])
    assert len(clip) == 20 * 22050 and len(entry['codes']) >= 20 * 86 / 4
    joins = entry['window_joins']
    assert len(joins) > 50 and joins == sorted(joins) and joins[-1] < len(clip)
  # The proof: the windows computed exactly what one pass over the same coordinates
  # computes, so the codes (decoded and inverted whole) hold no join at all.
  generator = sampling.load(str(trained_gan[0])).generator  # At the run's style strength.
  steps = len(manifest['samples'][0]['codes'])
  keys, noise = sampling.keys_and_noise(generator, 1, [0, 1], None, 2)
  windows = long_form.plan_for(generator, steps)
  one_pass = long_form.plan_windows(steps, steps, False, generator.context_steps)
  coordinates = jnp.stack([long_form.coordinate_noise(
      key, windows, generator.config.model.noise_channels)[:one_pass.coordinate_steps]
                           for key in keys])
  single = long_form.generate_codes(generator.graphdef, generator.params,
                                    jnp.asarray(generator.vqvae.codebooks), keys,
                                    jnp.asarray(noise), one_pass, generator.temperature,
                                    step_noise=coordinates)
  for entry, codes in zip(manifest['samples'], np.asarray(single)):
    np.testing.assert_array_equal(entry['codes'], codes[:steps])
  # And what is heard is that one pass, decoded and inverted whole: the joins are positions
  # in the codes only, so no sample of the audio depends on where they fell. (A bound on the
  # spectral flux at the joins measured only noise here: ~10% per clip, either way.)
  log_mel = generator.vqvae.codes_to_log_mel(np.asarray(single)[:, :steps],
                                             generator.config.data.stems[0])
  one_pass_audio = synthesis.log_mel_to_audio(log_mel, seed=1, indices=[0, 1])
  for entry, clip in zip(manifest['samples'], one_pass_audio):
    audio_io.write_wav(tmp_path / 'one_pass.wav', synthesis.finish(clip[:20 * 22050]))
    written = soundfile.read(tmp_path / 'long' / entry['wav'], dtype='int16')[0]
    np.testing.assert_array_equal(written,
                                  soundfile.read(tmp_path / 'one_pass.wav', dtype='int16')[0])
  short = sample.sample(str(trained_gan[0]), str(tmp_path / 'short'), num_samples=1,
                        seconds=0.2, show_progress=False, num_references=0)
  assert short['samples'][0]['window_joins'] == []  # One pass.

  # The proof has teeth: windows without context disagree with one pass (their edges see
  # zero padding) ...
  no_context = long_form.plan_windows(steps, generator.window_steps, context_steps=0)
  unseen = np.asarray(long_form.generate_codes(
      generator.graphdef, generator.params, jnp.asarray(generator.vqvae.codebooks), keys,
      jnp.asarray(noise), no_context, generator.temperature))
  assert np.mean(unseen[:, :steps] != np.asarray(single)[:, :steps]) > 0.05
  # ... and the flux measure sees seams: the two clips spliced at the joins, in turn.
  first, second = (read(tmp_path / 'long' / entry['wav']) for entry in manifest['samples'])
  joins = manifest['samples'][0]['window_joins']
  turn = np.searchsorted(joins, np.arange(len(first))) % 2
  at, away = flux_at_and_between(np.where(turn == 0, first, second), joins)
  assert at > 1.2 * away, (at, away)


def test_loops_wrap_around_without_a_seam(trained_gan, tmp_path):
  manifest = sample.sample(str(trained_gan[0]), str(tmp_path), num_samples=4, seconds=6.0,
                           seed=2, loop=True, show_progress=False, num_references=0)
  vqvae = loading.load_generator(str(trained_gan[0])).vqvae
  wrap_flux, reference_flux, wrap_error_ratios = [], [], []
  for index, entry in enumerate(manifest['samples']):
    clip = read(tmp_path / entry['wav'])
    codes = np.asarray(entry['codes'])
    period_frames = len(codes) * 4
    assert len(clip) == period_frames * 256 and abs(len(clip) / 22050 - 6.0) < 0.05
    # Played twice in a row, the wrap has the flux the content itself has there:
    # the same codes three times over, rendered in one pass (no wrap at all).
    wrap_flux.append(flux_at_and_between(np.concatenate([clip, clip]), [len(clip)])[0])
    log_mel = np.asarray(vqvae.codes_to_log_mel(np.concatenate([codes] * 3)[None],
                                                manifest['stem']))
    one_pass = synthesis.log_mel_to_audio(log_mel, seed=2, indices=[index])[0]
    reference_flux.append(flux_at_and_between(one_pass[:2 * len(clip)], [len(clip)])[0])
    # A phase seam splatters the spectrum: the mel of the played-twice loop is no
    # further from its target at the wrap than elsewhere (a loop rendered with edges
    # and wrapped measures 3-7x here; the old cross-fade of two renderings 1.3x on
    # average). One clip alone varies with the trained fixture (0.95-1.31 seen), so the
    # mean tells a cross-fade apart and the largest only a seam.
    target = log_mel[0, period_frames:2 * period_frames + 1]
    error = np.abs(contract.log_mel(np.concatenate([clip] * 3))[period_frames:
                                                                 2 * period_frames + 1]
                   - target).mean(axis=1)
    near_wrap = np.r_[0:2, period_frames - 1:period_frames + 1]
    wrap_error_ratios.append(error[near_wrap].mean() / np.delete(error, near_wrap).mean())
  assert sum(wrap_flux) <= 1.05 * sum(reference_flux), (wrap_flux, reference_flux)
  assert np.mean(wrap_error_ratios) <= 1.15 and max(wrap_error_ratios) <= 2.0, wrap_error_ratios
  again = sample.sample(str(trained_gan[0]), str(tmp_path / 'again'), num_samples=4,
                        seconds=6.0, seed=2, loop=True, show_progress=False, num_references=0)
  assert again['samples'][1]['window_joins'] == manifest['samples'][1]['window_joins']
  for path in tmp_path.glob('sample_*'):
    assert path.read_bytes() == (tmp_path / 'again' / path.name).read_bytes(), path.name


def test_a_crop_longer_than_the_segments_spans_adjacent_ones(trained_vqvae, trained_gan):
  config = gan_tiny.get_config()
  config.vqvae_workdir = str(trained_vqvae[0])
  config.data.crop_steps = 24  # The fixture's 64-frame segments hold 16 codes.
  vqvae = gan_trainer.check_config(config)  # Not refused any more.
  # The fixture run's cache: same VQ-VAE and data, nothing to encode.
  data = latent_encoding.load_or_encode_latents(config, str(trained_gan[0]), vqvae,
                                            parallel.make_mesh())
  trainer = gan_trainer.GANTrainer(config, data)
  crops = next(trainer._local_batches(0))  # pylint: disable=protected-access
  windows = {window.tobytes() for start, end in zip(data.train.offsets, data.train.offsets[1:])
             for window in np.lib.stride_tricks.sliding_window_view(
                 data.train.codes[start:end], 24, axis=0).transpose(0, 2, 1)}
  assert crops.shape == (32, 24, 3) and all(crop.tobytes() in windows for crop in crops)
  assert trainer.real.shape[1:] == (24, 3) and len(trainer.real)
  longest = int(data.train.lengths.max())
  config.data.crop_steps = longest + 1
  with pytest.raises(errors.ConfigError,
                     match=rf'config.data.crop_steps={longest + 1}: .*longest: {longest} codes'
                     ) as error:
    gan_trainer.GANTrainer(config, data)
  assert '\n' not in str(error.value)


def rhythm_bank_generator(envelopes: np.ndarray) -> loading.LoadedGenerator:
  """A tiny untrained generator whose rhythm bank holds `envelopes` [steps, frames]."""
  config = gan_tiny.get_config()
  config.model.rhythm_bank_steps = len(envelopes)
  config.model.rhythm_frames = envelopes.shape[1]
  config.model.dtype = 'float32'
  generator = gan_models.generator_from_config(config.model, num_levels=2, codebook_size=16,
                                               codebook_dim=8, seed=0)
  generator.beat_clock.envelopes.value = jnp.asarray(envelopes)
  graphdef, params = nnx.split(generator)
  return loading.LoadedGenerator(config=config, vqvae=None, graphdef=graphdef, params=params,
                                 step=0, workdir='')


def test_a_piece_is_given_one_stretch_of_the_bank_read_on_across_its_windows():
  bank_steps = 4 * gan_models.RHYTHM_BANK_BLOCK
  generator = rhythm_bank_generator(np.arange(bank_steps, dtype=np.float32)[:, None])
  keys, _ = sampling.keys_and_noise(generator, 0, range(8))
  channels = generator.config.model.noise_channels

  def given(steps):
    plan = long_form.plan_for(generator, steps)
    return np.asarray(long_form.given_rhythm(generator.beat_clock, channels, keys, plan))[..., 0]
  short, long = given(20), given(200)  # One window; seven.
  assert len(long_form.plan_for(generator, 200).starts) > 1
  np.testing.assert_array_equal(np.diff(long, axis=1), 1.0)  # One stretch, in order...
  np.testing.assert_array_equal(long[:, :20], short)  # ...whatever the piece's length.
  assert len(set(short[:, 0])) == 8


def test_the_pulse_a_piece_is_given_is_that_of_its_stretch_of_the_bank():
  """Two stretches of a hit every 12 frames (0.14 s), two of noise: each piece's envelope
  pulses as the stretch it was drawn from (4 frames a code, heard a frame at a time)."""
  block, frames = gan_models.RHYTHM_BANK_BLOCK, 4
  beat = np.zeros(2 * block * frames, np.float32)
  beat[::12] = 1.0
  noise = np.random.default_rng(0).standard_normal(2 * block * frames).astype(np.float32)
  bank = np.concatenate([beat, noise]).reshape(4 * block, frames)
  generator = rhythm_bank_generator(bank)
  steps = sampling.steps_for_seconds(10.0, time_stride=4)
  pulse = rhythm_following.given_pulse(generator, 0, 24, steps, batch_size=8, time_stride=4)
  assert pulse.shape == (24,)
  # Pieces from either kind of stretch, none between: a beat is near 1, noise far below.
  assert np.sum(pulse > 0.9) >= 4 and np.sum(pulse < 0.4) >= 4
  assert np.all((pulse > 0.9) | (pulse < 0.4)), pulse
  # A generator without a bank is given no rhythm.
  generator.config.model.rhythm_bank_steps = 0
  assert rhythm_following.given_pulse(generator, 0, 24, steps, 8, 4) is None
