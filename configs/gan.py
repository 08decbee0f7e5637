r"""Latent GAN: generates VQ-VAE code sequences that decode to new music.

  python -m melodygan_jax.train --config=configs/gan.py --workdir=runs/gan \
      --config.vqvae_workdir=runs/vqvae

The data are the frozen VQ-VAE's codes of its own data set, encoded once and
cached in WORKDIR/latents.npz. A training example is a crop of
data.crop_steps consecutive codes: 224 codes of the stride-4 VQ-VAE, 896
frames, 10.4 s, long enough for phrases and not just texture. A crop may span
several stored segments (64 codes each with the default --segment_frames=256):
the cache joins the codes of consecutive segments of one file into runs, and a
crop lies inside one run. A crop longer than every run fails with one line.

The generator's dilations span 285 codes (it sees the whole crop); the
discriminator judges the crop at 4 time scales (pooled by 1, 2, 4, 8), its
coarsest spanning 296 codes.
"""
import ml_collections

from configs import common


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.trainer = 'gan'
  config.seed = 0
  config.vqvae_workdir = ''  # A finished configs/vqvae.py run (required).
  config.data = common.data_config()
  config.data.stems = ()  # Empty: the VQ-VAE's stems. dataset_dir '' : the VQ-VAE's data.
  del config.data['crop_frames']  # The GAN crops codes, not frames:
  config.data.crop_steps = 224  # Codes per training crop (10.4 s); also the sampling window.
  # Which crops a batch draws: 'time' (every position alike: a long song is drawn more
  # often) or 'song' (every song alike, as evaluate's clips are, then a position in it).
  config.data.crop_balance = 'time'

  config.model = ml_collections.ConfigDict()
  config.model.noise_dim = 128  # Global noise: what stays the same along a sample.
  config.model.noise_channels = 32  # Per-step noise: what changes along it.
  # Steps (odd) of a moving mean over the per-step noise: changes slower than a step. 1: off.
  config.model.noise_smoothing = 1
  config.model.generator_width = 256
  # Receptive field 1 + 2 * sum = 285 codes: at least data.crop_steps (checked).
  config.model.generator_dilations = (1, 2, 4, 8, 16, 32, 64, 1, 2, 4, 8)
  # (min, max) beat period in codes: the generator also gets a beat clock, sin and cos of
  # the `beat_cycles` (in beats: 0.5 eighth notes, 1 beats, 4 bars) of a tempo drawn per
  # sample (models/gan.py's BeatClock). (): none.
  config.model.beat_periods = ()
  config.model.beat_cycles = (0.5, 1.0)
  config.model.output = 'snap'  # 'snap' (nearest code) or 'gumbel' (straight-through softmax).
  config.model.gumbel_temperature = 1.0  # 'gumbel' only.
  # 'snap' only: softness of the code assignment the code-usage loss sees, in units
  # of the codebook's spread (low: close to the hard codes that are counted).
  config.model.snap_temperature = 0.05
  config.model.discriminator_width = 256
  config.model.discriminator_dilations = (1, 2, 4, 8, 1, 2)  # 37 codes at each scale...
  config.model.discriminator_scales = 4  # ...of the sequence pooled by 1, 2, 4, 8: 296 codes.
  # (min, max) lags in codes: a discriminator that judges only the autocorrelations of onset
  # envelopes it learns, at these lags (models/gan.py's RhythmDiscriminator). (): none.
  config.model.rhythm_lags = ()
  # (min, max) lags in codes: a discriminator that judges only how alike the crop's steps
  # are at these lags, in embeddings of a step it learns (models/gan.py's
  # SimilarityDiscriminator): held pitches, bars that come back. (): none.
  config.model.similarity_lags = ()
  # > 0: the generator follows the onset envelope of a stretch of the training songs,
  # drawn from a bank of this many codes of them (models/gan.py RhythmBank) instead of
  # the beat clock. 0: off.
  config.model.rhythm_bank_steps = 0
  # Onset strengths a code of that rhythm: 1, the mean over the code's frames; the VQ-VAE's
  # time stride, each frame, so the generator also knows where in its code an onset falls.
  config.model.rhythm_frames = 1
  # Random context masking: the share of training examples whose generator is handed a
  # real prefix of the crop (up to max_context_fraction of it) to continue. 0: an
  # unconditional generator (continuation then projects the prompt onto its noise). 0.9
  # continues prompts best; the fewer free examples, the worse free samples (README).
  config.model.context_probability = 0.0
  config.model.max_context_fraction = 0.75  # Also the most of a prompt one window holds.
  config.model.dtype = 'auto'  # Compute dtype: bfloat16 on GPU/TPU, float32 on CPU.

  config.loss = ml_collections.ConfigDict()
  config.loss.kind = 'non_saturating'  # Or 'hinge'.
  config.loss.r1_gamma = 1.0  # R1 penalty on real latents (Mescheder et al. 2018).
  config.loss.instance_noise = 0.5  # Gaussian noise on D's inputs (x codebook std): without
  # it D separates exact codebook vectors perfectly and G gets no useful gradient.
  config.loss.code_usage_weight = 3.0  # KL(data code frequencies || generated ones).
  # With context masking: the continuation's mean and std of latents against the real
  # one's (3.0 measured better than 0 and 10; README).
  config.loss.context_moment_weight = 3.0
  # With rhythm_lags: the generator also matches the batch mean of the rhythm
  # discriminator's autocorrelations on real crops (feature matching). 0: off.
  config.loss.rhythm_matching_weight = 0.0
  # With similarity_lags: the same feature matching on the similarity judge's view. 0: off.
  config.loss.similarity_matching_weight = 0.0
  # With rhythm_bank_steps: the generator puts onsets where its envelope has them, as an
  # onset regressor trained on real crops (beside the discriminator) reads them. 0: off.
  config.loss.onset_following_weight = 0.0

  config.train = common.train_config()
  config.train.num_steps = 100_000
  config.train.batch_size = 64
  config.train.generator_learning_rate = 1e-4
  config.train.discriminator_learning_rate = 3e-4  # Faster D: two time-scale rule.
  config.train.adam_b1 = 0.0  # GANs: no momentum in the first moment.
  config.train.adam_b2 = 0.99
  config.train.learning_rate_decay = 'none'  # Or 'linear': both rates to 0 at num_steps.
  config.train.generator_ema_decay = 0.999  # The EMA generator is the one sampled.
  config.train.num_eval_samples = 256
  # Pieces of 10 s decoded, inverted and analysed at each eval for their pulse and
  # harmony beside held-out crops (eval/music/*; gan_trainer.py). 0: off.
  config.train.music_profile_clips = 0
  # `python -m melodygan_jax.sweep`: scored by the Fréchet distance of generated to
  # held-out real code sequences.
  config.sweep = common.sweep_config(metric='eval/latent_frechet')
  config.sweep.space.train = {'generator_learning_rate': 'log_uniform(3e-5, 1e-3)',
                              'discriminator_learning_rate': 'log_uniform(3e-5, 3e-3)'}
  config.sweep.space.loss = {'r1_gamma': 'log_uniform(0.1, 10.0)',
                             'code_usage_weight': 'uniform(0.0, 10.0)'}
  # Locked: a variant or override that names a field that does not exist fails at once.
  return config.lock()
