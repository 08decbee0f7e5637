r"""configs/vocoder.py at Vocos' published size, for GPUs and TPUs.

  python -m melodygan_jax.train --config=configs/vocoder_large.py --workdir=runs/vocoder_large \
      --config.data.dataset_dir=data/

Vocos' backbone (8 ConvNeXt blocks, 512 wide, 1,536 in the MLP: 13.5 M
parameters with the head, as counted here), its 16,384-sample crops, HiFi-GAN-width
discriminators; the published runs train ~1-2 M steps.
"""
import ml_collections

from configs import vocoder


def get_config() -> ml_collections.ConfigDict:
  config = vocoder.get_config()
  config.data.crop_samples = 16_384
  config.data.num_validation_clips = 8
  config.data.validation_clip_seconds = 10.0
  config.model.variant = 'base'
  config.model.magnitude_prior = False  # Vocos as published: the magnitude from the mel alone,
  config.model.phase_prior_iterations = 0  # and the phase too.
  config.model.period_discriminator_channels = (32, 128, 512, 1024)
  config.model.resolution_discriminator_channels = (32, 32, 32, 32)
  config.loss.adversarial_start_step = 0  # Vocos trains adversarially from the first step.
  config.train.num_steps = 1_000_000
  config.train.batch_size = 16
  config.train.warmup_steps = 1_000
  config.train.eval_every_steps = 10_000
  config.train.checkpoint_every_steps = 5_000
  config.train.log_every_steps = 200
  return config
