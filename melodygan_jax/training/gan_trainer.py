"""Latent GAN training: the model-specific parts the shared loop calls.

The data are code sequences of the frozen VQ-VAE, encoded once and cached
(melodygan_jax.runs.latent_cache) as runs of adjacent segments of one source.
A batch is a pure function of (seed, step): random crops inside those runs,
drawn with NumPy from that seed; with the codes in device memory
(config.data.placement) only the crops' starts go to the devices.

Random context masking (config.model.context_probability > 0, see
training/context_masking.py) teaches the same generator to continue real codes.
"""
import functools
import itertools
import math

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from melodygan_jax.audio import contract
from melodygan_jax.audio import music_structure
from melodygan_jax.audio import spectrogram_image
from melodygan_jax.audio import synthesis
from melodygan_jax.data import input_pipeline
from melodygan_jax.evaluation import latent_metrics
from melodygan_jax.models import gan as gan_models
from melodygan_jax.models import residual_quantizer
from melodygan_jax.runs import latent_cache
from melodygan_jax.runs import loading
from melodygan_jax.runs import style_strength
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import config_checks
from melodygan_jax.training import context_masking
from melodygan_jax.training import device_data
from melodygan_jax.training import latent_encoding
from melodygan_jax.training import loop
from melodygan_jax.training import metric_writer
from melodygan_jax.training import parallel


# What the training-time music profile measures (evaluate measures all of them):
# the beat and held notes a texture of the right timbre lacks.
MUSIC_PROFILE_ENTRIES = ('pulse_clarity', 'chroma_stability')
MUSIC_PROFILE_SECONDS = 10.0  # evaluate's clips; bar_repetition needs 10 s too.


@flax.struct.dataclass
class GANState:
  step: jax.Array
  generator: nnx.State
  generator_ema: nnx.State  # Exponential moving average: the generator that is sampled.
  discriminator: nnx.State
  generator_opt_state: optax.OptState
  discriminator_opt_state: optax.OptState


def check_config(config: ml_collections.ConfigDict) -> loading.LoadedVQVAE:
  """Validates a GAN config and its VQ-VAE before anything compiles.

  Fills `data.dataset_dir` and `data.stems` from the VQ-VAE when empty.

  Raises:
    ValueError subclasses, each with one line naming the field or path.
  """
  config_checks.require(bool(config.vqvae_workdir), 'config.vqvae_workdir',
                        config.vqvae_workdir, 'required: a finished configs/vqvae.py workdir')
  # Restored onto the mesh: committed to one local device they could not reach
  # the other hosts' devices.
  vqvae = loading.load_vqvae(config.vqvae_workdir, mesh=parallel.make_mesh())
  config.data.dataset_dir = config.data.dataset_dir or vqvae.config.data.dataset_dir
  config.data.stems = tuple(config.data.stems) or tuple(vqvae.config.data.stems)
  config_checks.check_data_section(config.data)
  config_checks.check_train_section(config.train)
  model = config.model
  config_checks.check_positive(model, 'config.model', (
      'noise_dim', 'noise_channels', 'generator_width', 'discriminator_width',
      'gumbel_temperature', 'snap_temperature'))
  config_checks.require(model.output in ('gumbel', 'snap'), 'config.model.output',
                        model.output, 'must be gumbel or snap')
  config_checks.require(config.loss.kind in ('non_saturating', 'hinge'), 'config.loss.kind',
                        config.loss.kind, 'must be non_saturating or hinge')
  config_checks.resolve_dtype(model, 'config.model.dtype')
  check_long_context(config.data.crop_steps, model)
  check_crop_balance(config.data)
  check_learning_rate_decay(config.train)
  check_rhythm_losses(model, config.loss)
  context_masking.check_config(model, config.loss)
  meta = input_pipeline.load_dataset_meta(config.data.dataset_dir)
  input_pipeline.check_data_config(config.data, meta)
  config_checks.require(meta.segment_frames % vqvae.time_stride == 0, 'config.vqvae_workdir',
                        config.vqvae_workdir, f'time stride {vqvae.time_stride} does not divide '
                        f'the {meta.segment_frames}-frame segments of {meta.path}')
  frames = gan_models.rhythm_frames(model)
  config_checks.require(vqvae.time_stride % frames == 0, 'config.model.rhythm_frames', frames,
                        f'must divide the VQ-VAE time stride {vqvae.time_stride}')
  return vqvae


def check_crop_balance(data: ml_collections.ConfigDict) -> None:
  """How batches draw their crops names one of the ways there are (runs from before it: 'time')."""
  balance = data.get('crop_balance', 'time')
  config_checks.require(balance in latent_cache.CROP_BALANCES, 'config.data.crop_balance',
                        balance, f'must be one of {latent_cache.CROP_BALANCES}')


def check_learning_rate_decay(train: ml_collections.ConfigDict) -> None:
  decay = train.get('learning_rate_decay', 'none')
  config_checks.require(decay in LEARNING_RATE_DECAYS, 'config.train.learning_rate_decay', decay,
                        f'must be one of {", ".join(LEARNING_RATE_DECAYS)}')


