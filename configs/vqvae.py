r"""VQ-VAE on log-mel crops: the codebook every later stage speaks.

  python -m melodygan_jax.train --config=configs/vqvae.py --workdir=runs/vqvae \
      --config.data.dataset_dir=data/
  python -m melodygan_jax.train --config=configs/vqvae.py --workdir=runs/vqvae \
      --config.data.dataset_dir=data/ --config.model.dtype=float32   # no bf16 on GPU/TPU
  python -m melodygan_jax.sweep --config=configs/vqvae.py --workdir=sweeps/vqvae \
      --study_name=vqvae --num_trials=20 --config.data.dataset_dir=data/ \
      --config.train.num_steps=2000 --config.train.eval_every_steps=250

A [batch, 128, 128] crop (frames, mels: full band, 0-11,025 Hz) becomes
[batch, 32, 64] latents (time stride 4), each vector a sum of one of 1,024 codes
from each of 8 residual levels: [batch, 32, 8] codes, 80 bits per 11.6 ms step,
1,723 bit/s. Decoding the first n levels alone gives n/8 of that bit rate.
"""
import ml_collections

from configs import common


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.trainer = 'vqvae'
  config.seed = 0
  config.data = common.data_config()

  config.model = ml_collections.ConfigDict()
  config.model.widths = (256, 256, 256)  # Channels at each time resolution.
  config.model.strides = (2, 2)  # Time downsampling per stage; total stride 4.
  config.model.num_res_blocks = 2  # Per resolution, encoder and decoder alike.
  config.model.num_levels = 8  # Residual quantizer levels (SoundStream, EnCodec, DAC).
  config.model.codebook_size = 1024  # Per level: 10 bits per level per step.
  config.model.codebook_dim = 64
  # > 0: DAC's factorized lookup, by cosine in this many dimensions per level
  # (models/residual_quantizer.py); 0: Euclidean in codebook_dim. 8: held-out
  # SC 0.413 after 2,000 steps against 0.333, level 1's held-out use 75% against 70%.
  config.model.lookup_dim = 0
  # Share of examples trained with a random 1..num_levels levels (DAC: 0.5), so
  # every prefix of the levels decodes well: one model, several bit rates.
  config.model.quantizer_dropout = 0.5
  config.model.ema_decay = 0.99  # Codebook EMA; ~100 steps of memory.
  config.model.commitment_cost = 0.25  # Beta in the VQ-VAE paper; summed over levels.
  config.model.kmeans_init_batches = 4  # First batches whose encodings seed k-means.
  config.model.usage_window_steps = 100  # Codes unused this long are dead...
  config.model.restart_every_steps = 100  # ...and restarted this often.
  # Multi-scale 2-D patch discriminator on the normalized log-mel (VQGAN-style).
  config.model.discriminator_channels = (16, 32, 64)  # 4x4 stride-2 convs per scale.
  config.model.discriminator_scales = 3  # Input, then average-pooled by 2 and 4.
  config.model.dtype = 'auto'  # Compute dtype: bfloat16 on GPU/TPU, float32 on CPU.

  config.loss = ml_collections.ConfigDict()
  config.loss.l1_weight = 1.0  # On normalized log-mel.
  config.loss.mse_weight = 1.0
  # On mel magnitudes: weighs the loud parts of the spectrum, as the ear does.
  # 2.0 with a 5e-4 peak rate: held-out SC 0.333 after 2,000 steps (1.0 with 3e-4: 0.362).
  config.loss.spectral_convergence_weight = 2.0
  # Relative L1 between the onset envelopes (spectral flux) of input and output:
  # the beat evaluate measures is that envelope's periodicity. 0: off. On the 4-hour
  # schedule (6,417 steps) 1.0 keeps the songs' pulse (0.518 against their 0.516; off:
  # 0.482) and their onsets (envelope correlation 0.949 against 0.795) for held-out SC
  # 0.300 against 0.270 (benchmarks/codec_onset_probe.py, docs/create.md).
  config.loss.onset_envelope_weight = 1.0
  # Reconstruction alone first: a discriminator facing blurry early outputs
  # wins at once and teaches nothing (VQGAN's disc_start).
  config.loss.adversarial_start_step = 1_000
  config.loss.adversarial_weight = 0.05  # Hinge loss of the codec against the discriminator.
  config.loss.feature_matching_weight = 0.5  # EnCodec's relative L1 on discriminator features.

  config.train = common.train_config()
  config.train.learning_rate = 5e-4
  config.train.warmup_steps = 200  # Of 2,000 CPU steps, 1,000 of warm-up left half unused.
  config.train.end_learning_rate = 3e-5  # Cosine decay ends here.
  config.train.grad_clip_norm = 1.0
  config.train.discriminator_learning_rate = 3e-4  # Constant; Adam betas (0.5, 0.9).
  # `python -m melodygan_jax.sweep`: scored by held-out reconstruction MSE.
  config.sweep = common.sweep_config(metric='eval/mse')
  config.sweep.space.train = {'learning_rate': 'log_uniform(1e-4, 3e-3)'}
  config.sweep.space.model = {'codebook_size': 'choice(256, 512, 1024)',
                              'num_res_blocks': 'int(1, 3)',  # Depth, per resolution.
                              'commitment_cost': 'log_uniform(0.05, 1.0)'}
  # Locked: a variant or override that names a field that does not exist fails at once.
  return config.lock()
