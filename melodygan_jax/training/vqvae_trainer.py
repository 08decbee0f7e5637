"""VQ-VAE training: the model-specific parts the shared loop calls.

Loss: L1 + MSE of the normalized log-mel reconstruction, plus the commitment
loss; the codebook follows an EMA of its assigned encodings (not a loss term).
"""
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
from melodygan_jax.models import vqvae
from melodygan_jax.training import config_checks
from melodygan_jax.training import loop
from melodygan_jax.training import metric_writer
from melodygan_jax.training import parallel
from melodygan_jax.training import run_files


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State  # Trained by the optimizer.
  codebook: nnx.State  # Quantizer variables, moved by EMA in the step.
  opt_state: optax.OptState


def make_optimizer(train_config) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Adam with linear warm-up and cosine decay, after global-norm clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=train_config.learning_rate,
      warmup_steps=train_config.warmup_steps, decay_steps=train_config.num_steps,
      end_value=train_config.end_learning_rate)
  optimizer = optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm),
                          optax.adam(schedule))
  return optimizer, schedule


def check_config(config: ml_collections.ConfigDict,
                 meta: input_pipeline.DatasetMeta | None = None) -> input_pipeline.DatasetMeta:
  """Validates a VQ-VAE config (and its data set) before anything compiles.

  Raises:
    config_checks.ConfigError or input_pipeline.DatasetError: one line each.
  """
  config_checks.check_data_section(config.data)
  config_checks.check_train_section(config.train)
  model = config.model
  config_checks.check_positive(model, 'config.model', (
      'num_res_blocks', 'codebook_size', 'codebook_dim', 'usage_window_steps',
      'restart_every_steps', 'kmeans_init_batches'))
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


def reconstruction_losses(recon, mel, weight=None) -> tuple[jax.Array, jax.Array]:
  """Mean L1 and MSE over frames and mels; `weight` [batch] masks padding."""
  l1 = jnp.mean(jnp.abs(recon - mel), axis=(1, 2))
  mse = jnp.mean(jnp.square(recon - mel), axis=(1, 2))
  if weight is None:
    return jnp.mean(l1), jnp.mean(mse)
  return jnp.sum(l1 * weight), jnp.sum(mse * weight)


def train_step(graphdef, optimizer, schedule, config, state: TrainState, batch,
               base_rng) -> tuple[TrainState, dict]:
  """One optimizer step and one codebook EMA step on a global batch."""
  restart_rng = jax.random.fold_in(base_rng, state.step)
  mel = batch['mel']

  def loss_fn(params):
    model = nnx.merge(graphdef, params, state.codebook)
    recon, aux = model(mel)
    l1, mse = reconstruction_losses(recon, mel)
    loss = (config.loss.l1_weight * l1 + config.loss.mse_weight * mse
            + config.model.commitment_cost * aux['commitment_loss'])
    return loss, (aux, l1, mse)

  (loss, (aux, l1, mse)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  model = nnx.merge(graphdef, params, state.codebook)
  model.quantizer.update_codebook(aux['z_e'], aux['codes'], state.step, restart_rng)
  codebook = nnx.state(model, quantizer_lib.CodebookVariable)
  metrics = {
      'train/loss': loss, 'train/l1': l1, 'train/mse': mse,
      'train/commitment': aux['commitment_loss'], 'train/perplexity': aux['perplexity'],
      'train/codebook_usage': model.quantizer.usage_share(),
      'train/grad_norm': optax.tree.norm(grads),
      'train/learning_rate': schedule(state.step),
  }
  new_state = state.replace(step=state.step + 1, params=params, codebook=codebook,
                            opt_state=opt_state)
  return new_state, metrics


def eval_step(graphdef, mean, std, state: TrainState, batch) -> dict:
  """Sums over the real (weight 1) examples of a validation batch."""
  model = nnx.merge(graphdef, state.params, state.codebook)
  mel, weight = batch['mel'], batch['weight']
  recon, aux = model(mel)
  l1, mse = reconstruction_losses(recon, mel, weight)
  stem_mean, stem_std = mean[batch['stem']][:, None], std[batch['stem']][:, None]
  convergence = spectral_metrics.spectral_convergence(
      normalization.denormalize_with(mel, stem_mean, stem_std),
      normalization.denormalize_with(recon, stem_mean, stem_std))
  code_counts = jnp.einsum('b,btk->k', weight, jax.nn.one_hot(
      aux['codes'], model.quantizer.codebook_size))
  return {'l1': l1, 'mse': mse, 'spectral_convergence': jnp.sum(convergence * weight),
          'count': jnp.sum(weight), 'code_counts': code_counts}


def encode(graphdef, state: TrainState, mel) -> jax.Array:
  """Unquantized encoder outputs [batch, steps, dim]."""
  return nnx.merge(graphdef, state.params, state.codebook).encoder(mel)


def reconstruct(graphdef, state: TrainState, mel) -> jax.Array:
  return nnx.merge(graphdef, state.params, state.codebook)(mel)[0]


def init_state(config: ml_collections.ConfigDict):
  """A fresh model and optimizer.

  Returns:
    (graphdef, state, optimizer, schedule): the static model structure, the
    TrainState (on the default device) and the optax pieces.
  """
  config_checks.resolve_dtype(config.model, 'config.model.dtype')
  model = vqvae.from_config(config.model, rngs=nnx.Rngs(config.seed), num_mels=contract.NUM_MELS)
  graphdef, params, codebook = nnx.split(model, nnx.Param, quantizer_lib.CodebookVariable)
  optimizer, schedule = make_optimizer(config.train)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, codebook=codebook,
                     opt_state=optimizer.init(params))
  return graphdef, state, optimizer, schedule