def check_rhythm_losses(model: ml_collections.ConfigDict, loss: ml_collections.ConfigDict):
  """The rhythm terms are non-negative and on only with the parts they use."""
  matching = float(loss.get('rhythm_matching_weight', 0.0))
  config_checks.require(matching >= 0 and (matching == 0 or model.get('rhythm_lags')),
                        'config.loss.rhythm_matching_weight', matching,
                        'must be >= 0, and > 0 only with config.model.rhythm_lags')
  similarity = float(loss.get('similarity_matching_weight', 0.0))
  config_checks.require(similarity >= 0 and (similarity == 0 or model.get('similarity_lags')),
                        'config.loss.similarity_matching_weight', similarity,
                        'must be >= 0, and > 0 only with config.model.similarity_lags')
  following = float(loss.get('onset_following_weight', 0.0))
  config_checks.require(following >= 0 and (following == 0 or gan_models.has_rhythm_bank(model)),
                        'config.loss.onset_following_weight', following,
                        'must be >= 0, and > 0 only with config.model.rhythm_bank_steps')


def check_long_context(crop_steps: int, model: ml_collections.ConfigDict) -> None:
  """The crop is positive and the generator's receptive field covers it.

  A generator that sees less than the crop can only make texture that repeats
  its local statistics; the discriminator's coarsest scale should see the
  crop too, or nothing judges structure at its length.
  """
  config_checks.require(crop_steps > 0, 'config.data.crop_steps', crop_steps, 'must be > 0')
  config_checks.require(int(model.discriminator_scales) >= 1,
                        'config.model.discriminator_scales', model.discriminator_scales,
                        'must be >= 1')
  periods = tuple(model.get('beat_periods', ()))
  config_checks.require(
      not periods or (len(periods) == 2 and 1 <= float(periods[0]) <= float(periods[1])),
      'config.model.beat_periods', periods, 'must be () or (min, max) codes with 1 <= min <= max')
  cycles = tuple(model.get('beat_cycles', gan_models.DEFAULT_BEAT_CYCLES))
  config_checks.require(bool(cycles) and all(float(c) > 0 for c in cycles),
                        'config.model.beat_cycles', cycles, 'must be positive numbers of beats')
  smoothing = model.get('noise_smoothing', 1)
  config_checks.require(isinstance(smoothing, int) and smoothing >= 1 and smoothing % 2 == 1,
                        'config.model.noise_smoothing', smoothing,
                        'must be an odd number of steps (1: off)')
  bank = model.get('rhythm_bank_steps', 0)
  config_checks.require(
      isinstance(bank, int) and (bank == 0 or bank >= crop_steps),
      'config.model.rhythm_bank_steps', bank,
      f'must be 0 (off) or an int >= config.data.crop_steps={crop_steps}')
  frames = model.get('rhythm_frames', 1)
  config_checks.require(isinstance(frames, int) and frames >= 1, 'config.model.rhythm_frames',
                        frames, 'must be an int >= 1 that divides the VQ-VAE time stride')
  for field in ('rhythm_lags', 'similarity_lags'):
    lags = tuple(model.get(field, ()))
    config_checks.require(
        not lags or (len(lags) == 2 and 1 <= int(lags[0]) <= int(lags[1]) < crop_steps),
        f'config.model.{field}', lags,
        f'must be () or (min, max) with 1 <= min <= max < config.data.crop_steps={crop_steps}')
  field = gan_models.receptive_field(model.generator_dilations)
  config_checks.require(
      field >= crop_steps, 'config.model.generator_dilations', tuple(model.generator_dilations),
      f'receptive field {field} steps, shorter than config.data.crop_steps={crop_steps}: '
      f'add dilations')


def check_crop_fits(crop_steps: int, runs: latent_cache.CodeRuns) -> None:
  """Some training run of adjacent segments holds a whole crop (the cache is kept)."""
  longest = latent_cache.longest_run(runs)
  config_checks.require(
      longest >= crop_steps, 'config.data.crop_steps', crop_steps,
      f'longer than every run of adjacent segments of one source in the training codes '
      f'(the longest: {longest} codes): use a shorter crop or longer songs')


def make_models(config, num_levels: int, codebook_size: int, codebook_dim: int):
  generator = gan_models.generator_from_config(
      config.model, num_levels=num_levels, codebook_size=codebook_size,
      codebook_dim=codebook_dim, seed=config.seed)
  discriminator = gan_models.discriminator_from_config(
      config.model, codebook_dim=codebook_dim, seed=config.seed + 1,
      onset_following=onset_following_weight(config) > 0)
  return generator, discriminator


def onset_following_weight(config) -> float:
  return float(config.loss.get('onset_following_weight', 0.0))  # Runs from before it: 0.


LEARNING_RATE_DECAYS = ('none', 'linear')


