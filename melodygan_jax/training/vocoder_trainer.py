"""Vocoder training: the model-specific parts the shared loop calls.

Vocos' recipe (Siuzdak 2023), at the audio contract's STFT: per crop of
cleaned audio, its log-mel is computed in the step (inversion.log_mel, the
contract's features in JAX); the generator predicts the STFT and the inverse
STFT gives the waveform. With the CPU default's priors, the generator hears
the mel's NNLS magnitude and the phase fast Griffin-Lim finds for it
(computed in the step, outside the gradient) and predicts corrections of both.
Generator loss = mel_weight x L1 of the output's log-mel against the input's,
+ stft_weight x Parallel WaveGAN's multi-resolution STFT loss, + magnitude_weight
x L1 of the head's log-magnitude against the crop's own STFT (APNet's
amplitude loss), plus, from `loss.adversarial_start_step` on, the hinge
losses and feature-matching losses of a multi-period and a multi-resolution
spectrogram discriminator (the latter weighted by `loss.resolution_weight`);
the discriminators are trained in the same step. With
`loss.refinement_iterations`, the mel, MR-STFT and adversarial losses hear the
output after that many mel-refinement steps, what inference plays (the
gradient goes through them). AdamW with betas (0.8, 0.9), warm-up and cosine
decay for both.

Fine-tuning on the codec (`config.vqvae_workdir`): the generator hears each
crop's log-mel after a round trip through that VQ-VAE, so it learns to turn
what sampling will feed it into the real audio; the losses still compare
with the real crop. `config.init_vocoder_workdir` starts a run from
another vocoder run's generator and discriminators (fresh optimizers), so a
fine-tuning run continues a trained vocoder.

Evaluation: held-out songs (the data set's validation split), the vocoder and
fast Griffin-Lim (32 iterations) on the same mels (the codec's with
`vqvae_workdir`): multi-resolution STFT distance and mel distance to the
original, and their ratios.
"""
import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from melodygan_jax import atomic_files
from melodygan_jax.audio import contract
from melodygan_jax.audio import inversion
from melodygan_jax.audio import neural_vocoder
from melodygan_jax.audio import synthesis
from melodygan_jax.data import audio_crops
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import normalization
from melodygan_jax.data import records
from melodygan_jax.evaluation import reconstruction
from melodygan_jax.models import vocoder as vocoder_models
from melodygan_jax.models import waveform_discriminators
from melodygan_jax.runs import checkpoints
from melodygan_jax.runs import loading
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import config_checks
from melodygan_jax.training import device_data
from melodygan_jax.training import loop
from melodygan_jax.training import metric_writer
from melodygan_jax.training import parallel


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  generator: nnx.State
  opt_state: optax.OptState
  discriminators: nnx.State
  discriminator_opt_state: optax.OptState


def make_optimizer(train_config, learning_rate: float) -> tuple[optax.GradientTransformation,
                                                                optax.Schedule]:
  """AdamW (Vocos' betas 0.8, 0.9) with warm-up and cosine decay, after norm clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=learning_rate, warmup_steps=train_config.warmup_steps,
      decay_steps=train_config.num_steps,
      end_value=learning_rate * train_config.end_learning_rate_fraction)
  optimizer = optax.chain(
      optax.clip_by_global_norm(train_config.grad_clip_norm),
      optax.adamw(schedule, b1=0.8, b2=0.9, weight_decay=train_config.weight_decay))
  return optimizer, schedule


@dataclasses.dataclass(frozen=True)
class CheckedConfig:
  """What check_config read: the training split's audio, and the codec to fine-tune on."""
  train_audio: audio_crops.SplitAudio
  vqvae: loading.LoadedVQVAE | None = None


