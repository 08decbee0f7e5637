r"""Vocos-style neural vocoder on crops of a prepared data set's cleaned audio.

  python -m melodygan_jax.train --config=configs/vocoder.py --workdir=runs/vocoder \
      --config.data.dataset_dir=data/
  python -m melodygan_jax.reconstruct --vocoder_workdir=runs/vocoder --input=song.mp3 \
      --output=song_vocoder.wav        # copy synthesis: the song's own mel, re-synthesized
  python -m melodygan_jax.train --config=configs/vocoder.py --workdir=runs/vocoder_codec \
      --config.data.dataset_dir=data/ --config.vqvae_workdir=runs/vqvae \
      --config.init_vocoder_workdir=runs/vocoder \
      --config.model.mel_refinement_iterations=0   # fine-tune on the codec's decoded mels

The CPU default: a 4-block, 128-wide ConvNeXt over mel frames with an
inverse-STFT head at the contract's n_fft 1024 / hop 256 (0.78 M parameters)
that corrects the mel's least-squares inverse magnitude (FreeV's prior) and
the phase fast Griffin-Lim finds for it (so it starts as Griffin-Lim),
trained on 8,192-sample crops (0.37 s), reconstruction losses alone at first,
then against small multi-period and multi-resolution discriminators.
configs/vocoder_large.py is Vocos' own size for accelerators.
"""
import ml_collections

from configs import common


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.trainer = 'vocoder'
  config.seed = 0
  # A finished configs/vqvae.py run: fine-tune on its decoded mels (what sampling
  # feeds the vocoder) instead of the true ones. Empty: true mels.
  config.vqvae_workdir = ''
  # A finished vocoder run whose generator and discriminators start this one
  # (e.g. before fine-tuning on a codec). Empty: a fresh initialization.
  config.init_vocoder_workdir = ''

  config.data = ml_collections.ConfigDict()
  config.data.dataset_dir = ''  # A data_prep.prepare --output_dir: its clean/ WAVs are read.
  config.data.crop_samples = 8_192  # Per example; a multiple of the hop (256).
  config.data.num_validation_clips = 4  # Held-out songs, one clip from the middle of each.
  config.data.validation_clip_seconds = 4.0
  # The training songs as 16-bit PCM in device memory, cropped inside the step
  # ('device'), read crop by crop from the WAVs ('host'), or 'auto' (device on a
  # GPU or TPU when they fit, host on a CPU; training/device_data.py).
  config.data.placement = 'auto'

  config.model = ml_collections.ConfigDict()
  config.model.variant = 'cpu'  # models/vocoder.py VARIANTS: tiny, cpu, base.
  config.model.dtype = 'auto'  # Generator compute: bfloat16 on GPU/TPU, float32 on CPU.
  # The head corrects the log of the mel's NNLS inversion instead of predicting the
  # magnitude from nothing (FreeV): a CPU's few thousand steps go to phase and detail.
  config.model.magnitude_prior = True
  # The head also corrects the phase fast Griffin-Lim finds in this many iterations
  # (0: the phase from nothing, as Vocos). An untrained model is then Griffin-Lim
  # itself, and a CPU's training budget goes to doing better than it.
  config.model.phase_prior_iterations = 32
  config.model.phase_prior_start = 'random'  # Or 'peak_locked' (inversion.peak_locked_phase).
  # At inference, the generator's STFT is refined this many steps into a waveform whose
  # mel is the one it was given (inversion.mel_consistent: Griffin-Lim's projections onto
  # the spectra with that mel); the training losses see the generator's own output
  # unless loss.refinement_iterations (below) refines it in the step too.
  config.model.mel_refinement_iterations = 32
  # A 2-D conv net over (frames, bins) after the head, correcting each bin's magnitude
  # and phase from its neighbours (models/vocoder.py SpectralRefiner); 0: none.
  config.model.refiner_channels = 0
  config.model.refiner_dilations = (1, 2, 4)  # Along frequency, one layer each.
  # Widths of the stride-3 convs of each period discriminator (periods 2, 3, 5, 7, 11).
  config.model.period_discriminator_channels = (16, 32, 64, 128)
  # Widths of the convs of each spectrogram discriminator (FFT 512, 1024, 2048).
  config.model.resolution_discriminator_channels = (8, 8, 8)

  config.loss = ml_collections.ConfigDict()
  config.loss.mel_weight = 45.0  # Vocos, HiFi-GAN: the mel L1 carries the early training.
  # Parallel WaveGAN's multi-resolution STFT loss (spectral convergence + log-magnitude
  # L1): the linear spectrum's detail, which a mel loss cannot see.
  config.loss.stft_weight = 5.0
  # L1 of the head's log-magnitude against the crop's own STFT (APNet's amplitude
  # loss): with the NNLS magnitude the bulk of Griffin-Lim's error is in the magnitude.
  config.loss.magnitude_weight = 5.0
  # APNet's anti-wrapped phase losses (instantaneous phase, group delay, instantaneous
  # frequency) against the crop's own STFT phase, weighted by its magnitude. 0: none.
  config.loss.phase_weight = 0.0
  # > 0: the mel, MR-STFT and adversarial losses hear the output after this many mel-refinement
  # steps (model.mel_refinement_iterations, what inference plays). 0: the network's own.
  config.loss.refinement_iterations = 0
  # Reconstruction losses alone before this step (Vocos' pretrain_mel_steps): on a
  # CPU the warm-up steps run ~5x faster than the adversarial ones.
  config.loss.adversarial_start_step = 3_000
  config.loss.resolution_weight = 0.1  # Vocos' mrd_loss_coeff, on its hinge and matching terms.
  config.loss.feature_matching_weight = 1.0

  config.train = common.train_config()
  config.train.num_steps = 8_000  # ~45 min on a 2-core CPU (README: the curve flattens).
  config.train.batch_size = 8
  config.train.learning_rate = 5e-4  # Vocos' initial rate.
  config.train.discriminator_learning_rate = 5e-4
  config.train.warmup_steps = 200
  config.train.end_learning_rate_fraction = 0.1  # Cosine decay ends at this share of the peak.
  config.train.weight_decay = 0.01  # AdamW's default.
  config.train.grad_clip_norm = 100.0  # Only against a rare spike: the hinge terms are bounded.
  config.train.log_every_steps = 50
  config.train.eval_every_steps = 1_000
  config.train.checkpoint_every_steps = 500
  # Locked: a variant or override that names a field that does not exist fails at once.
  return config.lock()