class VQVAETrainer:
  """Builds the model, its state and compiled steps for one config."""

  def __init__(self, config: ml_collections.ConfigDict, mesh=None,
               meta: input_pipeline.DatasetMeta | None = None):
    self.config = config
    self.meta = check_config(config, meta)
    self.mesh = mesh or parallel.make_mesh()
    # One key per purpose; the step key is folded with the step inside the step.
    self.kmeans_rng, self.base_rng = jax.random.split(jax.random.key(config.seed))
    self.graphdef, self._initial_state, self.optimizer, self.schedule = init_state(config)
    stems = tuple(config.data.stems)
    self.stems = stems
    mean, std = self.meta.normalization.stacked(stems)
    replicated = parallel.replicated(self.mesh)
    self._jit_train_step = jax.jit(
        functools.partial(train_step, self.graphdef, self.optimizer, self.schedule, config),
        donate_argnums=0, out_shardings=replicated)
    self.jit_eval_step = jax.jit(functools.partial(
        eval_step, self.graphdef, jnp.asarray(mean), jnp.asarray(std)), out_shardings=replicated)
    self.jit_encode = jax.jit(functools.partial(encode, self.graphdef))
    # Replicated: every process runs it, process 0 reads all of it for summaries.
    self.jit_reconstruct = jax.jit(functools.partial(reconstruct, self.graphdef),
                                   out_shardings=replicated)

  def jit_train_step(self, state: TrainState, batch) -> tuple[TrainState, dict]:
    return self._jit_train_step(state, batch, self.base_rng)

  def create_state(self) -> TrainState:
    # A copy each time: the train step donates (invalidates) the state it gets.
    return parallel.replicate(self._initial_state, self.mesh)

  def train_batches(self, start_step: int):
    local = input_pipeline.train_batches(
        self.config.data, self.meta, parallel.local_batch_size(self.config.train.batch_size),
        seed=self.config.seed, start_step=start_step, process_index=jax.process_index(),
        process_count=jax.process_count())
    return parallel.prefetch_to_mesh(local, self.mesh)

  def fresh_start(self, state: TrainState) -> TrainState:
    """Seeds the codebook with k-means of the first batches' encodings."""
    batches = self.train_batches(0)
    encodings = [self.jit_encode(state, next(batches)['mel'])
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
    metrics = {f'eval/{name}': float(sums[name] / count)
               for name in ('l1', 'mse', 'spectral_convergence')}
    metrics.update({f'eval/{k}': v for k, v in quantizer_lib.codebook_statistics(sums['code_counts']).items()})
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
  run_files.write_normalization(workdir, trainer.meta.normalization)
  return loop.train_and_evaluate(trainer, config.train, workdir, eval_callback)