def check_config(config: ml_collections.ConfigDict) -> CheckedConfig:
  """Validates a vocoder config, its data set (and codec) before anything compiles.

  Raises:
    errors.ConfigError, input_pipeline.DatasetError or
    audio_crops.AudioCropsError: one line each.
  """
  config_checks.check_train_section(config.train)
  data = config.data
  config_checks.require(bool(data.dataset_dir), 'config.data.dataset_dir', data.dataset_dir,
                        'required: a data_prep.prepare --output_dir')
  config_checks.require(
      isinstance(data.crop_samples, int) and data.crop_samples >= 4 * contract.HOP_LENGTH
      and data.crop_samples % contract.HOP_LENGTH == 0, 'config.data.crop_samples',
      data.crop_samples, f'must be a multiple of the hop {contract.HOP_LENGTH}, at least '
      f'{4 * contract.HOP_LENGTH}')
  config_checks.check_positive(data, 'config.data', ('num_validation_clips',
                                                     'validation_clip_seconds'))
  config_checks.check_placement(data)
  model = config.model
  config_checks.require(model.variant in vocoder_models.VARIANTS, 'config.model.variant',
                        model.variant, f'choose one of {", ".join(vocoder_models.VARIANTS)}')
  for field in ('period_discriminator_channels', 'resolution_discriminator_channels'):
    channels = tuple(model[field])
    config_checks.require(len(channels) > 0 and all(c >= 1 for c in channels),
                          f'config.model.{field}', channels, 'name at least one positive width')
  # Each period conv divides time by 3: the folded crop must not run out.
  shortest = data.crop_samples // max(waveform_discriminators.PERIODS)
  config_checks.require(shortest >= 3 ** len(model.period_discriminator_channels),
                        'config.model.period_discriminator_channels',
                        tuple(model.period_discriminator_channels),
                        f'too many stride-3 convs for crops of {data.crop_samples} samples')
  config_checks.resolve_dtype(model, 'config.model.dtype')
  config_checks.check_positive(config.loss, 'config.loss', ('mel_weight',))
  config_checks.require(model.get('mel_refinement_iterations', 0) >= 0,
                        'config.model.mel_refinement_iterations',
                        model.get('mel_refinement_iterations', 0), 'must be >= 0 (0: none)')
  config_checks.require(model.get('phase_prior_iterations', 0) >= 0,
                        'config.model.phase_prior_iterations',
                        model.get('phase_prior_iterations', 0), 'must be >= 0 (0: no phase prior)')
  prior_start = neural_vocoder.phase_prior_of(model)[1]
  config_checks.require(prior_start in neural_vocoder.PHASE_PRIOR_STARTS,
                        'config.model.phase_prior_start', prior_start,
                        f'choose one of {", ".join(neural_vocoder.PHASE_PRIOR_STARTS)}')
  for field in ('adversarial_start_step', 'resolution_weight', 'feature_matching_weight',
                'stft_weight', 'magnitude_weight', 'phase_weight', 'refinement_iterations'):
    config_checks.require(config.loss.get(field, 0.0) >= 0, f'config.loss.{field}',
                          config.loss.get(field, 0.0), 'must be >= 0')
  trained_refinement = config.loss.get('refinement_iterations', 0)
  played_refinement = model.get('mel_refinement_iterations', 0)
  config_checks.require(
      trained_refinement in (0, played_refinement), 'config.loss.refinement_iterations',
      trained_refinement,
      f'the losses would hear another refinement than inference plays '
      f'(config.model.mel_refinement_iterations={played_refinement}): set it to that, or 0')
  train = config.train
  config_checks.check_positive(train, 'config.train', (
      'learning_rate', 'discriminator_learning_rate', 'grad_clip_norm'))
  config_checks.require(0 <= train.warmup_steps < train.num_steps, 'config.train.warmup_steps',
                        train.warmup_steps, f'must be below config.train.num_steps={train.num_steps}')
  config_checks.require(0.0 <= train.end_learning_rate_fraction <= 1.0,
                        'config.train.end_learning_rate_fraction',
                        train.end_learning_rate_fraction, 'must be in [0, 1]')
  input_pipeline.load_dataset_meta(data.dataset_dir)  # Refuses other feature versions.
  audio = audio_crops.split_audio(data.dataset_dir, records.TRAIN_SPLIT, data.crop_samples)
  if not audio.paths:
    raise audio_crops.AudioCropsError(
        f'{data.dataset_dir}: no training song is {data.crop_samples} samples long')
  if config.init_vocoder_workdir:
    workdir_lib.read_config(config.init_vocoder_workdir, 'vocoder')
    workdir_lib.check_features(config.init_vocoder_workdir)
  vqvae = None
  if config.vqvae_workdir:
    vqvae = loading.load_vqvae(config.vqvae_workdir)
    stem = CODEC_STEM
    config_checks.require(stem in vqvae.normalization.stems, 'config.vqvae_workdir',
                          config.vqvae_workdir,
                          f'has no {stem!r} statistics (the cleaned WAVs are mixes)')
  return CheckedConfig(train_audio=audio, vqvae=vqvae)


