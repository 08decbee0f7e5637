r"""configs/vocoder.py shrunk for tests and the demo: a second or so per few steps on a CPU.

  python -m melodygan_jax.train --config=configs/vocoder_tiny.py --workdir=demo/vocoder \
      --config.data.dataset_dir=demo/data
"""
import ml_collections

from configs import vocoder


def get_config() -> ml_collections.ConfigDict:
  config = vocoder.get_config()
  config.data.crop_samples = 2_048
  config.data.num_validation_clips = 1
  config.data.validation_clip_seconds = 1.0
  config.model.variant = 'tiny'
  config.model.phase_prior_iterations = 8
  config.model.mel_refinement_iterations = 4
  config.model.period_discriminator_channels = (4, 8)
  config.model.resolution_discriminator_channels = (4, 4)
  config.loss.adversarial_start_step = 20
  config.train.num_steps = 200
  config.train.batch_size = 4
  config.train.learning_rate = 2e-3
  config.train.warmup_steps = 5
  config.train.log_every_steps = 10
  config.train.eval_every_steps = 100
  config.train.checkpoint_every_steps = 100
  config.train.num_summary_examples = 1
  return config
