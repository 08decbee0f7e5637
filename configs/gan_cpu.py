r"""configs/gan.py sized for a 2-core CPU budget, with the context a beat needs.

  python -m melodygan_jax.train --config=configs/gan_cpu.py --workdir=runs/gan \
      --config.vqvae_workdir=runs/vqvae

`create --preset=cpu` trains it. configs/gan_tiny.py (tests, demo) crops 32
codes, 1.5 s, and its generator sees 33 codes: a beat of 0.5 s shows up
three times in a crop and a bar not once, so neither its generator nor its
discriminator can hold a pulse. Here a crop is 96 codes (4.5 s: two bars at
107 bpm), the generator sees 141 codes and the discriminator judges the crop at
3 scales, its coarsest spanning 148 codes, at gan_tiny's width.

The generator also gets a beat clock (sin and cos of the eighth notes and
beats of a tempo of 80-160 bpm drawn per sample: 8-16 codes a beat) and the
discriminator a rhythm judge (the autocorrelations, at 4-48 codes, of onset
envelopes it learns), which the generator also matches (feature matching).

Measured on the Debian soundtracks' held-out songs (5 of 47 files, 15% by path; codec
configs/vqvae.py at 1,000 steps; `python -m melodygan_jax.evaluate
--clip_seconds=10 --max_clips=120 --num_visqol=0`, 39 clips of 10 s a set),
each GAN at 1,000 steps on that codec:
                        KAD                pulse clarity      chroma stab.  bar rep.  memorised
  real (floor)          23.6 [16.9, 29.0]  0.60 [0.56, 0.64]  0.56          0.18
  codec reconstruction  31.0 [24.2, 37.6]  0.59 [0.54, 0.63]  0.53          0.19
  without clock, rhythm 48.2 [41.6, 54.7]  0.15 [0.14, 0.17]  0.66          0.18      0%
  this config           44.6 [37.4, 51.5]  0.19 [0.17, 0.21]  0.59          0.18      0%
  matching x100         48.6 [42.0, 55.7]  0.22 [0.20, 0.23]  0.61          0.18      0%
  clock with bars too   55.2 [47.2, 63.2]  0.19 [0.18, 0.21]  0.51          0.52      3%
  i.i.d. codes          50.7 [45.8, 56.6]  0.13 [0.12, 0.14]  0.07          0.10      0%
The clock and the rhythm judge lift the pulse a quarter above the plain GAN's
and bring KAD down with it; a stronger rhythm matching (rhythm_matching_weight
100) trades KAD for pulse; a clock with half-bar and bar cycles as well
(beat_cycles=(0.5, 1, 2, 4)) makes every bar repeat (0.52 against the songs'
0.18) and is further from them by KAD. The beat is still far from the songs'
(docs/create.md, "Where the beat goes").
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
  config.model.beat_periods = (8.0, 16.0)  # 160-80 bpm at 21.3 codes/s.
  config.model.beat_cycles = (0.5, 1.0)  # Eighth notes and beats; bars would repeat.
  config.model.rhythm_lags = (4, 48)  # 0.19-2.25 s: from eighth notes to a 4/4 bar at 107 bpm.
  config.loss.rhythm_matching_weight = 30.0
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