def make_optimizers(train):
  """Adam for each network. `train.learning_rate_decay='linear'` takes both rates to zero over
  `train.num_steps`: when the steps are fixed in advance (create's budget), a schedule that
  ends at zero serves best (Li, Yumer and Ramanan 2020, "Budgeted Training"); runs from
  before it, and 'none', keep the rates constant."""
  adam = functools.partial(optax.adam, b1=train.adam_b1, b2=train.adam_b2)
  linear = train.get('learning_rate_decay', 'none') == 'linear'

  def rate(peak: float):
    return optax.linear_schedule(peak, 0.0, train.num_steps) if linear else peak

  return (adam(rate(train.generator_learning_rate)),
          adam(rate(train.discriminator_learning_rate)))


def init_state(config, num_levels: int, codebook_size: int, codebook_dim: int,
               rhythm_bank: np.ndarray | None = None):
  """Returns (generator graphdef, discriminator graphdef, GANState, optimizers).

  `rhythm_bank`: the onset envelopes a generator with a RhythmBank draws from.
  """
  config_checks.resolve_dtype(config.model, 'config.model.dtype')
  generator, discriminator = make_models(config, num_levels, codebook_size, codebook_dim)
  if rhythm_bank is not None:
    envelopes = generator.beat_clock.envelopes
    envelopes.value = jnp.asarray(rhythm_bank, jnp.float32).reshape(envelopes.value.shape)
  gen_graphdef, gen_params = nnx.split(generator)
  disc_graphdef, disc_params = nnx.split(discriminator)
  gen_optimizer, disc_optimizer = make_optimizers(config.train)
  state = GANState(
      step=jnp.zeros((), jnp.int32), generator=gen_params,
      generator_ema=jax.tree.map(jnp.copy, gen_params), discriminator=disc_params,
      generator_opt_state=gen_optimizer.init(gen_params),
      discriminator_opt_state=disc_optimizer.init(disc_params))
  return gen_graphdef, disc_graphdef, state, (gen_optimizer, disc_optimizer)


def sample_codes(gen_graphdef, codebooks, temperature, params, rng, batch: int, steps: int,
                 context=None, rhythm=None, global_noise_scale=1.0):
  """(latents, codes [batch, steps, levels], code_probs) from a generator's params (and a
  context: (latents, mask), see gan_models.Generator; onset envelopes to follow; a style
  strength)."""
  return gan_models.sample_codes(nnx.merge(gen_graphdef, params), codebooks, temperature, rng,
                                 batch, steps, context, rhythm, global_noise_scale)


def onset_envelopes(vqvae: loading.LoadedVQVAE, codes: np.ndarray, stem: str,
                    frames: int = 1, window: int = 256) -> np.ndarray:
  """[n, levels] codes of one sequence -> [n, frames] onset strength of each code, decoded.

  librosa's onset strength (the mean over bands of the rectified rise in dB
  from one frame to the next) of the VQ-VAE's decoding, `frames` values a
  code: each of its frames (the VQ-VAE's time stride), or means of groups of
  them (1: the code's mean); decoded `window` codes at a time.
  """
  if vqvae.time_stride % frames:
    raise ValueError(f'rhythm frames {frames}: must divide the VQ-VAE time stride '
                     f'{vqvae.time_stride}')
  total = len(codes)
  padded = np.concatenate([codes, np.zeros((-total % window,) + codes.shape[1:], codes.dtype)])
  windows = padded.reshape(-1, window, codes.shape[1])
  envelopes = []
  for start in range(0, len(windows), 16):
    log_mel = vqvae.codes_to_log_mel(windows[start:start + 16], stem)
    power_db = contract.DB_PER_LOG_MAGNITUDE * log_mel
    flux = np.maximum(np.diff(power_db, axis=1, prepend=power_db[:, :1]), 0.0).mean(axis=-1)
    envelopes.append(flux.reshape(len(flux) * window, frames, -1).mean(axis=-1))
  return np.concatenate(envelopes)[:total].astype(np.float32)


