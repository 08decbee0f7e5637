"""VQ-VAE training: the model-specific parts the shared loop calls.

Loss: L1 + MSE of the normalized log-mel reconstruction, the spectral
convergence of its mel magnitudes, the relative L1 of its onset envelope (the
spectral flux the structure profile hears the beat in), plus the commitment
loss; each level's codebook follows an EMA of its assigned residuals (not a
loss term). From `loss.adversarial_start_step` on (a warm-up of reconstruction
alone first, as VQGAN), a multi-scale patch discriminator on the normalized
log-mel adds a hinge adversarial loss and a feature-matching loss, and is
itself trained in the same step. Each example keeps a random number of
quantizer levels with probability `model.quantizer_dropout` (one model, several
bit rates).
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

from melodygan_jax.audio import contract
from melodygan_jax.audio import spectral_metrics
from melodygan_jax.audio import spectrogram_image
from melodygan_jax.audio import synthesis
from melodygan_jax.data import input_pipeline
from melodygan_jax.data import normalization
from melodygan_jax.data import records
from melodygan_jax.models import quantizer as quantizer_lib
from melodygan_jax.models import residual_quantizer
from melodygan_jax.models import spectrogram_discriminator
from melodygan_jax.models import vqvae
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import config_checks
from melodygan_jax.training import device_data
from melodygan_jax.training import loop
from melodygan_jax.training import metric_writer
from melodygan_jax.training import parallel


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State  # Trained by the optimizer.
  codebook: nnx.State  # Quantizer variables, moved by EMA in the step.
  opt_state: optax.OptState
  discriminator: nnx.State  # The spectrogram discriminator's parameters.
  discriminator_opt_state: optax.OptState


def make_optimizer(train_config) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Adam with linear warm-up and cosine decay, after global-norm clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=train_config.learning_rate,
      warmup_steps=train_config.warmup_steps, decay_steps=train_config.num_steps,
      end_value=train_config.end_learning_rate)
  optimizer = optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm),
                          optax.adam(schedule))
  return optimizer, schedule


def make_discriminator_optimizer(train_config) -> optax.GradientTransformation:
  """Adam with EnCodec's betas (0.5, 0.9), constant rate."""
  return optax.adam(train_config.discriminator_learning_rate, b1=0.5, b2=0.9)


def bits_per_second(model_config, num_levels: int | None = None) -> float:
  """Bit rate of the codes of `num_levels` levels (default: all)."""
  return contract.code_bits_per_second(
      model_config.num_levels if num_levels is None else num_levels,
      model_config.codebook_size, int(np.prod(model_config.strides)))


def check_config(config: ml_collections.ConfigDict,
                 meta: input_pipeline.DatasetMeta | None = None) -> input_pipeline.DatasetMeta:
  """Validates a VQ-VAE config (and its data set) before anything compiles.

  Raises:
    errors.ConfigError or input_pipeline.DatasetError: one line each.
  """
  config_checks.check_data_section(config.data)
  config_checks.check_train_section(config.train)
  model = config.model
  config_checks.check_positive(model, 'config.model', (
      'num_res_blocks', 'num_levels', 'codebook_size', 'codebook_dim', 'usage_window_steps',
      'restart_every_steps', 'kmeans_init_batches', 'discriminator_scales'))
  config_checks.require(model.lookup_dim >= 0, 'config.model.lookup_dim', model.lookup_dim,
                        'must be >= 0 (0: no factorized lookup)')
  config_checks.require(0.0 <= model.quantizer_dropout <= 1.0, 'config.model.quantizer_dropout',
                        model.quantizer_dropout, 'must be in [0, 1]')
  config_checks.require(len(model.discriminator_channels) > 0 and all(
      c >= 1 for c in model.discriminator_channels), 'config.model.discriminator_channels',
                        tuple(model.discriminator_channels), 'name at least one positive width')
  # Each scale halves frames and mels once per conv: they must not run out.
  shrink = 2 ** (model.discriminator_scales - 1 + len(model.discriminator_channels))
  config_checks.require(config.data.crop_frames >= shrink and contract.NUM_MELS >= shrink,
                        'config.model.discriminator_scales', model.discriminator_scales,
                        f'with {len(model.discriminator_channels)} convolutions per scale, '
                        f'needs crops of at least {shrink} frames and mels')
  config_checks.require(config.loss.onset_envelope_weight >= 0.0,
                        'config.loss.onset_envelope_weight', config.loss.onset_envelope_weight,
                        'must be >= 0 (0: no onset envelope loss)')
  config_checks.require(config.loss.adversarial_start_step >= 0,
                        'config.loss.adversarial_start_step', config.loss.adversarial_start_step,
                        'must be >= 0 (a step number)')
  config_checks.require(len(model.widths) == len(model.strides) + 1, 'config.model.widths',
                        tuple(model.widths), 'needs one width per stride plus one')
  config_checks.require(all(s >= 1 for s in model.strides), 'config.model.strides',
                        tuple(model.strides), 'must be positive')
  config_checks.require(0.0 < model.ema_decay < 1.0, 'config.model.ema_decay',
                        model.ema_decay, 'must be in (0, 1)')
  config_checks.resolve_dtype(model, 'config.model.dtype')
  config_checks.require(0 <= config.train.warmup_steps < config.train.num_steps,
                        'config.train.warmup_steps', config.train.warmup_steps,
                        f'must be below config.train.num_steps={config.train.num_steps}')
  time_stride = int(np.prod(model.strides))
  config_checks.require(config.data.crop_frames % time_stride == 0, 'config.data.crop_frames',
                        config.data.crop_frames,
                        f'must be a multiple of the time stride {time_stride}')
  meta = meta or input_pipeline.load_dataset_meta(config.data.dataset_dir)
  input_pipeline.check_data_config(config.data, meta)
  return meta


