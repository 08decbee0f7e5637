r"""configs/vocoder.py with the spectral refiner: the design that keeps learning on a CPU.

  python -m melodygan_jax.train --config=configs/vocoder_refiner.py --workdir=runs/vocoder \
      --config.data.dataset_dir=data/

The default's head maps each frame's 128 numbers to all 513 bins' corrections of
the Griffin-Lim prior, and its curve flattens within a few hundred steps; a 2-D
conv net over (frames, bins) after it (models/vocoder.py SpectralRefiner, Deep
Griffin-Lim Iteration's denoiser) corrects each bin from its neighbours, and
with the mel L1 at x1 instead of x45 (the NNLS prior already meets the mel; the
inference refinement restores it) the network trades it for the linear
spectrum's detail. Reconstruction losses only: 18,000 steps, about 2 hours on a
2-core CPU (2.7 steps/s).
"""
import ml_collections

from configs import vocoder


def get_config() -> ml_collections.ConfigDict:
  config = vocoder.get_config()
  config.data.num_validation_clips = 8
  config.model.refiner_channels = 16
  config.loss.mel_weight = 1.0
  config.train.num_steps = 18_000
  config.loss.adversarial_start_step = config.train.num_steps  # Never reached.
  config.train.eval_every_steps = 1_000
  config.train.checkpoint_every_steps = 1_000
  return config