def rhythm_bank_of(envelopes: np.ndarray, bank_steps: int,
                   block: int = gan_models.RHYTHM_BANK_BLOCK,
                   run_offsets: np.ndarray | None = None) -> np.ndarray:
  """`bank_steps` codes of the training envelopes [n, frames]: blocks spread evenly over
  them (tiled when there are fewer).

  `run_offsets` (CodeRuns.offsets): the blocks are shared out song by song instead, as
  `data.crop_balance='song'` draws the crops, each song's spread evenly over it; songs
  shorter than a block give none (all of them do when no song holds one).
  """
  if len(envelopes) > bank_steps:
    count = bank_steps // block
    starts = np.linspace(0, len(envelopes) - block, count).astype(np.int64)
    if run_offsets is not None:
      offsets = np.asarray(run_offsets, np.int64)
      lengths = np.diff(offsets)
      songs = np.flatnonzero(lengths >= block)
      if len(songs):
        song = songs[np.arange(count) * len(songs) // count]  # Sorted: each song's blocks adjoin.
        first = np.searchsorted(song, song)  # The block's index among its song's blocks...
        index, per_song = np.arange(count) - first, np.bincount(song)[song]
        room = lengths[song] - block  # ...and where it starts: evenly from 0 to the end.
        starts = offsets[song] + np.round(index * room / np.maximum(per_song - 1, 1)).astype(
            np.int64)
    envelopes = envelopes[(starts[:, None] + np.arange(block)).reshape(-1)]
  return envelopes[np.arange(bank_steps) % len(envelopes)]


def train_step(gen_graphdef, disc_graphdef, optimizers, config, codebooks, code_histogram,
               state: GANState, real_codes, base_rng) -> tuple[GANState, dict]:
  """One discriminator update, then one generator update against the new one.

  `real_codes` [batch, steps, levels]; `codebooks` [levels, codebook_size, dim].
  """
  gen_optimizer, disc_optimizer = optimizers
  real_rhythm = None
  if isinstance(real_codes, tuple):  # A generator with a RhythmBank: the crops' envelopes.
    real_codes, real_rhythm = real_codes
  d_rng, g_rng = jax.random.split(jax.random.fold_in(base_rng, state.step))
  batch, steps, _ = real_codes.shape
  real = residual_quantizer.codes_to_latents(real_codes, codebooks)
  temperature = gan_models.generator_temperature(config.model)
  noise_scale = config.loss.instance_noise * jnp.std(real)
  mask_rng = jax.random.fold_in(d_rng, 1)  # Folded, so the other draws stay as they were.
  d_rng, real_noise_rng, fake_noise_rng, g_noise_rng = jax.random.split(d_rng, 4)
  noisy = lambda x, rng: x + noise_scale * jax.random.normal(rng, x.shape)
  mask = context = None
  if gan_models.is_context_conditioned(config.model):
    mask = context_masking.masks(mask_rng, batch, steps,
                                 float(config.model.context_probability),
                                 float(config.model.max_context_fraction))
    context = (real, mask)
  sample = functools.partial(sample_codes, gen_graphdef, codebooks, temperature)
  fake = context_masking.with_context(real, jax.lax.stop_gradient(
      sample(state.generator, d_rng, batch, steps, context, real_rhythm)[0]), mask)

  def with_mask(latents):
    """The latents and what the discriminator judges them with: the context mask, the
    onset envelope the generator followed (the real crops' own)."""
    channels = [latents]
    if mask is not None:
      channels.append(mask[..., None].astype(latents.dtype))
    if real_rhythm is not None:
      channels.append(real_rhythm.astype(latents.dtype))
    return jnp.concatenate(channels, axis=-1) if len(channels) > 1 else latents

  def judge(disc_params, latents):
    """Logits [batch, scales] of latents (and, with context masking, the mask)."""
    return nnx.merge(disc_graphdef, disc_params)(with_mask(latents))

  rhythm_weight = float(config.loss.get('rhythm_matching_weight', 0.0))
  similarity_weight = float(config.loss.get('similarity_matching_weight', 0.0))

  def feature_matching(judge_name, disc_params, fake, real):
    """Feature matching (Salimans et al. 2016) on a judge's view (the rhythm judge's
    autocorrelations, the similarity judge's self-similarities): the batch means of
    generated and real crops, squared distance."""
    judge_of = getattr(nnx.merge(disc_graphdef, disc_params), judge_name)
    real_mean = jnp.mean(jax.lax.stop_gradient(judge_of.features(with_mask(real))), axis=0)
    return jnp.mean(jnp.square(jnp.mean(judge_of.features(with_mask(fake)), axis=0)
                               - real_mean))

  following_weight = onset_following_weight(config)

  def onset_error(disc_params, latents):
    """Mean squared distance of the onsets the regressor reads in `latents` to the
    envelope the generator followed (standardized: 1.0 is knowing nothing)."""
    onsets = nnx.merge(disc_graphdef, disc_params).onsets
    return jnp.mean(jnp.square(onsets(latents) - real_rhythm))

  def d_loss_fn(disc_params):
    real_logits, real_grads = logits_and_input_grads(
        functools.partial(judge, disc_params), noisy(real, real_noise_rng))
    fake_logits = judge(disc_params, noisy(fake, fake_noise_rng))
    d_loss, _ = adversarial_losses(config.loss.kind, real_logits, fake_logits)
    r1 = jnp.mean(jnp.sum(jnp.square(real_grads), axis=(1, 2)))
    # The regressor's own parameters: its weight only scales their gradient, which Adam undoes.
    regression = onset_error(disc_params, real) if following_weight else jnp.zeros(())
    return (d_loss + 0.5 * config.loss.r1_gamma * r1 + regression,
            (d_loss, r1, real_logits, fake_logits, regression))

  (_, (d_loss, r1, real_logits, fake_logits, onset_regression)), d_grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(state.discriminator)
  d_updates, disc_opt_state = disc_optimizer.update(
      d_grads, state.discriminator_opt_state, state.discriminator)
  disc_params = optax.apply_updates(state.discriminator, d_updates)

  def g_loss_fn(gen_params):
    fake, codes, code_probs = sample(gen_params, g_rng, batch, steps, context, real_rhythm)
    moments = (jnp.zeros(()) if mask is None else
               context_masking.moment_loss(real, fake, mask))
    fake = context_masking.with_context(real, fake, mask)
    fake_logits = judge(disc_params, noisy(fake, g_noise_rng))
    _, adversarial = adversarial_losses(config.loss.kind, real_logits, fake_logits)
    usage = code_usage_loss(codes, code_probs, code_histogram)
    matching = (feature_matching('rhythm', disc_params, fake, real) if rhythm_weight
                else jnp.zeros(()))
    similarity = (feature_matching('similarity', disc_params, fake, real)
                  if similarity_weight else jnp.zeros(()))
    following = onset_error(disc_params, fake) if following_weight else jnp.zeros(())
    total = (adversarial + config.loss.code_usage_weight * usage
             + float(config.loss.get('context_moment_weight', 0.0)) * moments
             + rhythm_weight * matching + similarity_weight * similarity
             + following_weight * following)
    return total, (adversarial, usage, codes, moments, matching, similarity, following)

  (_, (g_loss, usage_loss, fake_codes, moment_loss, matching_loss, similarity_loss,
       following_loss)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.generator)
  g_updates, gen_opt_state = gen_optimizer.update(
      g_grads, state.generator_opt_state, state.generator)
  gen_params = optax.apply_updates(state.generator, g_updates)
  ema = optax.incremental_update(gen_params, state.generator_ema,
                                 1.0 - config.train.generator_ema_decay)
  codebook_size = codebooks.shape[1]
  used = jnp.mean(jnp.sum(jax.nn.one_hot(fake_codes, codebook_size), axis=(0, 1)) > 0)
  metrics = {
      'train/loss': d_loss + g_loss, 'train/d_loss': d_loss, 'train/g_loss': g_loss,
      'train/r1': r1, 'train/code_usage_kl': usage_loss, 'train/context_moments': moment_loss,
      'train/rhythm_matching': matching_loss, 'train/similarity_matching': similarity_loss,
      # The onsets read in real crops and in generated ones, against the envelope followed.
      'train/onset_regression': onset_regression, 'train/onset_following': following_loss,
      'train/d_accuracy': 0.5 * (jnp.mean(real_logits > 0) + jnp.mean(fake_logits < 0)),
      'train/d_grad_norm': optax.tree.norm(d_grads), 'train/g_grad_norm': optax.tree.norm(g_grads),
      'train/fake_codes_used': used,  # Share of each level's codes, mean over levels.
  }
  new_state = state.replace(step=state.step + 1, generator=gen_params, generator_ema=ema,
                            discriminator=disc_params, generator_opt_state=gen_opt_state,
                            discriminator_opt_state=disc_opt_state)
  return new_state, metrics


def train_step_on_device_crops(step_fn, steps: int, codebooks, code_histogram,
                               state: GANState, starts, tables, base_rng):
  """`step_fn` (a train_step) on crops cut here from the codes (and envelopes) in
  device memory; `starts` [batch] index the tables' rows."""
  codes_table, rhythm_table = tables
  real = device_data.crop_flat(codes_table, starts, steps)
  if rhythm_table is not None:
    real = (real, device_data.crop_flat(rhythm_table, starts, steps))
  return step_fn(codebooks, code_histogram, state, real, base_rng)


class GANTrainer:
  """Builds the GAN, its state, batches and compiled steps for one config.

  Args:
    config: a configs/gan.py config.
    data: the code sequences to learn.
    vqvae: the VQ-VAE that decodes samples into spectrogram images (optional).
    mesh: default: all devices.
    rhythm: for a generator with a RhythmBank, the onset strength of each training
      code, [len(data.train.codes), rhythm frames]; default: decoded with `vqvae`
      (onset_envelopes).
  """

  def __init__(self, config: ml_collections.ConfigDict, data: latent_cache.LatentData,
               vqvae: loading.LoadedVQVAE | None = None, mesh=None,
               rhythm: np.ndarray | None = None, workdir: str | None = None):
    self.config = config
    self.workdir = workdir  # Where the music profile's style strength is written.
    self.data = data
    self.mesh = mesh or parallel.make_mesh()
    self.steps = config.data.crop_steps
    check_crop_fits(self.steps, data.train)
    self.vqvae = vqvae
    replicated = parallel.replicated(self.mesh)
    if vqvae is not None:
      vqvae.replicate_on(self.mesh)
    self.codebooks = parallel.replicate(np.asarray(data.codebooks), self.mesh)
    histogram = latent_metrics.code_histogram(data.train.codes, data.codebooks.shape[1])
    self.code_histogram = parallel.replicate(np.asarray(histogram, np.float32), self.mesh)
    self.rhythm = None  # Standardized onset envelope of every training code, [n, frames].
    bank = None
    if gan_models.has_rhythm_bank(config.model):
      frames = gan_models.rhythm_frames(config.model)
      if rhythm is None and vqvae is not None:
        rhythm = onset_envelopes(vqvae, data.train.codes, config.data.stems[0], frames)
      if rhythm is None:  # Timing only (calibration): a step costs the same whatever they are.
        rhythm = np.zeros((len(data.train.codes), frames), np.float32)
      rhythm = np.asarray(rhythm).reshape(len(data.train.codes), frames)
      self.rhythm = ((rhythm - rhythm.mean()) / (rhythm.std() + 1e-6)).astype(np.float32)
      bank = rhythm_bank_of(self.rhythm, int(config.model.rhythm_bank_steps),
                            run_offsets=(data.train.offsets if config.data.get(
                                'crop_balance', 'time') == 'song' else None))
    self.gen_graphdef, self.disc_graphdef, self._initial_state, optimizers = init_state(
        config, *data.codebooks.shape, rhythm_bank=bank)
    self.base_rng = jax.random.key(config.seed)
    step = functools.partial(train_step, self.gen_graphdef, self.disc_graphdef, optimizers,
                             config)
    # The training codes (and envelopes) on the devices when they fit: a step
    # then gets only where its crops start (training/device_data.py).
    self.device_tables = None
    table_bytes = data.train.codes.nbytes + (0 if self.rhythm is None else self.rhythm.nbytes)
    if device_data.on_device(config.data.get('placement', 'auto'), table_bytes,
                             "the latent cache's training codes", self.mesh):
      self.device_tables = (
          device_data.put_rows(np.asarray(data.train.codes, np.int32), self.mesh),
          None if self.rhythm is None else device_data.put_rows(self.rhythm, self.mesh))
      step = functools.partial(train_step_on_device_crops, step, self.steps)
    self._jit_train_step = jax.jit(step, donate_argnums=2, out_shardings=replicated)
    self.jit_sample = jax.jit(functools.partial(
        sample_codes, self.gen_graphdef, self.codebooks,
        gan_models.generator_temperature(config.model)),
        static_argnums=(2, 3), out_shardings=replicated)
    # Held-out crops, from the same kind of runs; the training ones when no
    # validation run holds a crop.
    self.real = latent_cache.real_crops(data.validation, self.steps)
    if not len(self.real):
      self.real = latent_cache.real_crops(data.train, self.steps)
    # One row, so copies are found along whole runs, not cut at segment ends
    # (the few windows across the join of two runs count as training too).
    self._training_sequence = data.train.codes[None]
    self.baselines = self._baseline_metrics()
    self._music_reference = None  # The held-out crops' music profile, made at the first eval.

  def jit_train_step(self, state: GANState, batch) -> tuple[GANState, dict]:
    """`batch`: train_batches' item (crops, or where they start in the device tables)."""
    if self.device_tables is not None:
      return self._jit_train_step(self.codebooks, self.code_histogram, state, batch,
                                  self.device_tables, self.base_rng)
    return self._jit_train_step(self.codebooks, self.code_histogram, state, batch,
                                self.base_rng)

  def create_state(self) -> GANState:
    return parallel.replicate(self._initial_state, self.mesh)

  def fresh_start(self, state: GANState) -> GANState:
    return state

  def train_batches(self, start_step: int):
    """Random crops of the training runs (or, with the codes on the devices, where
    they start); batch s depends only on (seed, s)."""
    if self.device_tables is not None:
      return parallel.prefetch_to_mesh(self._local_starts(start_step), self.mesh)
    return parallel.prefetch_to_mesh(self._local_batches(start_step), self.mesh)

  def _local_starts(self, start_step: int):
    """This host's rows of each global batch: where its crops start in data.train.codes."""
    global_batch = self.config.train.batch_size
    local = parallel.local_batch_size(global_batch)
    first = jax.process_index() * local
    for step in itertools.count(start_step):
      # Every host draws the whole global batch from (seed, step) and keeps its rows.
      rng = np.random.default_rng([self.config.seed, step])
      starts = latent_cache.sample_crop_starts(self.data.train, self.steps, rng, global_batch,
                                               self.config.data.get('crop_balance', 'time'))
      yield starts[first:first + local].astype(np.int32)

  def _local_batches(self, start_step: int):
    """This host's rows of each global batch of crops, [local_batch, steps, levels] codes."""
    for starts in self._local_starts(start_step):
      index = starts[:, None] + np.arange(self.steps)
      if self.rhythm is None:
        yield self.data.train.codes[index]
      else:
        yield self.data.train.codes[index], self.rhythm[index]

  def generated_codes(self, state: GANState, num_samples: int, seed: int = 0) -> np.ndarray:
    codes = self.jit_sample(state.generator_ema, jax.random.key(seed), num_samples,
                            self.steps)[1]
    return np.asarray(jax.device_get(codes))

  def _baseline_metrics(self) -> dict:
    """The two baselines, and the floor: real training crops against held-out ones."""
    metrics = {}
    shape = (self.config.train.num_eval_samples, self.steps, self.data.codebooks.shape[0])
    training = latent_cache.real_crops(self.data.train, self.steps)
    picks = np.random.default_rng(1).choice(len(training), size=min(shape[0], len(training)),
                                            replace=False)
    floor = latent_metrics.compare(training[picks], self.real, self._training_sequence,
                                   self.data.codebooks)
    for name in ('code_js_distance', 'bigram_js_distance', 'latent_frechet'):
      metrics[f'floor/{name}'] = floor[name]
    count = min(self.config.train.num_eval_samples, len(self.real))
    if gan_models.is_context_conditioned(self.config.model) and count >= 2:
      # The held-out crops' own rests: how close a real continuation is to its context.
      given = gan_models.longest_context(self.config.model.max_context_fraction, self.steps)
      metrics['floor/continuation_context_ratio'] = latent_metrics.context_distance_ratio(
          self.real[:count, :given], self.real[:count, given:], self.data.codebooks)
    for kind in ('uniform', 'iid'):
      codes = latent_metrics.baseline_codes(kind, self.data.train.codes,
                                            self.data.codebooks.shape[1], shape, seed=1)
      for name, value in latent_metrics.compare(codes, self.real, self._training_sequence,
                                                self.data.codebooks).items():
        metrics[f'baseline_{kind}/{name}'] = value
    return metrics

  def evaluate(self, state: GANState, writer: metric_writer.MetricWriter, step: int) -> dict:
    """Generated codes against held-out real ones, beside the two baselines."""
    codes = self.generated_codes(state, self.config.train.num_eval_samples)
    metrics = {f'eval/{name}': value for name, value in latent_metrics.compare(
        codes, self.real, self._training_sequence, self.data.codebooks).items()}
    metrics.update(self.baselines)
    if gan_models.is_context_conditioned(self.config.model):
      metrics.update(self._continuation_metrics(state))
    if self.vqvae is not None:
      self._write_summaries(writer, step, codes)
      if int(self.config.train.get('music_profile_clips', 0)):
        metrics.update(self._music_metrics(state, step))
    return metrics

  def _music_metrics(self, state: GANState, step: int) -> dict:
    """Pulse and harmony of generated pieces, heard as evaluate hears them.

    `train.music_profile_clips` pieces of `MUSIC_PROFILE_SECONDS` at the style
    strength sampling will use (measured here, runs/style_strength.py, and
    written to the workdir for this step), decoded and inverted with
    Griffin-Lim, analysed by audio/music_structure.py; beside them the same
    number of held-out real crops through the same codec and inversion
    (`reference/music/...`), so the codec's own losses cancel. `profile_gap` is
    the sum of the two relative gaps (pulse clarity, chroma stability): what a
    sweep of the CPU preset minimizes (configs/gan_cpu.py).
    """
    count = int(self.config.train.music_profile_clips)
    runs = self.data.validation if len(self.data.validation.lengths) else self.data.train
    # Shorter pieces where no held-out run of codes is that long (short songs).
    steps = min(math.ceil(MUSIC_PROFILE_SECONDS * music_structure.FRAMES_PER_SECOND
                          / self.vqvae.time_stride), latent_cache.longest_run(runs))
    if self._music_reference is None:
      real = latent_cache.real_crops(runs, steps)
      picks = np.random.default_rng(2).permutation(len(real))[:count]
      self._music_reference = self._music_profile(real[picks])
    calibration = style_strength.calibrate(
        functools.partial(self._crop_change_rate, state), self.data.train, step)
    if self.workdir is not None:
      style_strength.write(self.workdir, calibration)
    codes = np.asarray(jax.device_get(self.jit_sample(
        state.generator_ema, jax.random.key(2), count, steps, None, None,
        jnp.float32(calibration.strength))[1]))
    generated = self._music_profile(codes)
    metrics = {'eval/music/style_strength': calibration.strength,
               'eval/music/as_trained_change_rate': calibration.as_trained_change_rate}
    gap = 0.0
    for entry in MUSIC_PROFILE_ENTRIES:
      real_value, value = self._music_reference[entry], generated[entry]
      metrics[f'eval/music/{entry}'] = value
      metrics[f'reference/music/{entry}'] = real_value
      gap += abs(value - real_value) / max(abs(real_value), 1e-3)
    metrics['eval/music/profile_gap'] = gap
    return metrics

  def _crop_change_rate(self, state: GANState, strength: float) -> float:
    """style_strength.generated_change_rate's pieces, from the EMA generator in training."""
    codes = self.jit_sample(state.generator_ema, jax.random.key(style_strength.CALIBRATION_SEED),
                            style_strength.CALIBRATION_CROPS,
                            style_strength.CALIBRATION_WINDOWS * self.steps, None, None,
                            jnp.float32(strength))[1]
    return style_strength.change_rate(np.asarray(jax.device_get(codes)))

  def _music_profile(self, codes: np.ndarray) -> dict:
    """Mean of each MUSIC_PROFILE_ENTRIES over the decoded, inverted code sequences."""
    values = []
    for start in range(0, len(codes), 8):  # Decoded and inverted a few at a time.
      log_mel = self.vqvae.codes_to_log_mel(codes[start:start + 8], self.config.data.stems[0])
      values.append(music_structure.profiles(synthesis.log_mel_to_audio(log_mel)))
    values = np.concatenate(values)
    columns = [music_structure.PROFILE_ENTRIES.index(entry) for entry in MUSIC_PROFILE_ENTRIES]
    return {entry: float(np.nanmean(values[:, column]))
            for entry, column in zip(MUSIC_PROFILE_ENTRIES, columns)}

  def _continuation_metrics(self, state: GANState) -> dict:
    """Held-out crops' first parts continued: like real music, and like what they continue?

    eval/continuation/* compares the continuations with the crops' real second
    parts; continuation_context_ratio (latent_metrics.context_distance_ratio)
    says how much closer each is to its own context than to the others' (the
    real second parts' ratio, floor/..., is among the baselines).
    """
    count = min(self.config.train.num_eval_samples, len(self.real))
    real = self.real[:count]
    given = gan_models.longest_context(self.config.model.max_context_fraction, self.steps)
    mask = np.broadcast_to(np.arange(self.steps) < given, (count, self.steps))
    # From the host's codebooks: an eager op on the mesh's copy would span other hosts.
    latents = residual_quantizer.codes_to_latents(jnp.asarray(real),
                                                  jnp.asarray(self.data.codebooks))
    context = (latents, jnp.asarray(mask))
    codes = np.asarray(jax.device_get(self.jit_sample(
        state.generator_ema, jax.random.key(1), count, self.steps, context)[1]))[:, given:]
    metrics = {f'eval/continuation/{name}': value for name, value in
               latent_metrics.distribution_metrics(codes, real[:, given:],
                                                   self.data.codebooks).items()}
    if count >= 2:
      metrics['eval/continuation_context_ratio'] = latent_metrics.context_distance_ratio(
          real[:, :given], codes, self.data.codebooks)
    return metrics

  def _write_summaries(self, writer, step, codes) -> None:
    """A few generated samples, decoded: spectrograms and audio.

    Every process decodes (a collective on the VQ-VAE's mesh); only process 0 writes.
    """
    count = min(self.config.train.num_summary_examples, len(codes))
    log_mels = self.vqvae.codes_to_log_mel(codes[:count], self.config.data.stems[0])
    if not writer.active:
      return
    writer.write_images(step, {
        f'generated/{index}': spectrogram_image.spectrogram_image(
            log_mel, float(log_mel.min()), float(log_mel.max()))
        for index, log_mel in enumerate(log_mels)})
    writer.write_audio(step, {f'generated/{index}': clip for index, clip in
                              enumerate(synthesis.log_mel_to_audio(log_mels))},
                       contract.SAMPLE_RATE_HZ)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       checked: loading.LoadedVQVAE | None = None, eval_callback=None):
  """Trains; `checked` is check_config's result when the caller already ran it.

  `eval_callback(step, metrics)` sees each evaluation (see loop.train_and_evaluate).
  """
  vqvae = checked or check_config(config)
  workdir_lib.write_normalization(workdir, vqvae.normalization)
  workdir_lib.copy_vqvae(vqvae, workdir)
  mesh = parallel.make_mesh()
  data = latent_encoding.load_or_encode_latents(config, workdir, vqvae, mesh)
  trainer = GANTrainer(config, data, vqvae, mesh, workdir=workdir)
  return loop.train_and_evaluate(trainer, config.train, workdir, eval_callback)