def unit_log_mel_stats(num_stems: int = 1) -> tuple[jax.Array, jax.Array]:
  """(mean 0, std 1) per stem: stats for timing the step on synthetic batches."""
  return (jnp.zeros((num_stems, contract.NUM_MELS)), jnp.ones((num_stems, contract.NUM_MELS)))


def _codec_and_discriminator_update(graphdef, disc_graphdef, optimizer, disc_optimizer,
                                    config, adversarial: bool, log_mel_stats, state: TrainState,
                                    batch, active_levels):
  """The gradient steps: codec always, discriminator when `adversarial` (static)."""
  mel = batch['mel']
  mean, std = log_mel_stats
  stem_mean, stem_std = mean[batch['stem']][:, None], std[batch['stem']][:, None]

  def loss_fn(params):
    model = nnx.merge(graphdef, params, state.codebook)
    recon, aux = model(mel, active_levels)
    l1, mse = reconstruction_losses(recon, mel)
    convergence = spectral_convergence_loss(recon, mel, stem_mean, stem_std)
    onsets = onset_envelope_loss(recon, mel, stem_mean, stem_std)
    loss = (config.loss.l1_weight * l1 + config.loss.mse_weight * mse
            + config.loss.spectral_convergence_weight * convergence
            + config.loss.onset_envelope_weight * onsets
            + config.model.commitment_cost * aux['commitment_loss'])
    terms = {'l1': l1, 'mse': mse, 'spectral_convergence': convergence, 'onset_envelope': onsets,
             'adversarial': jnp.zeros(()), 'feature_matching': jnp.zeros(())}
    if adversarial:
      discriminator = nnx.merge(disc_graphdef, state.discriminator)
      adversarial_loss, matching_loss = spectrogram_discriminator.generator_losses(
          discriminator(mel), discriminator(recon))
      loss += (config.loss.adversarial_weight * adversarial_loss
               + config.loss.feature_matching_weight * matching_loss)
      terms.update(adversarial=adversarial_loss, feature_matching=matching_loss)
    return loss, (aux, recon, terms)

  (loss, (aux, recon, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  params, opt_state = loop.apply_gradients(optimizer, grads, state.opt_state,
                                                         state.params)
  disc_params, disc_opt_state = state.discriminator, state.discriminator_opt_state
  terms['discriminator'] = jnp.zeros(())
  if adversarial:
    fake = jax.lax.stop_gradient(recon)

    def disc_loss_fn(disc_params):
      discriminator = nnx.merge(disc_graphdef, disc_params)
      return spectrogram_discriminator.discriminator_loss(discriminator(mel),
                                                          discriminator(fake))

    terms['discriminator'], disc_grads = jax.value_and_grad(disc_loss_fn)(disc_params)
    disc_params, disc_opt_state = loop.apply_gradients(
        disc_optimizer, disc_grads, disc_opt_state, disc_params)
  terms['grad_norm'] = optax.tree.norm(grads)
  return (loss, aux, terms), (params, opt_state, disc_params, disc_opt_state)


def train_step(graphdef, disc_graphdef, optimizer, disc_optimizer, schedule, config,
               adversarial: bool, log_mel_stats, state: TrainState, batch,
               base_rng) -> tuple[TrainState, dict]:
  """One optimizer step (codec, and discriminator when `adversarial`), one EMA step.

  `log_mel_stats` is (mean, std), each [stems, mels]: the normalization
  undone for the spectral convergence loss.

  `adversarial` is static: the warm-up and the adversarial phase are two
  compiled steps (see loop.PhasedStep).
  """
  restart_rng, dropout_rng = jax.random.split(jax.random.fold_in(base_rng, state.step))
  active_levels = residual_quantizer.sample_active_levels(
      dropout_rng, batch['mel'].shape[0], config.model.num_levels,
      config.model.quantizer_dropout)
  (loss, aux, terms), (params, opt_state, disc_params, disc_opt_state) = (
      _codec_and_discriminator_update(graphdef, disc_graphdef, optimizer, disc_optimizer,
                                      config, adversarial, log_mel_stats, state, batch,
                                      active_levels))
  model = nnx.merge(graphdef, params, state.codebook)
  model.quantizer.update_codebook(aux['residuals'], aux['codes'], state.step, restart_rng)
  codebook = nnx.state(model, quantizer_lib.CodebookVariable)
  usage = model.quantizer.usage_share()
  metrics = {
      'train/loss': loss, 'train/l1': terms['l1'], 'train/mse': terms['mse'],
      'train/spectral_convergence': terms['spectral_convergence'],
      'train/onset_envelope': terms['onset_envelope'],
      'train/adversarial': terms['adversarial'],
      'train/feature_matching': terms['feature_matching'],
      'train/discriminator': terms['discriminator'],
      'train/commitment': aux['commitment_loss'],
      'train/perplexity': jnp.mean(aux['perplexity']),
      'train/codebook_usage': jnp.mean(usage),
      'train/codebook_usage_min': jnp.min(usage),  # The least used level.
      'train/grad_norm': terms['grad_norm'],
      'train/learning_rate': schedule(state.step),
  }
  new_state = state.replace(step=state.step + 1, params=params, codebook=codebook,
                            opt_state=opt_state, discriminator=disc_params,
                            discriminator_opt_state=disc_opt_state)
  return new_state, metrics


def train_step_on_device_crops(step_fn, crop_frames: int, state: TrainState, positions,
                               table: jax.Array, base_rng) -> tuple[TrainState, dict]:
  """`step_fn` (a train_step) on crops cut here from the train split in device memory."""
  batch = {'mel': device_data.crop_rows(table, positions['row'], positions['start'],
                                        crop_frames),
           'stem': positions['stem']}
  return step_fn(state, batch, base_rng)


def eval_step(graphdef, mean, std, state: TrainState, batch) -> dict:
  """Sums over the real (weight 1) examples of a validation batch, at every bit rate.

  'l1', 'mse', 'spectral_convergence' are [levels]: entry n-1 decodes the
  first n levels; 'code_counts' is [levels, codebook_size].
  """
  model = nnx.merge(graphdef, state.params, state.codebook)
  mel, weight = batch['mel'], batch['weight']
  codes = model.encode_to_codes(mel)
  stem_mean, stem_std = mean[batch['stem']][:, None], std[batch['stem']][:, None]
  sums = {'l1': [], 'mse': [], 'spectral_convergence': []}
  for num_levels in range(1, codes.shape[-1] + 1):
    recon = model.decode_codes(codes[..., :num_levels])
    l1, mse = reconstruction_losses(recon, mel, weight)
    convergence = mel_spectral_convergence(recon, mel, stem_mean, stem_std)
    for name, value in (('l1', l1), ('mse', mse),
                        ('spectral_convergence', jnp.sum(convergence * weight))):
      sums[name].append(value)
  code_counts = jnp.einsum('b,btlk->lk', weight, jax.nn.one_hot(
      codes, model.quantizer.codebook_size))
  return {**{name: jnp.stack(values) for name, values in sums.items()},
          'count': jnp.sum(weight), 'code_counts': code_counts}


def encode(graphdef, state: TrainState, mel) -> jax.Array:
  """Unquantized encoder outputs [batch, steps, dim]."""
  return nnx.merge(graphdef, state.params, state.codebook).encoder(mel)


def reconstruct(graphdef, state: TrainState, mel) -> jax.Array:
  return nnx.merge(graphdef, state.params, state.codebook)(mel)[0]


def init_state(config: ml_collections.ConfigDict):
  """A fresh model and optimizer.

  Returns:
    ((codec graphdef, discriminator graphdef), state, (optimizer,
    discriminator optimizer), schedule): the static model structures, the
    TrainState (on the default device) and the optax pieces.
  """
  config_checks.resolve_dtype(config.model, 'config.model.dtype')
  model = vqvae.from_config(config.model, rngs=nnx.Rngs(config.seed), num_mels=contract.NUM_MELS)
  graphdef, params, codebook = nnx.split(model, nnx.Param, quantizer_lib.CodebookVariable)
  discriminator = spectrogram_discriminator.from_config(config.model,
                                                        rngs=nnx.Rngs(config.seed + 1))
  disc_graphdef, disc_params = nnx.split(discriminator)
  optimizer, schedule = make_optimizer(config.train)
  disc_optimizer = make_discriminator_optimizer(config.train)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, codebook=codebook,
                     opt_state=optimizer.init(params), discriminator=disc_params,
                     discriminator_opt_state=disc_optimizer.init(disc_params))
  return (graphdef, disc_graphdef), state, (optimizer, disc_optimizer), schedule


class VQVAETrainer:
  """Builds the model, its state and compiled steps for one config."""

  def __init__(self, config: ml_collections.ConfigDict, mesh=None,
               meta: input_pipeline.DatasetMeta | None = None):
    self.config = config
    self.meta = check_config(config, meta)
    self.mesh = mesh or parallel.make_mesh()
    # One key per purpose; the step key is folded with the step inside the step.
    self.kmeans_rng, self.base_rng = jax.random.split(jax.random.key(config.seed))
    (self.graphdef, disc_graphdef), self._initial_state, optimizers, self.schedule = (
        init_state(config))
    stems = tuple(config.data.stems)
    self.stems = stems
    mean, std = self.meta.normalization.stacked(stems)
    replicated = parallel.replicated(self.mesh)
    # The whole train split on the devices when it fits (training/device_data.py).
    self.table, self.device_mel = None, None
    if device_data.on_device(config.data.get('placement', 'auto'),
                             input_pipeline.train_table_bytes(config.data, self.meta),
                             'the train split', self.mesh):
      table = input_pipeline.load_train_table(config.data, self.meta)
      self.device_mel = device_data.put_rows(table.mel, self.mesh)
      self.table = dataclasses.replace(table, mel=None)  # The devices hold the rows now.

    def make_step(adversarial):
      step = functools.partial(train_step, self.graphdef, disc_graphdef, *optimizers,
                               self.schedule, config, adversarial,
                               (jnp.asarray(mean), jnp.asarray(std)))
      if self.table is not None:
        step = functools.partial(train_step_on_device_crops, step, config.data.crop_frames)
      return jax.jit(step, donate_argnums=0, out_shardings=replicated)

    # Two compiled steps, warm-up and adversarial; each compiles on first use.
    self._train_step = loop.PhasedStep(make_step, config.loss.adversarial_start_step)
    self._jit_crop = jax.jit(functools.partial(device_data.crop_rows,
                                               length=config.data.crop_frames))
    self.jit_eval_step = jax.jit(functools.partial(
        eval_step, self.graphdef, jnp.asarray(mean), jnp.asarray(std)), out_shardings=replicated)
    self.jit_encode = jax.jit(functools.partial(encode, self.graphdef))
    # Replicated: every process runs it, process 0 reads all of it for summaries.
    self.jit_reconstruct = jax.jit(functools.partial(reconstruct, self.graphdef),
                                   out_shardings=replicated)

  def jit_train_step(self, state: TrainState, batch) -> tuple[TrainState, dict]:
    """`batch`: train_batches' item (crops, or where to cut them on the devices)."""
    if self.table is not None:
      return self._train_step(state, batch, self.device_mel, self.base_rng)
    return self._train_step(state, batch, self.base_rng)

  def create_state(self) -> TrainState:
    # A copy each time: the train step donates (invalidates) the state it gets.
    return parallel.replicate(self._initial_state, self.mesh)

  def train_batches(self, start_step: int):
    """Global batches from `start_step` on: crops {'mel', 'stem'}, or with the split
    on the devices where to cut them {'row', 'start', 'stem'} (the same crops)."""
    self._train_step.reset(start_step)
    args = dict(local_batch_size=parallel.local_batch_size(self.config.train.batch_size),
                seed=self.config.seed, start_step=start_step,
                process_index=jax.process_index(), process_count=jax.process_count())
    if self.table is not None:
      local = input_pipeline.train_positions(self.config.data, self.meta, self.table, **args)
    else:
      local = input_pipeline.train_batches(self.config.data, self.meta, **args)
    return parallel.prefetch_to_mesh(local, self.mesh)

  def batch_mel(self, batch) -> jax.Array:
    """The crops [batch, frames, mels] of a train_batches item, either placement."""
    if self.table is None:
      return batch['mel']
    return self._jit_crop(self.device_mel, batch['row'], batch['start'])

  def fresh_start(self, state: TrainState) -> TrainState:
    """Seeds the codebook with k-means of the first batches' encodings."""
    batches = self.train_batches(0)
    encodings = [self.jit_encode(state, self.batch_mel(next(batches)))
                 for _ in range(self.config.model.kmeans_init_batches)]

    @functools.partial(jax.jit, out_shardings=parallel.replicated(self.mesh))
    def kmeans(state, encodings, rng):
      model = nnx.merge(self.graphdef, state.params, state.codebook)
      model.quantizer.kmeans_init(jnp.concatenate(encodings), rng)
      return state.replace(codebook=nnx.state(model, quantizer_lib.CodebookVariable))

    return kmeans(state, encodings, self.kmeans_rng)

  def evaluate(self, state: TrainState, writer: metric_writer.MetricWriter, step: int) -> dict:
    """Validation metrics over the whole validation split; spectrogram images."""
    batch_size = self.config.train.batch_size
    sums = None
    first_batch = None
    for local in input_pipeline.sequential_batches(
        self.config.data, self.meta, records.VALIDATION_SPLIT,
        parallel.local_batch_size(batch_size), process_index=jax.process_index(),
        process_count=jax.process_count()):
      batch = parallel.global_batch(local, self.mesh)
      if first_batch is None:
        first_batch = local
      out = parallel.host_values(self.jit_eval_step(state, batch))
      sums = out if sums is None else jax.tree.map(np.add, sums, out)
    if sums is None or sums['count'] == 0:
      return {}
    count = sums['count']
    num_levels = self.config.model.num_levels
    metrics = {f'eval/{name}': float(sums[name][-1] / count)
               for name in ('l1', 'mse', 'spectral_convergence')}
    metrics['eval/bits_per_second'] = bits_per_second(self.config.model)
    for level in range(num_levels - 1):  # The lower bit rates quantizer dropout trains.
      for name in ('l1', 'spectral_convergence'):
        metrics[f'eval/levels_{level + 1}/{name}'] = float(sums[name][level] / count)
    usage = [quantizer_lib.codebook_statistics(counts) for counts in sums['code_counts']]
    metrics['eval/codebook_usage'] = float(np.mean([u['codebook_usage'] for u in usage]))
    metrics['eval/codebook_usage_min'] = float(np.min([u['codebook_usage'] for u in usage]))
    metrics['eval/perplexity'] = float(np.mean([u['perplexity'] for u in usage]))
    for level, level_usage in enumerate(usage):
      metrics[f'eval/level_{level + 1}/codebook_usage'] = level_usage['codebook_usage']
    self._write_summaries(state, writer, step, first_batch)
    return metrics

  def _write_summaries(self, state, writer, step, local_batch) -> None:
    """Input and reconstruction of a few validation crops: spectrograms and audio.

    Every process reconstructs (a collective); only process 0 writes.
    """
    if local_batch is None:
      return
    recon = parallel.host_values(self.jit_reconstruct(
        state, parallel.global_batch(local_batch, self.mesh)['mel']))
    if not writer.active:
      return
    count = min(self.config.train.num_summary_examples, int(local_batch['weight'].sum()))
    images, log_mels = {}, []
    for index in range(count):
      stem = self.stems[int(local_batch['stem'][index])]
      pair = [self.meta.normalization.denormalize(x[index], stem)
              for x in (local_batch['mel'], recon)]
      low, high = float(pair[0].min()), float(pair[0].max())
      images[f'reconstruction/{index}'] = np.concatenate(
          [spectrogram_image.spectrogram_image(x, low, high) for x in pair], axis=0)
      log_mels.extend(pair)
    writer.write_images(step, images)
    if log_mels:
      clips = synthesis.log_mel_to_audio(np.stack(log_mels))
      writer.write_audio(step, {f'reconstruction/{i // 2}/{("input", "output")[i % 2]}': clip
                                for i, clip in enumerate(clips)}, contract.SAMPLE_RATE_HZ)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       checked: input_pipeline.DatasetMeta | None = None, eval_callback=None):
  """Trains; `checked` is check_config's result when the caller already ran it.

  `eval_callback(step, metrics)` sees each evaluation (see loop.train_and_evaluate).
  """
  trainer = VQVAETrainer(config, meta=checked)
  workdir_lib.write_normalization(workdir, trainer.meta.normalization)
  return loop.train_and_evaluate(trainer, config.train, workdir, eval_callback)


