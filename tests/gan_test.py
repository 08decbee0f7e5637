"""The latent GAN: codebook outputs, learning structure, exact resume, sharding, errors."""
import json
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import gan_tiny
import conftest
from melodygan_jax import errors
from melodygan_jax.runs import checkpoints
from melodygan_jax.runs import latent_cache
from melodygan_jax.runs import loading
from melodygan_jax.runs import style_strength
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import context_masking
from melodygan_jax.data import input_pipeline
from melodygan_jax.evaluation import latent_metrics
from melodygan_jax.training import parallel
from melodygan_jax.models import gan as gan_models
from melodygan_jax.models import residual_quantizer
from melodygan_jax.training import gan_trainer
from melodygan_jax.training import latent_encoding


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
OVERRIDES = conftest.GAN_OVERRIDES


@pytest.mark.parametrize('output', ['gumbel', 'snap'])
def test_generated_latents_are_residual_codebook_sums_of_any_length(output):
  codebooks = jax.random.normal(jax.random.key(0), (2, 13, 7)) * jnp.array([1.0, 0.3])[:, None, None]
  generator = gan_models.Generator(noise_dim=5, noise_channels=3, width=11, dilations=(1, 2),
                                   num_levels=2, codebook_size=13, codebook_dim=7,
                                   output=output, rngs=nnx.Rngs(0))

  @nnx.jit(static_argnums=(2,))
  def generate(generator, rng, steps):
    global_noise, step_noise = generator.sample_noise(rng, 3, steps)
    return generator(global_noise, step_noise, codebooks, rng)

  for steps in (1, 8, 50):
    latents, codes, probs = generate(generator, jax.random.key(steps), steps)
    assert latents.shape == (3, steps, 7) and codes.shape == (3, steps, 2)
    np.testing.assert_allclose(latents, codebooks[0][codes[..., 0]] + codebooks[1][codes[..., 1]],
                               atol=1e-5)
    assert probs.shape == (3, steps, 2, 13)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def synthetic_codes(rng, count, length, patterns):
  """[count, length, 2]: level 1 repeats one of a few patterns from a random phase;
  level 2 is a fixed function of level 1."""
  rows = []
  for _ in range(count):
    pattern = patterns[rng.integers(len(patterns))]
    start = rng.integers(len(pattern))
    rows.append([pattern[(start + i) % len(pattern)] for i in range(length)])
  first = np.asarray(rows, np.int32)
  return np.stack([first, (7 * first + 3) % 16], axis=-1)


PATTERNS = [[1, 5, 9, 2], [3, 3, 7, 7, 11], [0, 4, 8, 12, 14, 6]]  # Disjoint codes.


def synthetic_latent_data() -> latent_cache.LatentData:
  """Runs of PATTERNS' codes (2 levels of 16 codes), 300 for training and 60 held out."""
  rng = np.random.default_rng(0)
  return latent_cache.LatentData(
      train=latent_cache.runs_of_sequences(synthetic_codes(rng, 300, 24, PATTERNS)),
      validation=latent_cache.runs_of_sequences(synthetic_codes(rng, 60, 24, PATTERNS)),
      codebooks=(rng.standard_normal((2, 16, 8)) * np.array([1.0, 0.3])[:, None, None]
                 ).astype(np.float32))


@pytest.mark.optimized  # Hundreds of steps: running, not compiling.
def test_gan_learns_the_structure_of_synthetic_latents():
  data = synthetic_latent_data()
  config = gan_tiny.get_config()
  config.data.crop_steps = 12
  config.loss.code_usage_weight = 1.0  # A lighter pull on code use learns order faster.
  config.train.num_eval_samples = 128
  trainer = gan_trainer.GANTrainer(config, data)
  state = trainer.create_state()
  before = trainer.evaluate(state, _NullWriter(), 0)
  batches = trainer.train_batches(0)
  metrics = None
  for _ in range(600):
    previous = metrics
    state, metrics = trainer.jit_train_step(state, next(batches))
    jax.block_until_ready(previous)  # One step in flight, as the training loop keeps it.
  after = trainer.evaluate(state, _NullWriter(), 600)
  assert np.isfinite(float(metrics['train/loss']))
  real_hist = latent_metrics.code_histogram(data.validation.codes, 16)
  generated = trainer.generated_codes(state, 128)
  uniform_js = np.mean([latent_metrics.jensen_shannon_distance(level, np.full(16, 1 / 16))
                        for level in real_hist])
  assert after['eval/code_js_distance'] < 0.6 * before['eval/code_js_distance']
  assert after['eval/code_js_distance'] < 0.6 * uniform_js
  assert after['eval/bigram_js_distance'] < after['baseline_iid/bigram_js_distance'] - 0.15
  assert after['eval/latent_frechet'] < after['baseline_uniform/latent_frechet']
  assert after['eval/distinct_share'] > 0.05  # Not one collapsed sequence.
  assert set(np.unique(generated)) <= set(range(16))