# The latent GAN's losses: adversarial, code usage, and the R1 penalty's gradients.


def adversarial_losses(kind: str, real_logits, fake_logits):
  """(discriminator loss, generator loss) of one batch."""
  if kind == 'hinge':
    d_loss = jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
    return d_loss, -jnp.mean(fake_logits)
  d_loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
  return d_loss, jnp.mean(jax.nn.softplus(-fake_logits))


def code_usage_loss(codes: jax.Array, code_probs: jax.Array,
                    target_histogram: jax.Array) -> jax.Array:
  """KL(training code frequencies || this batch's generated ones), mean over levels.

  The discriminator sees latent vectors, and nearby codes look alike to it;
  this term keeps the generator using every code of every level about as often
  as the data. The value is that of the hard (chosen) codes; its gradient
  flows through the soft code probabilities (straight-through).

  Args:
    codes: [batch, steps, levels].
    code_probs: [batch, steps, levels, codebook_size].
    target_histogram: [levels, codebook_size], rows summing to 1.
  """
  num_levels, size = code_probs.shape[-2:]
  hard = jnp.mean(jax.nn.one_hot(codes.reshape(-1, num_levels), size, dtype=jnp.float32),
                  axis=0)
  soft = jnp.mean(code_probs.reshape(-1, num_levels, size), axis=0)
  used = hard + soft - jax.lax.stop_gradient(soft)
  smoothing = 0.5 * num_levels / codes.size  # Half a count: an unused code costs, not infinity.
  return jnp.mean(jnp.sum(target_histogram * (jnp.log(target_histogram + 1e-8)
                                              - jnp.log(used + smoothing)), axis=-1))


def logits_and_input_grads(discriminator, real):
  """D(real) [batch, scales] and d(sum of D(real))/dreal [batch, steps, dim], for the R1 penalty.

  As in StyleGAN's R1, this is the gradient of the summed logits. The
  discriminator mixes examples through its batch-std feature, so example i's
  row also holds the small terms of the other examples' logits through that
  feature; without it, the row would be dD(real_i)/dreal_i exactly.
  """
  logits, vjp = jax.vjp(discriminator, real)
  # [batch, scales]: the gradient of the mean over scales, as the losses average them.
  (grads,) = vjp(jnp.ones_like(logits) / logits.shape[-1])
  return logits, grads
