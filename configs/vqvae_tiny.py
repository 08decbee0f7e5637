r"""configs/vqvae.py shrunk for tests and the demo: seconds per hundred steps on a CPU.

  python -m melodygan_jax.train --config=configs/vqvae_tiny.py --workdir=demo/vqvae \
      --config.data.dataset_dir=demo/data
"""
import ml_collections

from configs import vqvae


def get_config() -> ml_collections.ConfigDict:
  config = vqvae.get_config()
  config.data.crop_frames = 32
  config.data.shuffle_buffer = 256
  config.model.widths = (32, 48, 64)
  config.model.num_res_blocks = 1
  config.model.num_levels = 3
  config.model.codebook_size = 64
  config.model.codebook_dim = 16
  config.model.usage_window_steps = 20
  config.model.restart_every_steps = 20
  config.model.discriminator_channels = (4, 8)
  config.model.discriminator_scales = 2
  config.loss.adversarial_start_step = 100
  # The weight the tiny runs (tests, demo) were tuned at; configs/vqvae.py's 2.0
  # was chosen at full size on real music.
  config.loss.spectral_convergence_weight = 1.0
  config.train.num_steps = 3_000
  config.train.batch_size = 16
  config.train.learning_rate = 2e-3
  config.train.warmup_steps = 20
  config.train.end_learning_rate = 2e-4
  config.train.log_every_steps = 250
  config.train.eval_every_steps = 1_000
  config.train.checkpoint_every_steps = 1_000
  config.sweep.space.train.learning_rate = 'log_uniform(3e-4, 1e-2)'
  config.sweep.space.model.codebook_size = 'choice(32, 64)'
  config.sweep.space.model.num_res_blocks = 'int(1, 2)'
  return config