def songs_with_hits(rng, onset_following_weight=0.0, frames=1):
  """A trainer of a held pattern with a hit wherever the training songs' envelope has an
  onset, and the envelope [songs, steps, frames]. The hit falls on one of its code's
  `frames` frames, drawn at random; the hit on frame f is code 16 - frames + f."""

  def songs(count):
    codes = synthetic_codes(rng, count, 24, PATTERNS[:1])
    return codes, with_hits(rng, codes, frames)

  (train, onsets), (held_out, _) = songs(300), songs(60)
  data = latent_cache.LatentData(
      train=latent_cache.runs_of_sequences(train),
      validation=latent_cache.runs_of_sequences(held_out),
      codebooks=rng.standard_normal((2, 16, 8)).astype(np.float32))
  config = gan_tiny.get_config()
  config.data.crop_steps = 12
  config.model.rhythm_bank_steps = 1024
  config.model.rhythm_frames = frames
  config.loss.code_usage_weight = 1.0
  config.loss.onset_following_weight = onset_following_weight
  return gan_trainer.GANTrainer(config, data, rhythm=onsets.reshape(-1, frames)), onsets


def with_hits(rng, codes, frames):
  """Puts hits into `codes` [songs, steps, 2] at a fifth of the steps; returns their
  envelope [songs, steps, frames] (1 on the frame of each hit)."""
  onsets = rng.random(codes.shape[:2]) < 0.2
  frame = rng.integers(0, frames, codes.shape[:2])
  codes[onsets, 0] = 16 - frames + frame[onsets]
  codes[onsets, 1] = 2
  return (onsets[..., None] & (frame[..., None] == np.arange(frames))).astype(np.float32)


def assert_hits_on_new_onsets(trainer, state, onsets, rng):
  """The EMA generator, given new envelopes, plays its hits where they have onsets, each
  on the frame its envelope has it."""
  frames = onsets.shape[-1]
  expected = np.zeros((256, 12, 2), np.int32)
  envelope = with_hits(rng, expected, frames)
  # Standardized as the trainer standardizes the training ones.
  rhythm = (envelope - onsets.mean()) / onsets.std()
  generator = nnx.merge(trainer.gen_graphdef, state.generator_ema)
  generated = np.asarray(gan_models.sample_codes(
      generator, trainer.data.codebooks, gan_models.generator_temperature(trainer.config.model),
      jax.random.key(1), 256, 12, rhythm=jnp.asarray(rhythm, jnp.float32))[1])[..., 0]
  new_onsets = envelope.any(axis=-1)
  hits = generated >= 16 - frames
  on_frame = generated[new_onsets] == expected[new_onsets, 0]
  assert on_frame.mean() > 0.5 and hits[~new_onsets].mean() < 0.1, (
      on_frame.mean(), hits[~new_onsets].mean())
  return generator


@pytest.mark.optimized  # Hundreds of steps: running, not compiling.
def test_a_generator_with_a_rhythm_bank_plays_its_events_on_the_frames_the_envelope_has_them():
  """An envelope of each of a code's 4 frames: the generator plays each hit on its frame
  (the code that holds it there), not only in its code."""
  rng = np.random.default_rng(0)
  trainer, onsets = songs_with_hits(rng, frames=4)
  state = trainer.create_state()
  batches = trainer.train_batches(0)
  for _ in range(400):
    state, _ = trainer.jit_train_step(state, next(batches))
  generator = assert_hits_on_new_onsets(trainer, state, onsets, rng)
  # The bank holds the training envelopes; a piece reads it on across windows.
  bank = generator.beat_clock
  assert bank.envelopes.value.shape == (1024, 4)
  np.testing.assert_allclose(np.sort(np.unique(np.asarray(bank.envelopes.value))),
                             np.sort(np.unique(trainer.rhythm)), rtol=1e-6)
  key = jax.random.key(2)
  whole = bank(key, (3,), 20)
  assert whole.shape == (3, 20, 4)
  np.testing.assert_array_equal(bank(key, (3,), 8, first_step=12), whole[:, 12:])


@pytest.mark.optimized  # Hundreds of steps: running, not compiling.
def test_the_onset_regressor_reads_the_real_onsets_and_the_generator_follows_them():
  rng = np.random.default_rng(0)
  trainer, onsets = songs_with_hits(rng, onset_following_weight=3.0)
  state = trainer.create_state()
  assert state.discriminator['onsets'] is not None
  batches = trainer.train_batches(0)
  first = None
  for _ in range(200):
    state, metrics = trainer.jit_train_step(state, next(batches))
    first = first or {name: float(value) for name, value in metrics.items()}
  # Standardized envelopes: an error of 1.0 is knowing nothing, as at the start.
  assert first['train/onset_regression'] > 0.5
  assert float(metrics['train/onset_regression']) < 0.2
  assert float(metrics['train/onset_following']) < 0.5 * first['train/onset_following']
  assert_hits_on_new_onsets(trainer, state, onsets, rng)


def test_smoothed_step_noise_keeps_unit_variance_and_changes_slower():
  noise = jax.random.normal(jax.random.key(0), (256, 64, 4))
  smoothed = gan_models.smooth(noise, 9)
  np.testing.assert_array_equal(gan_models.smooth(noise, 1), noise)
  assert abs(float(jnp.var(smoothed)) - 1.0) < 0.05  # The ends too: fewer steps, rescaled.
  assert abs(float(jnp.var(smoothed[:, 0])) - 1.0) < 0.1
  neighbours = lambda x: float(jnp.mean(x[:, 1:] * x[:, :-1]))
  assert neighbours(noise) < 0.05 and neighbours(smoothed) > 0.8
  np.testing.assert_allclose(smoothed[:, 30], noise[:, 26:35].sum(axis=1) / 3.0, atol=1e-5)