# Reconstruction losses of the VQ-VAE on normalized log-mel crops.


def reconstruction_losses(recon, mel, weight=None) -> tuple[jax.Array, jax.Array]:
  """Mean L1 and MSE over frames and mels; `weight` [batch] masks padding."""
  l1 = jnp.mean(jnp.abs(recon - mel), axis=(1, 2))
  mse = jnp.mean(jnp.square(recon - mel), axis=(1, 2))
  if weight is None:
    return jnp.mean(l1), jnp.mean(mse)
  return jnp.sum(l1 * weight), jnp.sum(mse * weight)


def mel_spectral_convergence(recon, mel, stem_mean, stem_std) -> jax.Array:
  """[batch] spectral convergence of the mel magnitudes of normalized log-mels.

  The log-mel losses weigh every band alike after normalization; this one
  weighs the loud parts of the spectrum as listeners (and the metric) do.
  """
  return spectral_metrics.spectral_convergence(
      normalization.denormalize_with(mel, stem_mean, stem_std),
      normalization.denormalize_with(recon, stem_mean, stem_std))


def spectral_convergence_loss(recon, mel, stem_mean, stem_std) -> jax.Array:
  """Mean over the batch of `mel_spectral_convergence`."""
  return jnp.mean(mel_spectral_convergence(recon, mel, stem_mean, stem_std))


