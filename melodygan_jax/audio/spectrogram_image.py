"""Log-mel spectrograms as RGB images, for TensorBoard and the listening page."""
import numpy as np


def spectrogram_image(log_mel: np.ndarray, low: float, high: float) -> np.ndarray:
  """[frames, mels] log-mel -> [mels, frames, 3] uint8, low mels at the bottom."""
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  scaled = np.clip((np.asarray(log_mel, np.float32) - low) / max(high - low, 1e-6), 0.0, 1.0)
  rgb = colormaps['magma'](scaled.T[::-1])[..., :3]
  return (rgb * 255).astype(np.uint8)


def spectrogram_rows(log_mel: np.ndarray, frames_per_row: int, low: float, high: float,
                     pixels_per_band: int = 2) -> np.ndarray:
  """A long spectrogram wrapped into rows of equal length, stacked top to bottom.

  Five minutes of audio in one strip would be a few pixels high at any page
  width; rows of `frames_per_row` stay readable. The last row is padded with
  the colormap's darkest colour, so a time t is always at (t mod row length) /
  row length across its row.

  Args:
    log_mel: [frames, mels].
    frames_per_row: frames in one row.
    low, high: the log-mel values mapped to the colormap's ends.
    pixels_per_band: image rows per mel band.

  Returns:
    [num_rows * mels * pixels_per_band, frames_per_row, 3] uint8.
  """
  num_rows = max(1, -(-len(log_mel) // frames_per_row))
  padded = np.full((num_rows * frames_per_row, log_mel.shape[1]), low, np.float32)
  padded[:len(log_mel)] = log_mel
  rows = [np.repeat(spectrogram_image(padded[i * frames_per_row:(i + 1) * frames_per_row],
                                      low, high), pixels_per_band, axis=0)
          for i in range(num_rows)]
  return np.concatenate(rows, axis=0)