def _update(graphdef, disc_graphdef, optimizer, disc_optimizer, loss_config, adversarial: bool,
            phase_prior: tuple[int, str], state: TrainState, audio, true_spectrum, log_mel,
            input_log_mel):
  """Generator step, and discriminator step when `adversarial` (static).

  `true_spectrum` and `log_mel` are the real crop's STFT and log-mel.
  """
  true_magnitude = inversion.magnitude(true_spectrum)
  # The priors (NNLS magnitude, Griffin-Lim phase) are inputs: computed once, outside the gradient.
  prior_keys = jax.random.split(jax.random.fold_in(jax.random.key(0), state.step),
                                audio.shape[0])
  generator_priors = neural_vocoder.priors(nnx.merge(graphdef, state.generator), input_log_mel,
                                           prior_keys, *phase_prior)
  generator_priors = jax.lax.stop_gradient(generator_priors)

  def generator_loss(params):
    fake, spectrum = neural_vocoder.synthesize_with_priors(nnx.merge(graphdef, params),
                                                           input_log_mel, generator_priors)
    if loss_config.get('refinement_iterations', 0):  # Static: runs from before it have none.
      # The waveform's losses (mel L1, MR-STFT, the discriminators) hear what inference
      # plays, the output after the mel refinement, so the network learns what the
      # refinement cannot restore instead of what it undoes; the log-magnitude and phase
      # losses still score the network's own spectrum, an anchor to the true STFT.
      fake = neural_vocoder.refine_to_mel(spectrum, input_log_mel,
                                          loss_config.refinement_iterations)
    mel = mel_l1(log_mel, fake)
    stft = multi_resolution_stft_loss(audio, fake)
    magnitude = log_magnitude_l1(true_magnitude, spectrum)
    terms = {'mel_l1': mel, 'multi_resolution_stft': stft, 'log_magnitude_l1': magnitude,
             'period_adversarial': jnp.zeros(()), 'resolution_adversarial': jnp.zeros(()),
             'feature_matching': jnp.zeros(())}
    loss = (loss_config.mel_weight * mel + loss_config.get('stft_weight', 0.0) * stft
            + loss_config.get('magnitude_weight', 0.0) * magnitude)
    if loss_config.get('phase_weight', 0.0) > 0:  # Static: runs from before it have none.
      terms['phase'] = anti_wrapping_phase_loss(true_spectrum, spectrum)
      loss += loss_config.phase_weight * terms['phase']
    if adversarial:
      discriminators = nnx.merge(disc_graphdef, state.discriminators)
      real_out, fake_out = discriminators(audio), discriminators(fake)
      period_adv = waveform_discriminators.generator_adversarial_loss(fake_out['period'])
      resolution_adv = waveform_discriminators.generator_adversarial_loss(fake_out['resolution'])
      matching = (waveform_discriminators.feature_matching_loss(real_out['period'],
                                                                fake_out['period'])
                  + loss_config.resolution_weight * waveform_discriminators.feature_matching_loss(
                      real_out['resolution'], fake_out['resolution']))
      loss += (period_adv + loss_config.resolution_weight * resolution_adv
               + loss_config.feature_matching_weight * matching)
      terms.update(period_adversarial=period_adv, resolution_adversarial=resolution_adv,
                   feature_matching=matching)
    return loss, (fake, terms)

  (loss, (fake, terms)), grads = jax.value_and_grad(generator_loss, has_aux=True)(
      state.generator)
  generator, opt_state = loop.apply_gradients(optimizer, grads, state.opt_state,
                                                            state.generator)
  terms['grad_norm'] = optax.tree.norm(grads)
  disc_params, disc_opt_state = state.discriminators, state.discriminator_opt_state
  terms['discriminator'] = jnp.zeros(())
  if adversarial:
    fake = jax.lax.stop_gradient(fake)

    def discriminator_loss(disc_params):
      discriminators = nnx.merge(disc_graphdef, disc_params)
      real_out, fake_out = discriminators(audio), discriminators(fake)
      return (waveform_discriminators.discriminator_loss(real_out['period'], fake_out['period'])
              + loss_config.resolution_weight * waveform_discriminators.discriminator_loss(
                  real_out['resolution'], fake_out['resolution']))

    terms['discriminator'], disc_grads = jax.value_and_grad(discriminator_loss)(disc_params)
    disc_params, disc_opt_state = loop.apply_gradients(
        disc_optimizer, disc_grads, disc_opt_state, disc_params)
  return (loss, terms), (generator, opt_state, disc_params, disc_opt_state)