@pytest.mark.parametrize('field, value, model_field, model_value', [
    ('rhythm_matching_weight', -1.0, 'rhythm_lags', (2, 8)),
    ('rhythm_matching_weight', 1.0, 'rhythm_lags', ()),
    ('similarity_matching_weight', -1.0, 'similarity_lags', (1, 8)),
    ('similarity_matching_weight', 1.0, 'similarity_lags', ()),
    ('onset_following_weight', -1.0, 'rhythm_bank_steps', 64),
    ('onset_following_weight', 1.0, 'rhythm_bank_steps', 0)])
def test_bad_rhythm_loss_weights_are_one_line(field, value, model_field, model_value):
  config = gan_tiny.get_config()
  config.loss[field] = value
  config.model[model_field] = model_value
  with pytest.raises(errors.ConfigError, match=f'config.loss.{field}') as error:
    gan_trainer.check_rhythm_losses(config.model, config.loss)
  assert '\n' not in str(error.value)


def test_the_rhythm_discriminator_sees_periodicity_wherever_the_events_fall():
  rhythm = gan_models.RhythmDiscriminator(codebook_dim=3, width=8, lags=(2, 12),
                                          rngs=nnx.Rngs(0))
  steps = jnp.arange(48)
  pulse = (steps % 6 == 0).astype(jnp.float32)  # An event every 6 steps.
  shifted = jnp.roll(pulse, 2)
  random = jax.random.bernoulli(jax.random.key(1), 1 / 6, (48,)).astype(jnp.float32)
  correlations = rhythm.autocorrelation(jnp.stack([pulse, shifted, random])[..., None])
  lags = np.arange(2, 13)
  assert lags[np.argmax(correlations[0])] in (6, 12)
  assert correlations[0, 6 - 2] > 0.5 and correlations[0, 5 - 2] < 0.0
  np.testing.assert_allclose(correlations[0], correlations[1], atol=0.05)  # Phase-blind.
  assert float(correlations[2, 6 - 2]) < 0.5 * float(correlations[0, 6 - 2])
  # Beside the scales, one more column; a run whose config predates it builds none.
  config = gan_tiny.get_config()
  config.model.dtype = 'float32'
  plain = gan_models.discriminator_from_config(config.model, codebook_dim=3, seed=0)
  config.model.rhythm_lags = (2, 12)
  judged = gan_models.discriminator_from_config(config.model, codebook_dim=3, seed=0)
  latents = jax.random.normal(jax.random.key(2), (4, 16, 3))
  assert judged(latents).shape == (4, config.model.discriminator_scales + 1)
  assert plain(latents).shape == (4, config.model.discriminator_scales)
  with config.unlocked():
    del config.model['rhythm_lags']
  assert jax.tree.structure(nnx.state(gan_models.discriminator_from_config(
      config.model, codebook_dim=3, seed=0))) == jax.tree.structure(nnx.state(plain))


def test_the_similarity_discriminator_sees_held_and_returning_steps_wherever_they_fall():
  judge = gan_models.SimilarityDiscriminator(codebook_dim=3, width=8, lags=(1, 12),
                                             rngs=nnx.Rngs(0), heads=1, head_dim=5)
  rng = np.random.default_rng(0)
  chords = rng.normal(size=(8, 5)).astype(np.float32)
  held = np.repeat(chords, 6, axis=0)  # A chord every 6 steps: 48 steps.
  looped = np.tile(chords[:6], (8, 1))  # 6 chords, one a step, round and round.
  jittery = rng.normal(size=(48, 5)).astype(np.float32)  # A new one every step.
  sims = np.asarray(judge.similarity(jnp.stack([held, np.roll(held, 2, axis=0), looped,
                                                jittery])[:, :, None]))
  lags = np.arange(1, 13)
  assert sims[0, 0] > 0.6 and sims[0, 0] > sims[0, 5] + 0.4  # Held: alike next step.
  np.testing.assert_allclose(sims[0], sims[1], atol=0.1)  # Blind to where chords change.
  assert lags[np.argmax(sims[2])] in (6, 12) and sims[2, 5] > 0.9 and sims[2, 0] < 0.0
  assert np.all(np.abs(sims[3]) < 0.25)
  # Its feature matching pulls jittery steps toward the held ones: gradient descent on
  # the distance of their views makes neighbouring steps alike.
  real = judge.features(jnp.asarray(np.repeat(rng.normal(size=(8, 3)), 6, axis=0),
                                    jnp.float32)[None])

  def distance(latents):
    return jnp.mean(jnp.square(judge.features(latents) - real))
  latents = jnp.asarray(rng.normal(size=(1, 48, 3)), jnp.float32)
  start = float(distance(latents))
  gradient = jax.jit(jax.grad(distance))
  for _ in range(300):
    latents = latents - 3.0 * gradient(latents)
  assert float(distance(latents)) < 0.2 * start
  steps = np.asarray(latents[0])
  neighbours = np.corrcoef(steps[1:].ravel(), steps[:-1].ravel())[0, 1]
  assert neighbours > 0.2, neighbours  # From 0.0: each step its own.
  # Beside the scales and the rhythm judge, one more column.
  config = gan_tiny.get_config()
  config.model.dtype = 'float32'
  config.model.rhythm_lags = (2, 12)
  config.model.similarity_lags = (1, 12)
  judged = gan_models.discriminator_from_config(config.model, codebook_dim=3, seed=0)
  assert judged(jnp.zeros((4, 16, 3))).shape == (4, config.model.discriminator_scales + 2)


