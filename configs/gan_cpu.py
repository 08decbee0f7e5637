r"""configs/gan.py sized for a 2-core CPU budget, with the context a beat needs.

  python -m melodygan_jax.train --config=configs/gan_cpu.py --workdir=runs/gan \
      --config.vqvae_workdir=runs/vqvae

`create --preset=cpu` trains it. configs/gan_tiny.py (tests, demo) crops 32
codes, 1.5 s, and its generator sees 33 codes: a beat of 0.5 s shows up
three times in a crop and a bar not once, so neither its generator nor its
discriminator can hold a pulse. Here a crop is 96 codes (4.5 s: two bars at
107 bpm), the generator sees 141 codes and the discriminator judges the crop at
3 scales, its coarsest spanning 148 codes, at gan_tiny's width.

Measured on the Debian soundtracks' held-out songs (18 files; codec
configs/vqvae.py at 1,000 steps; `python -m melodygan_jax.evaluate
--clip_seconds=10 --max_clips=120`, 55 clips of 10 s a set), each GAN at
1,000 steps:
                    KAD                pulse clarity     bar repetition  harmonic share
  real (floor)      3.2 [0.8, 5.9]     0.50 [0.44, 0.56]  0.17           0.69
  gan_tiny          37.8 [33.8, 42.4]  0.14 [0.13, 0.14]  0.14           0.66
  this config       28.5 [24.3, 34.1]  0.15 [0.14, 0.16]  0.17           0.74
  i.i.d. codes      34.0 [30.7, 37.2]  0.14 [0.13, 0.15]  0.11           0.41
Closer to real music by KAD and bar repetition, but the beat is not there yet:
its pulse clarity is still that of i.i.d. codes. A step does about 3x
gan_tiny's work (the same widths over 3x longer crops).
"""
import ml_collections

from configs import gan


def get_config() -> ml_collections.ConfigDict:
  config = gan.get_config()
  config.data.crop_steps = 96  # 384 frames of the stride-4 VQ-VAE, 4.5 s.
  config.model.noise_dim = 32
  config.model.noise_channels = 16
  config.model.generator_width = 64
  config.model.generator_dilations = (1, 2, 4, 8, 16, 32, 1, 2, 4)  # Receptive field 141.
  config.model.discriminator_width = 64
  config.model.discriminator_dilations = (1, 2, 4, 8, 1, 2)  # 37 codes at each scale...
  config.model.discriminator_scales = 3  # ...of the crop pooled by 1, 2, 4: 148 codes.
  config.train.num_steps = 2_000  # `create` sets the steps its budget allows.
  config.train.batch_size = 32
  config.train.generator_learning_rate = 5e-4
  config.train.discriminator_learning_rate = 1e-3
  config.train.generator_ema_decay = 0.99  # A few thousand steps: a short memory.
  config.train.log_every_steps = 250
  config.train.eval_every_steps = 1_000
  config.train.checkpoint_every_steps = 500
  config.train.num_eval_samples = 128
  return config