def true_log_mel(codec, log_mel: jax.Array) -> jax.Array:
  """The generator's input without a codec: the crop's own log-mel (`codec` unused)."""
  del codec
  return log_mel


def train_step(graphdef, disc_graphdef, optimizer, disc_optimizer, schedule, config,
               input_log_mel_fn, adversarial: bool, state: TrainState, batch,
               codec) -> tuple[TrainState, dict]:
  """One step of the generator, and of the discriminators when `adversarial` (static).

  `input_log_mel_fn(codec, log_mel)` gives what the generator hears (the log-mel
  itself, or its codec round trip).
  """
  audio = batch['audio']
  true_spectrum = inversion.stft(audio, contract.num_frames(audio.shape[1]))
  log_mel = inversion.log_mel_of_magnitude(inversion.magnitude(true_spectrum))
  input_log_mel = jax.lax.stop_gradient(input_log_mel_fn(codec, log_mel))
  (loss, terms), (generator, opt_state, disc_params, disc_opt_state) = _update(
      graphdef, disc_graphdef, optimizer, disc_optimizer, config.loss, adversarial,
      neural_vocoder.phase_prior_of(config.model), state, audio, true_spectrum, log_mel,
      input_log_mel)
  metrics = {'train/loss': loss, 'train/learning_rate': schedule(state.step),
             **{f'train/{name}': value for name, value in terms.items()}}
  return state.replace(step=state.step + 1, generator=generator, opt_state=opt_state,
                       discriminators=disc_params,
                       discriminator_opt_state=disc_opt_state), metrics


def init_state(config: ml_collections.ConfigDict):
  """A fresh generator, discriminators and optimizers.

  Returns:
    ((generator graphdef, discriminators graphdef), state, (optimizer,
    discriminator optimizer), schedule).
  """
  config_checks.resolve_dtype(config.model, 'config.model.dtype')
  graphdef, generator = nnx.split(neural_vocoder.build_generator(config.model, config.seed))
  disc_graphdef, discriminators = nnx.split(waveform_discriminators.from_config(
      config.model, rngs=nnx.Rngs(config.seed + 1)))
  optimizer, schedule = make_optimizer(config.train, config.train.learning_rate)
  disc_optimizer, _ = make_optimizer(config.train, config.train.discriminator_learning_rate)
  state = TrainState(step=jnp.zeros((), jnp.int32), generator=generator,
                     opt_state=optimizer.init(generator), discriminators=discriminators,
                     discriminator_opt_state=disc_optimizer.init(discriminators))
  return (graphdef, disc_graphdef), state, (optimizer, disc_optimizer), schedule


def waveform_scores(references: np.ndarray, estimates: np.ndarray) -> dict:
  """Mean MR-STFT distance and full-band mel distance of estimates to their references."""
  mr_stft, mel = [], []
  for reference, estimate in zip(references, estimates):
    mr_stft.append(reconstruction.multi_resolution_stft_distance(reference, estimate)['total'])
    mel.append(reconstruction.mel_distance(reference, estimate, contract.SAMPLE_RATE_HZ,
                                           num_mels=contract.NUM_MELS, fmax_hz=None))
  return {'mr_stft': float(np.mean(mr_stft)), 'mel_distance': float(np.mean(mel))}


def train_step_on_device_crops(step_fn, crop_samples: int, scale: float, state: TrainState,
                               starts, samples: jax.Array, codec):
  """`step_fn` (a train_step) on crops cut here from the songs in device memory."""
  audio = device_data.crop_flat(samples, starts, crop_samples).astype(jnp.float32) * scale
  return step_fn(state, {'audio': audio}, codec)