def test_a_loaded_generator_samples_from_its_saved_rhythm_bank():
  """Sampling paths take the generator's own bank: one rebuilt from the config is empty."""
  config = gan_tiny.get_config()
  config.model.rhythm_bank_steps = 64
  config.model.dtype = 'float32'
  generator = gan_models.generator_from_config(config.model, num_levels=2, codebook_size=16,
                                               codebook_dim=8, seed=0)
  envelopes = np.linspace(-1.0, 1.0, 64, dtype=np.float32)
  generator.beat_clock.envelopes.value = jnp.asarray(envelopes)
  graphdef, params = nnx.split(generator)
  loaded = loading.LoadedGenerator(config=config, vqvae=None, graphdef=graphdef, params=params,
                                   step=0, workdir='')
  np.testing.assert_array_equal(np.asarray(loaded.beat_clock.envelopes.value), envelopes)
  assert not np.any(np.asarray(gan_models.beat_clock_of(config.model).envelopes.value))
  read = np.asarray(loaded.beat_clock(jax.random.key(0), (4,), 10))[..., 0]
  assert np.isin(read, envelopes).all() and np.all(np.diff(read, axis=1) != 0)


def test_a_piece_of_up_to_half_a_stretch_keeps_one_songs_rhythm():
  """The bank's stretches are different songs: a 10 s piece must not change tempo midway."""
  block = gan_models.RHYTHM_BANK_BLOCK
  bank = gan_models.RhythmBank(4 * block)
  bank.envelopes.value = jnp.repeat(jnp.arange(4, dtype=jnp.float32), block)  # Stretch k: k.
  key = jax.random.key(0)
  read = np.asarray(bank(key, (512,), block // 2))[..., 0]
  assert np.all(read == read[:, :1])  # One stretch each...
  assert set(np.unique(read)) == {0.0, 1.0, 2.0, 3.0}  # ...drawn from all of them.
  # Longer pieces read on into the next stretch; later windows find the same start.
  long = np.asarray(bank(key, (512,), 2 * block))[..., 0]
  np.testing.assert_array_equal(long[:, :block // 2], read)
  assert np.all(long[:, block] == (read[:, 0] + 1) % 4)
  np.testing.assert_array_equal(np.asarray(bank(key, (512,), 8, first_step=300))[..., 0],
                                long[:, 300:308])


@pytest.mark.parametrize('field, value', [
    ('rhythm_bank_steps', 4), ('rhythm_bank_steps', -1),
    ('rhythm_lags', (0, 4)), ('rhythm_lags', (5, 4)), ('rhythm_lags', (2, 32)),
    ('rhythm_lags', (3,)), ('similarity_lags', (0, 4)), ('similarity_lags', (2, 32)),
    ('beat_periods', (0.5, 8.0)), ('beat_periods', (9.0, 8.0)),
    ('beat_periods', (8.0,)), ('beat_cycles', (0.0, 1.0)), ('beat_cycles', ()),
    ('noise_smoothing', 0), ('noise_smoothing', 4), ('rhythm_frames', 0)])
def test_bad_rhythm_fields_are_one_line(field, value):
  config = gan_tiny.get_config()
  config.model[field] = value
  with pytest.raises(errors.ConfigError, match=f'config.model.{field}') as error:
    gan_trainer.check_long_context(config.data.crop_steps, config.model)
  assert '\n' not in str(error.value)


def test_a_context_conditioned_generator_takes_a_context_and_none_is_an_empty_mask():
  make = lambda conditioned: gan_models.Generator(
      noise_dim=5, noise_channels=3, width=11, dilations=(1, 2), num_levels=2,
      codebook_size=13, codebook_dim=7, output='snap', rngs=nnx.Rngs(0),
      context_conditioning=conditioned)
  generator = make(True)
  global_noise, step_noise = generator.sample_noise(jax.random.key(1), 3, 10)
  latents = jax.random.normal(jax.random.key(2), (3, 10, 7))
  free = generator.features(global_noise, step_noise)
  empty_mask = generator.features(global_noise, step_noise, (latents, jnp.zeros((3, 10))))
  np.testing.assert_array_equal(free, empty_mask)  # Masked-out latents are not seen.
  given = generator.features(global_noise, step_noise, (latents, jnp.arange(10) < 4))
  assert float(jnp.abs(given - free).max()) > 1e-3
  with pytest.raises(ValueError, match='without context_conditioning'):
    make(False).features(global_noise, step_noise, (latents, jnp.ones((3, 10))))


def test_context_masks_are_prefixes_of_the_asked_share_and_length():
  masks = np.asarray(context_masking.masks(jax.random.key(0), 4000, 20, 0.5, 0.75))
  given = masks.any(axis=1)
  assert abs(given.mean() - 0.5) < 0.03
  lengths = masks.sum(axis=1)
  np.testing.assert_array_equal(masks, np.arange(20)[None] < lengths[:, None])  # Prefixes.
  assert lengths[given].min() == 1 and lengths[given].max() == 15


def test_a_linear_learning_rate_decay_reaches_zero_at_the_last_step():
  train = gan_tiny.get_config().train
  train.num_steps = 10
  params, grads = {'w': jnp.zeros(3)}, {'w': jnp.ones(3)}

  def update_sizes(optimizer, steps):
    state, sizes = optimizer.init(params), []
    for _ in range(steps):
      updates, state = optimizer.update(grads, state, params)
      sizes.append(float(jnp.abs(updates['w']).max()))
    return np.array(sizes)

  # Adam with b1 = 0 on a constant gradient: each update is the learning rate of its step.
  constant = update_sizes(gan_trainer.make_optimizers(train)[0], 11)
  np.testing.assert_allclose(constant, train.generator_learning_rate, rtol=1e-4)
  train.learning_rate_decay = 'linear'
  generator, discriminator = gan_trainer.make_optimizers(train)
  np.testing.assert_allclose(update_sizes(generator, 11),
                             train.generator_learning_rate * np.linspace(1, 0, 11), rtol=1e-4,
                             atol=1e-9)
  np.testing.assert_allclose(update_sizes(discriminator, 11)[[0, 5, 10]],
                             train.discriminator_learning_rate * np.array([1, 0.5, 0]),
                             rtol=1e-4, atol=1e-9)
  gan_trainer.check_learning_rate_decay(train)
  train.learning_rate_decay = 'cosine'
  with pytest.raises(errors.ConfigError, match='config.train.learning_rate_decay') as error:
    gan_trainer.check_learning_rate_decay(train)
  assert '\n' not in str(error.value)


@pytest.mark.parametrize('section, field, value', [
    ('model', 'context_probability', 1.5), ('model', 'context_probability', -0.1),
    ('model', 'max_context_fraction', 1.0), ('loss', 'context_moment_weight', -1.0)])
def test_bad_context_masking_fields_are_one_line(section, field, value):
  config = gan_tiny.get_config()
  config[section][field] = value
  with pytest.raises(errors.ConfigError, match=f'config.{section}.{field}') as error:
    context_masking.check_config(config.model, config.loss)
  assert '\n' not in str(error.value)


def test_context_moment_loss_is_zero_for_the_real_continuation_and_ignores_the_context():
  real = jax.random.normal(jax.random.key(0), (4, 16, 5))
  mask = jnp.arange(16)[None] < jnp.array([[4], [8], [0], [12]])
  assert float(context_masking.moment_loss(real, real, mask)) < 1e-6
  # What the context steps hold, and examples without a context, do not count.
  other = jax.random.normal(jax.random.key(1), real.shape)
  context_changed = jnp.where(mask[..., None], other, real).at[2].set(other[2])
  assert float(context_masking.moment_loss(real, context_changed, mask)) < 1e-6
  louder = real.at[:, :, 0].add(1.0)  # A shifted mean: one channel, 1 squared over 5.
  np.testing.assert_allclose(context_masking.moment_loss(real, louder, mask), 0.2,
                             rtol=1e-4)


@pytest.mark.optimized  # Hundreds of steps: running, not compiling.
def test_context_masking_teaches_the_generator_to_continue_its_context():
  # The patterns use disjoint codes, so which one a sequence follows is plain to see.
  patterns = PATTERNS
  data = synthetic_latent_data()
  config = gan_tiny.get_config()
  config.data.crop_steps = 12
  config.loss.code_usage_weight = 1.0
  config.model.context_probability = 0.75
  config.model.max_context_fraction = 0.5
  trainer = gan_trainer.GANTrainer(config, data)
  state = trainer.create_state()
  batches = trainer.train_batches(0)
  metrics = None
  for _ in range(600):
    previous = metrics
    state, metrics = trainer.jit_train_step(state, next(batches))
    # One step in flight, as the training loop keeps it: hundreds queued at once starve
    # the CPU devices' collectives past XLA's rendezvous timeout.
    jax.block_until_ready(previous)
  assert np.isfinite(float(metrics['train/loss']))
  contexts = synthetic_codes(np.random.default_rng(1), 96, 12, patterns)
  mask = np.broadcast_to(np.arange(12) < 6, (96, 12))
  latents = residual_quantizer.codes_to_latents(jnp.asarray(contexts),
                                                jnp.asarray(data.codebooks))
  context = (latents, jnp.asarray(mask))
  codes = np.asarray(trainer.jit_sample(state.generator_ema, jax.random.key(5), 96, 12,
                                        context)[1])
  pattern_of = {code: index for index, pattern in enumerate(patterns) for code in pattern}
  same = np.mean([pattern_of.get(int(code)) == pattern_of[int(row[0, 0])]
                  for row, generated in zip(contexts, codes) for code in generated[6:, 0]])
  free = np.asarray(trainer.jit_sample(state.generator_ema, jax.random.key(5), 96, 12)[1])
  free_same = np.mean([pattern_of.get(int(code)) == pattern_of[int(row[0, 0])]
                       for row, generated in zip(contexts, free) for code in generated[:, 0]])
  # Without the context a sequence follows the context's pattern by chance (about 1 in 3).
  assert same > 0.8 and free_same < 0.55, (same, free_same)
  after = trainer.evaluate(state, _NullWriter(), 600)  # The eval says so too.
  assert after['eval/continuation_context_ratio'] < 0.7, after
  # Their order too: closer to the real second halves' bigrams than i.i.d. draws are.
  assert (after['eval/continuation/bigram_js_distance']
          < after['baseline_iid/bigram_js_distance'] - 0.2), after


def source_segments(layout: dict, steps_per_segment: int = 4, frames_per_step: int = 4):
  """Segments of sources {key: segment indices}, shuffled: (codes, keys, start_frames).

  A segment's codes say where they are: level 0 is the time in codes, level 1 the key.
  """
  segment_frames = steps_per_segment * frames_per_step
  keys, starts, codes = [], [], []
  for key, indices in layout.items():
    for index in indices:
      keys.append(key)
      starts.append(index * segment_frames)
      time = index * steps_per_segment + np.arange(steps_per_segment)
      codes.append(np.stack([time, np.full_like(time, key)], axis=-1))
  order = np.random.default_rng(0).permutation(len(keys))
  return np.asarray(codes, np.int32)[order], np.asarray(keys)[order], np.asarray(starts)[order]


def test_runs_join_only_adjacent_segments_of_one_source():
  # Source 3 ends at frame 32 where source 7 starts: a new source, a new run.
  # Source 7 skips segment 5 (a gap in start_s): its run splits there.
  codes, keys, starts = source_segments({3: [0, 1], 7: [2, 3, 4, 6]})
  runs = latent_cache.runs_from_segments(codes, keys, starts, segment_frames=16)
  np.testing.assert_array_equal(runs.offsets, [0, 8, 20, 24])
  np.testing.assert_array_equal(runs.codes[:, 0], np.r_[0:8, 8:20, 24:28])
  np.testing.assert_array_equal(runs.codes[:, 1], [3] * 8 + [7] * 16)
  np.testing.assert_array_equal(latent_cache.real_crops(runs, 6)[:, :, 0],
                                [np.r_[0:6], np.r_[8:14], np.r_[14:20]])


def test_song_balanced_crops_draw_every_song_alike_and_stay_inside_it():
  # A song of 1,000 codes and four of 100, crops of 10: by time the long one gives its
  # share of the start positions (991 of 991 + 4 x 91), by song a fifth of the crops.
  lengths = [1000, 100, 100, 100, 100]
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  runs = latent_cache.CodeRuns(codes=np.repeat(np.arange(5), lengths)[:, None],
                               offsets=offsets)
  rng = np.random.default_rng(0)
  shares = {}
  for balance in ('time', 'song'):
    starts = latent_cache.sample_crop_starts(runs, 10, rng, 20_000, balance)
    song = np.searchsorted(offsets, starts, side='right') - 1
    assert np.all(starts + 10 <= offsets[song + 1])  # Inside its song.
    shares[balance] = np.bincount(song, minlength=5) / len(song)
  assert abs(shares['time'][0] - 991 / (991 + 4 * 91)) < 0.02
  np.testing.assert_allclose(shares['song'], 0.2, atol=0.02)
  # Batch s is still a function of (seed, s).
  again = [latent_cache.sample_crop_starts(runs, 10, np.random.default_rng([0, 3]), 8, 'song')
           for _ in range(2)]
  np.testing.assert_array_equal(*again)
  config = gan_tiny.get_config()
  config.data.crop_balance = 'songs'
  with pytest.raises(errors.ConfigError, match='config.data.crop_balance') as error:
    gan_trainer.check_crop_balance(config.data)
  assert '\n' not in str(error.value)


def test_a_song_balanced_rhythm_bank_shares_its_blocks_out_song_by_song():
  # Songs of 1,000, 100, 100, 100 and 5 codes, blocks of 10, a bank of 8 blocks: spread
  # over time, 6 come from the long song; song by song, 2 from each song that holds a
  # block, each inside its song, the first at its start and the last at its end.
  lengths = [1000, 100, 100, 100, 5]
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  positions = np.arange(offsets[-1], dtype=np.float32)
  envelopes = np.stack([positions, np.repeat(np.arange(5), lengths)], axis=1)  # [n, 2].
  by_time = gan_trainer.rhythm_bank_of(envelopes, 80, block=10)
  assert np.sum(by_time[::10, 1] == 0) == 6
  by_song = gan_trainer.rhythm_bank_of(envelopes, 80, block=10, run_offsets=offsets)
  blocks = by_song.reshape(8, 10, 2)
  np.testing.assert_array_equal(blocks[:, :, 1], np.repeat([0, 0, 1, 1, 2, 2, 3, 3], 10)
                                .reshape(8, 10))  # One song a block, none from the last.
  np.testing.assert_array_equal(np.diff(blocks[:, :, 0], axis=1), 1)  # Contiguous codes.
  np.testing.assert_array_equal(blocks[:, 0, 0], [0, 990, 1000, 1090, 1100, 1190, 1200, 1290])


def test_crops_longer_than_a_segment_come_from_inside_one_run():
  # Runs of 16, 12, 16, 4 and 20 codes; 4-code segments, 10-code crops.
  codes, keys, starts = source_segments({0: [0, 1, 2, 3], 1: [0, 1, 2, 5, 6, 7, 8], 2: [0],
                                         3: [2, 3, 4, 5, 6]})
  runs = latent_cache.runs_from_segments(codes, keys, starts, segment_frames=16)
  rng = np.random.default_rng(0)
  data = latent_cache.LatentData(
      train=runs, validation=runs,
      codebooks=rng.standard_normal((2, 40, 4)).astype(np.float32))
  config = gan_tiny.get_config()
  config.data.crop_steps = 10
  trainer = gan_trainer.GANTrainer(config, data)
  batches = trainer._local_batches(0)  # pylint: disable=protected-access
  crops = np.concatenate([next(batches) for _ in range(10)])
  assert crops.shape == (320, 10, 2)
  # One source, consecutive times: never across a gap or into another source.
  np.testing.assert_array_equal(crops[:, :, 1], crops[:, :1, 1] + np.zeros((1, 10), int))
  np.testing.assert_array_equal(crops[:, :, 0], crops[:, :1, 0] + np.arange(10))
  valid = {(0, t) for t in range(7)} | {(1, t) for t in [*range(3), *range(20, 27)]} | {
      (3, t) for t in range(8, 19)}  # The 4-code run is too short for any crop.
  assert {(int(c[0, 1]), int(c[0, 0])) for c in crops} == valid
  # Batch s is a function of (seed, s): resuming at step 4 draws step 4's batch.
  resumed = next(trainer._local_batches(4))  # pylint: disable=protected-access
  np.testing.assert_array_equal(resumed, crops[128:160])
  np.testing.assert_array_equal(trainer.real[:, :, 0] - trainer.real[:, :1, 0],
                                np.broadcast_to(np.arange(10), (5, 10)))
  config.data.crop_steps = 21
  with pytest.raises(errors.ConfigError,
                     match=r'config.data.crop_steps=21: .*\(the longest: 20 codes\)') as error:
    gan_trainer.GANTrainer(config, data)
  assert '\n' not in str(error.value)


def test_a_cache_of_whole_segments_is_encoded_again(tmp_path):
  source = {'vqvae_workdir': '/vqvae', 'vqvae_step': 7}
  np.savez(tmp_path / 'latents.npz', train_codes=np.zeros((2, 4, 2)),
           validation_codes=np.zeros((1, 4, 2)), codebooks=np.zeros((2, 5, 3)))
  (tmp_path / 'latents.json').write_text(json.dumps(source))  # No cache_version: 1.
  with pytest.raises(latent_cache.LatentCacheError, match='cache version 1, not 2') as error:
    latent_cache.load_latents(str(tmp_path))  # Read as it is, the old layout is refused.
  assert '\n' not in str(error.value)
  runs = latent_cache.runs_of_sequences(np.ones((2, 4, 2), np.int32))
  encoded = latent_cache.LatentData(runs, runs, np.zeros((2, 5, 3), np.float32))
  assert latent_cache.load_or_encode_latents(str(tmp_path), source, lambda: encoded) is encoded
  assert json.loads((tmp_path / 'latents.json').read_text())['cache_version'] == 2
  cached = latent_cache.load_or_encode_latents(str(tmp_path), source, lambda: 1 / 0)
  np.testing.assert_array_equal(cached.validation.offsets, [0, 4, 8])
  np.testing.assert_array_equal(cached.train.codes, runs.codes)
  np.testing.assert_array_equal(latent_cache.load_latents(str(tmp_path)).train.codes, runs.codes)


class _NullWriter:
  active = False

  def write_images(self, *args):
    pass


def tiny_config(vqvae_workdir):
  config = gan_tiny.get_config()
  config.vqvae_workdir = str(vqvae_workdir)
  for field, value in OVERRIDES.items():
    section, name = field.split('.')
    config[section][name] = value
  return config


def cli(*flags):
  return subprocess.Popen([sys.executable, '-m', 'melodygan_jax.train', *flags], cwd=REPO_ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.end_to_end
def test_kill_9_and_resume_equals_uninterrupted(trained_vqvae, trained_gan, tmp_path):
  vqvae_workdir = trained_vqvae[0]
  config = tiny_config(vqvae_workdir)
  whole_workdir, uninterrupted = trained_gan
  rows = workdir_lib.read_metrics(str(whole_workdir))
  final_eval = [row for row in rows if 'eval/latent_frechet' in row][-1]
  assert final_eval['step'] == 300 and 'baseline_iid/latent_frechet' in final_eval

  workdir = tmp_path / 'killed'
  flags = [f'--config={REPO_ROOT / "configs" / "gan_tiny.py"}', f'--workdir={workdir}',
           f'--config.vqvae_workdir={vqvae_workdir}',
           *[f'--config.{field}={value}' for field, value in OVERRIDES.items()]]
  process = cli(*flags)
  deadline = time.time() + 240
  while workdir_lib.latest_step(workdir) is None and time.time() < deadline:
    assert process.poll() is None, process.communicate()[1][-2000:]
    time.sleep(0.01)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = workdir_lib.latest_step(workdir)
  assert killed_at is not None and killed_at < 300
  process = cli(*flags)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr[-2000:]
  assert f'resuming from the checkpoint of step {killed_at}' in stderr
  trainer_state = gan_trainer.init_state(config, 3, 64, 16)[2]
  resumed, step = checkpoints.restore(str(workdir), trainer_state)
  assert step == 300
  for a, b in zip(jax.tree.leaves(parallel.host_values(resumed)), uninterrupted, strict=True):
    np.testing.assert_array_equal(a, b)
  source = json.loads((workdir / 'latents.json').read_text())
  assert source['vqvae_step'] == 240


def test_the_music_profile_hears_the_songs_beat_and_not_an_untrained_generator(
    trained_vqvae, tmp_path):
  config = tiny_config(trained_vqvae[0])
  config.train.music_profile_clips = 4
  vqvae = gan_trainer.check_config(config)
  data = latent_encoding.load_or_encode_latents(config, str(tmp_path), vqvae, parallel.make_mesh())
  trainer = gan_trainer.GANTrainer(config, data, vqvae, workdir=str(tmp_path))
  metrics = trainer.evaluate(trainer.create_state(), _NullWriter(), 0)
  real_pulse = metrics['reference/music/pulse_clarity']
  assert real_pulse > 1.5 * metrics['eval/music/pulse_clarity'], metrics
  gaps = [abs(metrics[f'eval/music/{entry}'] / metrics[f'reference/music/{entry}'] - 1)
          for entry in gan_trainer.MUSIC_PROFILE_ENTRIES]
  assert metrics['eval/music/profile_gap'] == pytest.approx(sum(gaps))
  # The pieces are heard at the style strength sampling will use, written for this step.
  calibration = style_strength.read(str(tmp_path), 0)
  assert calibration.strength == metrics['eval/music/style_strength']
  target = style_strength.change_rate(data.train.codes, data.train.lengths)
  assert calibration.training_change_rate == pytest.approx(target, abs=1e-4)
  assert (abs(calibration.generated_change_rate - target)
          <= abs(calibration.as_trained_change_rate - target))
  assert style_strength.read(str(tmp_path), 1) is None


def test_step_on_2_devices_matches_1_device(trained_vqvae, tmp_path):
  config = tiny_config(trained_vqvae[0])
  vqvae = gan_trainer.check_config(config)
  data = latent_encoding.load_or_encode_latents(config, str(tmp_path), vqvae, parallel.make_mesh())
  # One run per song and stem: its 64-frame segments (16 codes) join, songs do not.
  meta = input_pipeline.load_dataset_meta(config.data.dataset_dir)
  train_songs = sum(split == 'train' for split in meta.stats['splits'].values())
  assert len(data.train.lengths) == train_songs * len(config.data.stems)
  assert len(data.train.codes) == 16 * meta.num_records('train', config.data.stems)
  assert data.train.codes.shape[1:] == (3,) and np.all(data.train.lengths % 16 == 0)
  assert data.codebooks.shape == (3, 64, 16)
  results = []
  for devices in (jax.devices(), jax.devices()[:1]):
    trainer = gan_trainer.GANTrainer(config, data, vqvae, mesh=parallel.make_mesh(devices))
    state, metrics = trainer.jit_train_step(trainer.create_state(), next(trainer.train_batches(0)))
    results.append(parallel.host_values(state))
  sharded, one = results
  # The optimizer moments hold the all-reduced gradients: equal to float rounding.
  for name in ('generator_opt_state', 'discriminator_opt_state'):
    for a, b in zip(jax.tree.leaves(getattr(sharded, name)), jax.tree.leaves(getattr(one, name))):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  # Adam's first step moves a weight by lr * g / (|g| + eps): a gradient of ~1e-7, whose
  # rounding differs with the reduction order, moves it by a visible share of a step (up
  # to 0.08 of one seen on 2 devices). The weights agree to a tenth of one step.
  step_size = max(config.train.generator_learning_rate, config.train.discriminator_learning_rate)
  for name in ('generator', 'generator_ema', 'discriminator'):
    for a, b in zip(jax.tree.leaves(getattr(sharded, name)), jax.tree.leaves(getattr(one, name))):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=0.1 * step_size)


def test_missing_or_mismatched_vqvae_workdir_is_one_line(trained_vqvae, tmp_path):
  config = tiny_config(tmp_path / 'nothing')
  with pytest.raises(workdir_lib.WorkdirError, match='is not a vqvae workdir') as error:
    gan_trainer.check_config(config)
  assert '\n' not in str(error.value)
  gan_workdir = tmp_path / 'gan'
  gan_workdir.mkdir()
  (gan_workdir / 'config.json').write_text(json.dumps({'trainer': 'gan'}))
  with pytest.raises(workdir_lib.WorkdirError, match="holds a 'gan' run"):
    gan_trainer.check_config(tiny_config(gan_workdir))
  # Resuming a GAN whose cached codes came from another VQ-VAE.
  config = tiny_config(trained_vqvae[0])
  vqvae = gan_trainer.check_config(config)
  (tmp_path / 'run').mkdir()
  np.savez(tmp_path / 'run' / 'latents.npz', train_codes=np.zeros((1, 16, 3)),
           validation_codes=np.zeros((1, 16, 3)), codebooks=np.zeros((3, 64, 16)))
  (tmp_path / 'run' / 'latents.json').write_text(json.dumps(
      {'vqvae_workdir': '/elsewhere', 'vqvae_step': 7, 'dataset_dir': '', 'stems': []}))
  with pytest.raises(latent_cache.LatentCacheError, match='use a new --workdir'):
    latent_encoding.load_or_encode_latents(config, str(tmp_path / 'run'), vqvae,
                                       parallel.make_mesh())
