r"""configs/vqvae.py widened for GPUs and TPUs: twice the width, more levels, bigger batches.

  python -m melodygan_jax.train --config=configs/vqvae_large.py --workdir=runs/vqvae_large \
      --config.data.dataset_dir=data/

12 residual levels of 1,024 codes at stride 4: 2,584 bit/s (decode the first
8 for the default's 1,723). Not yet measured: no accelerator was available when
it was written; on a 2-core CPU a step takes several seconds.
"""
import ml_collections

from configs import vqvae


def get_config() -> ml_collections.ConfigDict:
  config = vqvae.get_config()
  config.model.widths = (512, 512, 512)
  config.model.num_res_blocks = 3
  config.model.num_levels = 12
  config.model.discriminator_channels = (32, 64, 128, 256)
  config.model.dtype = 'bfloat16'  # Parameters stay float32.
  config.data.crop_frames = 256  # 2.97 s: the default prepared segment.
  config.train.batch_size = 128  # Global; divisible by 8 GPUs or a v4-32's 16 chips.
  config.train.warmup_steps = 2_000
  config.loss.adversarial_start_step = 10_000
  return config