class VocoderTrainer:
  """Builds the vocoder, its state and compiled steps for one config."""

  def __init__(self, config: ml_collections.ConfigDict, mesh=None,
               checked: CheckedConfig | None = None):
    self.config = config
    checked = checked or check_config(config)
    self.train_audio = checked.train_audio
    self.mesh = mesh or parallel.make_mesh()
    (self.graphdef, disc_graphdef), self._initial_state, optimizers, self.schedule = (
        init_state(config))
    replicated = parallel.replicated(self.mesh)
    self.codec, input_log_mel_fn = None, true_log_mel
    if checked.vqvae is not None:
      vqvae = checked.vqvae
      mean, std = vqvae.normalization.of(CODEC_STEM)
      self.codec = parallel.replicate(CodecWeights(
          params=vqvae.state.params, codebook=vqvae.state.codebook, mean=jnp.asarray(mean),
          std=jnp.asarray(std)), self.mesh)
      input_log_mel_fn = functools.partial(codec_log_mel, vqvae.graphdef,
                                           vqvae.time_stride)
    # The training songs on the devices when they fit (training/device_data.py).
    self.device_samples, self._sample_scale, self._split_samples = None, 1.0, None
    total = sum(self.train_audio.num_samples)
    if total < 2**31 and device_data.on_device(  # Crop starts are int32 on the devices.
        config.data.get('placement', 'auto'), audio_crops.split_samples_bytes(self.train_audio),
        'the training songs', self.mesh):
      split = audio_crops.load_split_samples(self.train_audio)
      self.device_samples = device_data.put_rows(split.samples, self.mesh)
      self._split_samples = dataclasses.replace(split, samples=None)  # On the devices now.

    def make_step(adversarial):
      step = functools.partial(train_step, self.graphdef, disc_graphdef, *optimizers,
                               self.schedule, config, input_log_mel_fn, adversarial)
      if self.device_samples is not None:
        step = functools.partial(train_step_on_device_crops, step, config.data.crop_samples,
                                 self._split_samples.scale)
      return jax.jit(step, donate_argnums=0, out_shardings=replicated)

    # Two compiled steps, warm-up and adversarial (see loop.PhasedStep).
    self._train_step = loop.PhasedStep(make_step, config.loss.adversarial_start_step)
    self.jit_input_log_mel = jax.jit(input_log_mel_fn, out_shardings=replicated)

    def eval_synthesis(generator, log_mel) -> dict:
      """{'vocoder': what inference gives} and, where it refines, {'unrefined': the
      network's own output}: the refinement pulls every input towards about the same
      fixed point, so its curve can hide what training still moves."""
      model = nnx.merge(self.graphdef, generator)
      generator_priors = neural_vocoder.priors(model, log_mel, None,
                                               *neural_vocoder.phase_prior_of(config.model))
      audio, spectrum = neural_vocoder.synthesize_with_priors(model, log_mel, generator_priors)
      refinement_iterations = config.model.get('mel_refinement_iterations', 0)
      if not refinement_iterations:
        return {'vocoder': audio}
      return {'vocoder': neural_vocoder.refine_to_mel(spectrum, log_mel, refinement_iterations),
              'unrefined': audio}

    self.jit_eval_synthesis = jax.jit(eval_synthesis, out_shardings=replicated)
    clip_samples = (int(config.data.validation_clip_seconds * contract.SAMPLE_RATE_HZ)
                    // contract.HOP_LENGTH * contract.HOP_LENGTH)
    validation = audio_crops.split_audio(config.data.dataset_dir, records.VALIDATION_SPLIT,
                                         clip_samples)
    self.validation_clips = audio_crops.validation_clips(
        validation, clip_samples, config.data.num_validation_clips)
    self._griffin_lim_scores = None  # Computed at the first evaluation, then kept.

  def jit_train_step(self, state: TrainState, batch) -> tuple[TrainState, dict]:
    """`batch`: train_batches' item (crops, or where they begin in the songs on the devices)."""
    if self.device_samples is not None:
      return self._train_step(state, batch, self.device_samples, self.codec)
    return self._train_step(state, batch, self.codec)

  def create_state(self) -> TrainState:
    # A copy each time: the train step donates (invalidates) the state it gets.
    return parallel.replicate(self._initial_state, self.mesh)

  def fresh_start(self, state: TrainState) -> TrainState:
    """A new run starts from `config.init_vocoder_workdir`'s weights when one is named."""
    if not self.config.init_vocoder_workdir:
      return state
    restored, _ = checkpoints.restore(
        self.config.init_vocoder_workdir,
        {'generator': state.generator, 'discriminators': state.discriminators}, mesh=self.mesh)
    return state.replace(generator=restored['generator'],
                         discriminators=restored['discriminators'])

  def train_batches(self, start_step: int):
    self._train_step.reset(start_step)
    args = dict(crop_samples=self.config.data.crop_samples,
                local_batch_size=parallel.local_batch_size(self.config.train.batch_size),
                seed=self.config.seed, start_step=start_step,
                process_index=jax.process_index(), process_count=jax.process_count())
    if self.device_samples is not None:
      local = audio_crops.train_crop_starts(self.train_audio, self._split_samples, **args)
    else:
      local = audio_crops.train_batches(self.train_audio, **args)
    return parallel.prefetch_to_mesh(local, self.mesh)

  def evaluate(self, state: TrainState, writer: metric_writer.MetricWriter, step: int) -> dict:
    """The vocoder and Griffin-Lim on the true mels of held-out clips; audio summaries."""
    clips = self.validation_clips
    if not len(clips):
      return {}
    replicated = parallel.replicate(np.stack([contract.log_mel(clip) for clip in clips]),
                                    self.mesh)  # Every process runs it.
    replicated = self.jit_input_log_mel(self.codec, replicated)  # The codec's, if fine-tuning.
    log_mel = parallel.host_values(replicated)
    outputs = {name: np.stack([synthesis.finish(clip) for clip in parallel.host_values(audio)])
               for name, audio in self.jit_eval_synthesis(state.generator, replicated).items()}
    vocoded = outputs['vocoder']
    scores = waveform_scores(clips, vocoded)
    if self._griffin_lim_scores is None:
      self._griffin_lim_scores = waveform_scores(clips, synthesis.log_mel_to_audio(log_mel))
    griffin_lim = self._griffin_lim_scores
    count = min(self.config.train.num_summary_examples, len(clips))
    writer.write_audio(step, {f'vocoder/{i}/{kind}': audio for i in range(count)
                              for kind, audio in (('original', clips[i]),
                                                  ('vocoder', vocoded[i]))},
                       contract.SAMPLE_RATE_HZ)
    results = {'eval/mr_stft': scores['mr_stft'], 'eval/mel_distance': scores['mel_distance'],
               'eval/griffin_lim_mr_stft': griffin_lim['mr_stft'],
               'eval/griffin_lim_mel_distance': griffin_lim['mel_distance'],
               # Below 1: the vocoder is closer to the original than Griffin-Lim.
               'eval/mr_stft_vs_griffin_lim': scores['mr_stft'] / griffin_lim['mr_stft'],
               'eval/mel_distance_vs_griffin_lim': (scores['mel_distance']
                                                    / griffin_lim['mel_distance'])}
    if 'unrefined' in outputs:
      unrefined = waveform_scores(clips, outputs['unrefined'])
      results.update({
          'eval/unrefined_mr_stft': unrefined['mr_stft'],
          'eval/unrefined_mel_distance': unrefined['mel_distance'],
          'eval/unrefined_mr_stft_vs_griffin_lim': (unrefined['mr_stft']
                                                    / griffin_lim['mr_stft'])})
    return results


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       checked: CheckedConfig | None = None, eval_callback=None):
  """Trains; `checked` is check_config's result when the caller already ran it.

  Raises:
    workdir_lib.WorkdirError: the workdir holds a run of other mel settings.
  """
  if (atomic_files.as_path(workdir) / workdir_lib.FEATURES_FILENAME).exists():
    workdir_lib.check_features(workdir)
  trainer = VocoderTrainer(config, checked=checked)
  workdir_lib.write_normalization(workdir, input_pipeline.load_dataset_meta(
      config.data.dataset_dir).normalization)
  workdir_lib.write_features(workdir)
  return loop.train_and_evaluate(trainer, config.train, workdir, eval_callback)


