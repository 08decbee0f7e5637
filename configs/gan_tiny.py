r"""configs/gan.py shrunk for tests and the demo: a minute on a laptop CPU.

  python -m melodygan_jax.train --config=configs/gan_tiny.py --workdir=demo/gan \
      --config.vqvae_workdir=demo/vqvae
"""
import ml_collections

from configs import gan


def get_config() -> ml_collections.ConfigDict:
  config = gan.get_config()
  config.data.crop_steps = 32  # 128 frames with the tiny VQ-VAE's stride 4.
  config.model.noise_dim = 16
  config.model.noise_channels = 8
  config.model.generator_width = 64
  config.model.generator_dilations = (1, 2, 4, 8, 1)  # Receptive field 33 codes.
  config.model.discriminator_width = 64
  config.model.discriminator_dilations = (1, 2, 4)
  config.model.discriminator_scales = 2
  config.train.num_steps = 2_000
  config.train.batch_size = 32
  config.train.generator_learning_rate = 5e-4
  config.train.discriminator_learning_rate = 1e-3
  config.train.generator_ema_decay = 0.9  # 2,000 steps: a short memory samples better.
  config.loss.code_usage_weight = 10.0  # Tuned on the demo corpus: code use at the real floor.
  config.train.log_every_steps = 250
  config.train.eval_every_steps = 1_000
  config.train.checkpoint_every_steps = 1_000
  config.train.num_eval_samples = 256
  return config
