"""What a vocoder fine-tuned on a codec hears: the log-mel after a VQ-VAE round trip."""
import flax
import jax
import jax.numpy as jnp
from flax import nnx

from melodygan_jax.data import normalization

CODEC_STEM = 'mix'  # The cleaned WAVs the vocoder trains on are mixes.


@flax.struct.dataclass
class CodecWeights:
  """A VQ-VAE's weights and statistics, passed to the compiled step (not trained)."""
  params: nnx.State
  codebook: nnx.State
  mean: jax.Array  # [NUM_MELS], of the mix stem.
  std: jax.Array


def codec_log_mel(graphdef, time_stride: int, weights: CodecWeights, log_mel):
  """[batch, frames, NUM_MELS] log-mel -> the same after the VQ-VAE's round trip.

  Frames are padded (edge) to a multiple of the codec's stride, then trimmed.
  """
  frames = log_mel.shape[1]
  padded_frames = -(-frames // time_stride) * time_stride
  normalized = normalization.normalize_with(log_mel, weights.mean, weights.std)
  normalized = jnp.pad(normalized, ((0, 0), (0, padded_frames - frames), (0, 0)), mode='edge')
  recon = nnx.merge(graphdef, weights.params, weights.codebook)(normalized)[0]
  return normalization.denormalize_with(recon[:, :frames].astype(jnp.float32), weights.mean,
                                        weights.std)