# The vocoder's reconstruction losses, beside its adversarial ones.


def mel_l1(log_mel: jax.Array, audio: jax.Array) -> jax.Array:
  """Mean |log-mel(audio) - log_mel|: the reconstruction loss, in the contract's features."""
  return jnp.mean(jnp.abs(inversion.log_mel(audio) - log_mel))


MAGNITUDE_FLOOR = 1e-5  # Below it, log-magnitude differences are inaudible noise floor.


def log_magnitude_l1(true_magnitude: jax.Array, spectrum: jax.Array) -> jax.Array:
  """Mean |log |predicted STFT| - log |true STFT|| at the contract's STFT: the head's
  magnitude trained directly, as APNet trains its amplitude spectrum (the mel's
  128 bands cannot tell the 513 bins apart; this loss can)."""
  predicted = inversion.magnitude(spectrum)
  return jnp.mean(jnp.abs(jnp.log(jnp.maximum(predicted, MAGNITUDE_FLOOR))
                          - jnp.log(jnp.maximum(true_magnitude, MAGNITUDE_FLOOR))))


def _anti_wrapped(difference: jax.Array) -> jax.Array:
  """|difference| after wrapping into [-pi, pi]: a phase error of 2 pi is none."""
  return jnp.abs(difference - 2 * jnp.pi * jnp.round(difference / (2 * jnp.pi)))