def mel_onset_envelopes(log_mel_db, floor_db) -> jax.Array:
  """[batch, frames, mels] mel power in dB -> [batch, frames - 1] spectral flux.

  What music_structure.onset_envelope (librosa's onset strength) computes, in
  JAX: the mean over bands of each frame's rise above the last, with the
  spectrum held at `floor_db` [batch, 1, 1] from below.
  """
  db = jnp.maximum(log_mel_db, floor_db)
  return jnp.mean(jax.nn.relu(jnp.diff(db, axis=1)), axis=2)


def onset_envelope_loss(recon, mel, stem_mean, stem_std) -> jax.Array:
  """Mean over the batch of the relative L1 between the crops' onset envelopes.

  The beat evaluate hears is the periodicity of this envelope; the log-mel
  losses weigh a missed or an added onset like any other error of its size.
  The floor is the target's: what it holds more than contract.TOP_DB
  under its peak is not heard as onsets in either.
  """
  to_db = contract.DB_PER_LOG_MAGNITUDE
  mel_db = to_db * normalization.denormalize_with(mel, stem_mean, stem_std)
  recon_db = to_db * normalization.denormalize_with(recon, stem_mean, stem_std)
  floor_db = jax.lax.stop_gradient(
      jnp.max(mel_db, axis=(1, 2), keepdims=True) - contract.TOP_DB)
  target = mel_onset_envelopes(mel_db, floor_db)
  error = jnp.mean(jnp.abs(mel_onset_envelopes(recon_db, floor_db) - target), axis=1)
  # 0.1 dB a frame: a silent crop's tiny flux does not turn noise into a large error.
  return jnp.mean(error / (jnp.mean(target, axis=1) + 0.1))
