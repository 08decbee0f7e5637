r"""configs/gan.py sized for a 2-core CPU budget, with the context and the rhythm a beat needs.

  python -m melodygan_jax.train --config=configs/gan_cpu.py --workdir=runs/gan \
      --config.vqvae_workdir=runs/vqvae

`create --preset=cpu` trains it. configs/gan_tiny.py (tests, demo) crops 32
codes, 1.5 s, and its generator sees 33 codes: a beat of 0.5 s shows up
three times in a crop and a bar not once. Here a crop is 96 codes (4.5 s: two
bars at 107 bpm), the generator sees 141 codes and the discriminator judges the
crop at 3 scales, its coarsest spanning 148 codes, at gan_tiny's width.

The generator follows a rhythm drawn from the training songs: the onset
envelope of a stretch of them (a bank of 65,536 codes, 51 minutes; models/gan.py
RhythmBank), which the discriminator sees beside the codes, real and generated
alike; it plays its own timbre and harmony on it. The discriminator also has a
rhythm judge (the autocorrelations, at 4-48 codes, of onset envelopes it learns),
which the generator matches (feature matching).

Measured on the Debian soundtracks' held-out songs (5 of 47 files, 15% by path; codec
configs/vqvae.py at 1,000 steps; `python -m melodygan_jax.evaluate
--clip_seconds=10 --max_clips=120 --num_visqol=0`, 39 clips of 10 s a set),
each GAN at 1,000 steps on that codec:
                        KAD                pulse clarity      chroma stab.  bar rep.  memorised
  real (floor)          23.6 [16.9, 29.0]  0.60 [0.56, 0.64]  0.56          0.18
  codec reconstruction  31.0 [24.2, 37.6]  0.59 [0.54, 0.63]  0.53          0.19
  this config           39.1 [32.7, 46.2]  0.46 [0.40, 0.52]  0.61          0.16      5%
  a beat clock instead  44.6 [37.4, 51.5]  0.19 [0.17, 0.21]  0.59          0.18      0%
  neither               48.2 [41.6, 54.7]  0.15 [0.14, 0.17]  0.66          0.18      0%
  i.i.d. codes          50.7 [45.8, 56.6]  0.13 [0.12, 0.14]  0.07          0.10      0%
The songs' rhythm more than doubles the pulse of a beat clock (a sin/cos grid of
a random tempo, model.beat_periods, which this config no longer uses) and brings
KAD down to the edge of significance against i.i.d. codes (docs/create.md, "A
rhythm from the songs").

Onset following (loss.onset_following_weight): an onset regressor beside the
discriminator learns, on real crops, the onset envelope of each code, and the
generator is pulled to put onsets where its envelope has them. On the 1-hour
create run's codec (95 songs, 30 held out; 626 steps each, one seed; create's own
`evaluate --clip_seconds=10 --max_clips=93 --max_training_clips=240`):
                        KAD                FAD-inf  pulse clarity      chroma stab.  bar rep.  memorised
  real (floor)          2.4 [-0.1, 5.2]    29.6     0.62 [0.57, 0.67]  0.49          0.21
  without following     22.9 [19.2, 27.0]  62.6     0.42 [0.37, 0.46]  0.40          0.17      2.2%
  following, weight 3   18.6 [14.7, 22.5]  55.8     0.48 [0.43, 0.53]  0.39          0.22      2.2%
  + noise smoothing 9   18.2 [14.9, 21.8]  53.7     0.48 [0.43, 0.53]  0.46          0.14      4.3%
    the same, seed 1    15.8 [13.1, 18.8]  46.1     0.46 [0.41, 0.50]  0.48          0.13      4.3%
  i.i.d. codes          37.0 [32.2, 41.6]  82.5     0.12 [0.12, 0.13]  0.03          0.11
Noise smoothing (model.noise_smoothing, a moving mean of the per-step noise over 9
codes) lifts chroma stability to near the codec reconstructions' 0.49: held tones;
bar repetition falls below the songs' (0.14 against 0.21). create's own 1-hour run of this
config, with the GAN given 60% of the training time (1,118 steps on a 697-step codec):
KAD 15.4 [12.9, 18.4], pulse 0.49 [0.44, 0.53], chroma stability 0.54 [0.49, 0.59],
6.5% memorised; with 45% (541 steps on 798): KAD 24.0, pulse 0.47, chroma 0.32
(docs/create.md, "Measured at 1 hour on real songs"). The same GAN sampled with each
piece's rhythm from one song (RhythmBank's starts): pulse 0.53 [0.49, 0.57], bar
repetition 0.17, 2.2% memorised (docs/create.md, "One song's rhythm a piece").

Rhythm frames (model.rhythm_frames = 4): the envelope holds each of a code's 4
frames, not their mean, so the generator knows where in its code an onset falls.
On the same codec, 1,118 steps each (docs/create.md, "Where in its code an onset
falls"): pulse clarity 0.53 -> 0.58 [0.52, 0.61] (the songs' 0.62 [0.57, 0.67]),
tempo stability 0.75 -> 0.83 (0.86), chroma stability 0.50 -> 0.41 (codec 0.47),
KAD 16.6 -> 15.6, 2.2% memorised.

create's own 1-hour run on another pick of songs (92, 7.2 h, 31 held out; docs/create.md,
"The preset as it is now"; 1,628 steps on a 1,511-step codec): KAD 11.5 (codec 10.4, i.i.d.
codes 26.4), pulse clarity 0.53 (songs 0.47 [0.41, 0.54]), chroma stability 0.43 (codec
0.62), 6.7% memorised. On that codec the rhythm as each code's mean gives pulse 0.47 and
chroma 0.40, noise smoothing over 17 codes pulse 0.54 and chroma 0.45: the harmony the songs
have is held back by neither. Nor by what this config leaves off (docs/create.md, "Which
songs the figures weigh"; held-out songs over both halves 0.55, the codec's copies 0.57): the
rhythm judge from lag 1 gives chroma 0.44, the similarity judge (model.similarity_lags=(1, 48),
loss.similarity_matching_weight=30) 0.43, crops drawn song by song (data.crop_balance='song')
0.41 and KAD 14.2, a generator twice as wide (900 steps in 19 minutes) 0.43 and KAD 13.6.

Sampled at the run's style strength (runs/style_strength.py: the global noise scaled until
the pieces change their first-level code as often as the training codes do), the same 1-hour
run's GAN (strength 2.33) holds its harmony: chroma stability 0.43 -> 0.58 [0.51, 0.64] (codec
0.57), harmonic share 0.65 -> 0.74 (songs 0.74), pulse 0.51, 4.4% memorised, KAD 11.5 -> 15.2
[10.2, 20.4] (docs/create.md, "How strongly a piece keeps its character").
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
  config.model.rhythm_bank_steps = 65_536  # 51 min of the songs' onset envelopes.
  config.model.rhythm_frames = 4  # Each frame of a code: pulse 0.53 -> 0.58 (docstring).
  config.model.rhythm_lags = (4, 48)  # 0.19-2.25 s: from eighth notes to a 4/4 bar at 107 bpm.
  config.loss.rhythm_matching_weight = 30.0
  config.loss.onset_following_weight = 3.0  # KAD 22.9 -> 18.6, pulse 0.42 -> 0.48 (docstring).
  config.model.noise_smoothing = 9  # 0.42 s: chroma stability 0.39 -> 0.46 (docstring).
  config.train.num_steps = 2_000  # `create` sets the steps its budget allows.
  config.train.batch_size = 32
  config.train.generator_learning_rate = 5e-4
  config.train.discriminator_learning_rate = 1e-3
  config.train.generator_ema_decay = 0.99  # A few thousand steps: a short memory.
  config.train.log_every_steps = 250
  config.train.eval_every_steps = 1_000
  config.train.checkpoint_every_steps = 500
  config.train.num_eval_samples = 128
  config.train.music_profile_clips = 16  # Pulse and harmony at the final eval (~40 s).
  # `python -m melodygan_jax.sweep --config=configs/gan_cpu.py ...`: each trial trains
  # 10 minutes of this machine and is scored by the pulse and harmony of its pieces.
  config.sweep.metric = 'eval/music/profile_gap'
  config.sweep.pruner = 'none'  # One evaluation, at the end.
  config.sweep.train_seconds = 600.0
  with config.unlocked():
    config.sweep.space.train = {'generator_learning_rate': 'log_uniform(2e-4, 2e-3)',
                                'discriminator_learning_rate': 'log_uniform(3e-4, 3e-3)',
                                'batch_size': 'choice(16, 32, 64)'}
    config.sweep.space.loss = {'rhythm_matching_weight': 'uniform(0.0, 60.0)',
                               'onset_following_weight': 'uniform(0.0, 10.0)',
                               'r1_gamma': 'log_uniform(0.3, 3.0)'}
  return config