def anti_wrapping_phase_loss(true_spectrum: jax.Array, spectrum: jax.Array) -> jax.Array:
  """APNet's phase losses (Ai and Ling 2023), at the contract's STFT: anti-wrapped
  errors of the instantaneous phase, the group delay (its difference across
  bins) and the instantaneous frequency (its difference across frames), summed.

  The mel says nothing about phase; these say what the true one is, where the
  reconstruction losses only say when a phase is inconsistent. The group delay
  and instantaneous frequency are differences, so a model can learn them from
  the mel's local shape even where the absolute phase is a matter of where the
  crop starts. Each bin counts by its true magnitude (over the clip's mean): the
  phase of a bin at the noise floor is noise, and a loud partial's is what is heard.
  """
  true_phase, phase = jnp.angle(true_spectrum), jnp.angle(spectrum)
  weight = jnp.abs(true_spectrum)
  weight = weight / jnp.maximum(jnp.mean(weight, axis=(1, 2), keepdims=True), 1e-7)
  error = true_phase - phase
  instantaneous = jnp.mean(weight * _anti_wrapped(error))
  # A difference counts as much as the quieter of its two bins.
  across_bins = jnp.mean(jnp.minimum(weight[..., 1:], weight[..., :-1])
                         * _anti_wrapped(jnp.diff(error, axis=-1)))
  across_frames = jnp.mean(jnp.minimum(weight[:, 1:], weight[:, :-1])
                           * _anti_wrapped(jnp.diff(error, axis=1)))
  return instantaneous + across_bins + across_frames


def multi_resolution_stft_loss(reference: jax.Array, estimate: jax.Array) -> jax.Array:
  """Parallel WaveGAN's auxiliary loss at its resolutions (those of the MR-STFT distance
  in evaluation/reconstruction.py): per resolution, spectral convergence plus mean
  |log-magnitude difference|, averaged over the resolutions."""
  total = 0.0
  for n_fft, hop, window in reconstruction.STFT_RESOLUTIONS:
    target = waveform_discriminators.magnitude_spectrogram(reference, n_fft, hop, window)
    estimated = waveform_discriminators.magnitude_spectrogram(estimate, n_fft, hop, window)
    convergence = (jnp.linalg.norm(target - estimated, axis=(1, 2))
                   / jnp.maximum(jnp.linalg.norm(target, axis=(1, 2)), 1e-7))
    log_l1 = jnp.mean(jnp.abs(jnp.log(jnp.maximum(target, 1e-7))
                              - jnp.log(jnp.maximum(estimated, 1e-7))), axis=(1, 2))
    total += jnp.mean(convergence + log_l1)
  return total / len(reconstruction.STFT_RESOLUTIONS)


# What a vocoder fine-tuned on a codec hears: the log-mel after a VQ-VAE round trip.


CODEC_STEM = 'mix'  # The cleaned WAVs the vocoder trains on are mixes.


@flax.struct.dataclass
class CodecWeights:
  """A VQ-VAE's weights and statistics, passed to the compiled step (not trained)."""
  params: nnx.State
  codebook: nnx.State
  mean: jax.Array  # [NUM_MELS], of the mix stem.
  std: jax.Array


def codec_log_mel(graphdef, time_stride: int, weights: CodecWeights, log_mel):
  """[batch, frames, NUM_MELS] log-mel -> the same after the VQ-VAE's round trip.

  Frames are padded (edge) to a multiple of the codec's stride, then trimmed.
  """
  frames = log_mel.shape[1]
  padded_frames = -(-frames // time_stride) * time_stride
  normalized = normalization.normalize_with(log_mel, weights.mean, weights.std)
  normalized = jnp.pad(normalized, ((0, 0), (0, padded_frames - frames), (0, 0)), mode='edge')
  recon = nnx.merge(graphdef, weights.params, weights.codebook)(normalized)[0]
  return normalization.denormalize_with(recon[:, :frames].astype(jnp.float32), weights.mean,
                                        weights.std)
