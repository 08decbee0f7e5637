"""Log-mel spectrograms as RGB images, for TensorBoard and the listening page."""
import numpy as np


def spectrogram_image(log_mel: np.ndarray, low: float, high: float) -> np.ndarray:
  """[frames, mels] log-mel -> [mels, frames, 3] uint8, low mels at the bottom."""
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  scaled = np.clip((np.asarray(log_mel, np.float32) - low) / max(high - low, 1e-6), 0.0, 1.0)
  rgb = colormaps['magma'](scaled.T[::-1])[..., :3]
  return (rgb * 255).astype(np.uint8)
