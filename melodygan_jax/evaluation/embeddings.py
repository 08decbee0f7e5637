"""musicnn (MSD) music embeddings of audio clips, offline, in JAX.

The `musicnn` package ships the weights of a music tagger trained on the
Million Song Dataset as a TF1 checkpoint. Its own code builds the graph with
`tf.compat.v1.layers` (which needs `tf-keras` and TF_USE_LEGACY_KERAS=1) and
disables eager execution for the whole process at import, which would break
any tf.data code in the same process. So this module reads the checkpoint's
variables with the checkpoint reader alone and runs the same network as a
jitted JAX function: no tf-keras, no environment variable, no global state.

The embedding is musicnn's 'penultimate' layer (the 200-unit dense layer after
its batch norm), one vector per non-overlapping 3 s patch, mean-pooled per
clip. Input features follow musicnn's `extractor.batch_data`: 16 kHz, 512-point
STFT, hop 256, 96 mel bands of power rounded to float16, log10(10000 x + 1)
(computed in float32: see `log_mel_patches`), patches of 187 frames.
"""
from collections.abc import Iterable, Iterator
import os

import jax
import jax.numpy as jnp
import librosa
import numpy as np

EMBEDDING_DIM = 200
# musicnn.configuration's SR, FFT_SIZE, FFT_HOP and N_MELS, copied so that
# importing this module does not need musicnn (only `Embedder` reads its checkpoint).
MUSICNN_SAMPLE_RATE_HZ = 16_000
MUSICNN_FFT_SIZE = 512
MUSICNN_HOP_LENGTH = 256
MUSICNN_NUM_MELS = 96
PATCH_SECONDS = 3.0
# librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1, as musicnn computes it.
PATCH_FRAMES = 187
BATCH_NORM_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default.


def musicnn_checkpoint_prefix(model: str = 'MSD_musicnn') -> str:
  """The TF1 checkpoint prefix of a model shipped inside the musicnn package.

  Raises:
    ImportError: musicnn is not installed (`pip install --no-deps musicnn`).
  """
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.find_spec('musicnn')
  if spec is None or not spec.submodule_search_locations:
    raise ImportError('musicnn is not installed: pip install --no-deps musicnn==0.1.0')
  # The checkpoint's files are named '.index' and '.data-*' inside the model folder,
  # so the prefix is the folder path with its trailing slash.
  return os.path.join(list(spec.submodule_search_locations)[0], model, '')


def load_musicnn_params(checkpoint_prefix: str) -> dict[str, np.ndarray]:
  """Every variable of a musicnn checkpoint except the optimizer's, by name.

  Only TensorFlow's checkpoint reader is used (no graph, no session, no
  musicnn import, so none of its process-wide side effects).

  Args:
    checkpoint_prefix: e.g. `musicnn_checkpoint_prefix('MSD_musicnn')`.

  Returns:
    {'conv2d/kernel': [7, 38, 1, 204] float32, ...}.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if 'Adam' not in name and not name.startswith('beta')}


def log_mel_patches(clip: np.ndarray, sample_rate_hz: int) -> np.ndarray:
  """One clip -> musicnn's input: non-overlapping 3 s log-mel patches.

  Args:
    clip: [samples] float mono audio at `sample_rate_hz`, at least 3 s long.
    sample_rate_hz: its rate (resampled to 16 kHz with soxr, as librosa.load does).

  Returns:
    [num_patches, 187, 96] float32; a clip's tail shorter than 3 s is dropped, as musicnn does.

  Raises:
    ValueError: the clip is shorter than one patch.
  """
  clip = np.asarray(clip, np.float32)
  if clip.ndim != 1:
    raise ValueError(f'expected one mono clip [samples], got shape {clip.shape}')
  if sample_rate_hz != MUSICNN_SAMPLE_RATE_HZ:
    clip = librosa.resample(clip, orig_sr=sample_rate_hz, target_sr=MUSICNN_SAMPLE_RATE_HZ,
                            res_type='soxr_hq')
  mel = librosa.feature.melspectrogram(
      y=clip, sr=MUSICNN_SAMPLE_RATE_HZ, hop_length=MUSICNN_HOP_LENGTH,
      n_fft=MUSICNN_FFT_SIZE, n_mels=MUSICNN_NUM_MELS).T
  # Rounded to float16 as musicnn does, but scaled in float32: musicnn's own
  # `10000 * float16` overflows to inf once a band's power passes 6.55 (any loud tone).
  log_mel = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
  num_patches = len(log_mel) // PATCH_FRAMES
  if num_patches == 0:
    raise ValueError(f'a clip of {len(clip) / MUSICNN_SAMPLE_RATE_HZ:.2f} s is shorter than '
                     f'one {PATCH_SECONDS:g} s musicnn patch')
  return log_mel[:num_patches * PATCH_FRAMES].reshape(num_patches, PATCH_FRAMES,
                                                      MUSICNN_NUM_MELS)


def _batch_norm(x, params, name):
  scale = params[f'{name}/gamma'] * jax.lax.rsqrt(params[f'{name}/moving_variance'] +
                                                  BATCH_NORM_EPSILON)
  return (x - params[f'{name}/moving_mean']) * scale + params[f'{name}/beta']


def _conv2d(x, params, name, padding):
  """NHWC x HWIO, as tf.compat.v1.layers.conv2d with ReLU."""
  y = jax.lax.conv_general_dilated(x, params[f'{name}/kernel'], (1, 1), padding,
                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return jax.nn.relu(y + params[f'{name}/bias'])


def _time_conv(x, params, name):
  """[batch, time, features] -> [batch, time, filters]: a [7, features] 'valid' conv
  after 3 frames of zero padding each side, as musicnn's mid-end (written as a 1-D conv)."""
  kernel = params[f'{name}/kernel']  # [7, features, 1, filters]
  y = jax.lax.conv_general_dilated(x, kernel[:, :, 0, :], (1,), [(3, 3)],
                                   dimension_numbers=('NWC', 'WIO', 'NWC'))
  return jax.nn.relu(y + params[f'{name}/bias'])


def musicnn_forward(params: dict, log_mel: jax.Array) -> dict[str, jax.Array]:
  """musicnn's `build_musicnn` (front-end, mid-end, back-end) in inference mode.

  Args:
    params: from `load_musicnn_params` (as jnp arrays).
    log_mel: [batch, 187, 96] patches from `log_mel_patches`.

  Returns:
    'penultimate': [batch, 200] (the embedding); 'logits': [batch, 50] tag logits.
  """
  x = _batch_norm(log_mel[..., None], params, 'batch_normalization')  # [b, t, 96, 1]
  time_padded = jnp.pad(x, ((0, 0), (3, 3), (0, 0), (0, 0)))
  # Timbral filters span 38 and 67 mel bands; temporal ones 128, 64, 32 frames of
  # one band. Each is max-pooled over the whole frequency axis.
  branches = [('conv2d', 'batch_normalization_1', time_padded, 'VALID'),
              ('conv2d_1', 'batch_normalization_2', time_padded, 'VALID'),
              ('conv2d_2', 'batch_normalization_3', x, 'SAME'),
              ('conv2d_3', 'batch_normalization_4', x, 'SAME'),
              ('conv2d_4', 'batch_normalization_5', x, 'SAME')]
  frontend = jnp.concatenate(
      [jnp.max(_batch_norm(_conv2d(inputs, params, conv, padding), params, norm), axis=2)
       for conv, norm, inputs, padding in branches], axis=-1)  # [b, t, 561]
  conv1 = _batch_norm(_time_conv(frontend, params, 'conv2d_5'), params, 'batch_normalization_6')
  conv2 = _batch_norm(_time_conv(conv1, params, 'conv2d_6'), params,
                      'batch_normalization_7') + conv1
  conv3 = _batch_norm(_time_conv(conv2, params, 'conv2d_7'), params,
                      'batch_normalization_8') + conv2
  midend = jnp.concatenate([frontend, conv1, conv2, conv3], axis=-1)  # [b, t, 753]
  # musicnn flattens [b, 753, 2] (max, mean), so the two interleave per feature.
  pooled = jnp.stack([jnp.max(midend, axis=1), jnp.mean(midend, axis=1)],
                     axis=-1).reshape(midend.shape[0], -1)  # [b, 1506]
  pooled = _batch_norm(pooled, params, 'batch_normalization_9')
  dense = jax.nn.relu(pooled @ params['dense/kernel'] + params['dense/bias'])
  penultimate = _batch_norm(dense, params, 'batch_normalization_10')
  logits = penultimate @ params['dense_1/kernel'] + params['dense_1/bias']
  return {'penultimate': penultimate, 'logits': logits}


class Embedder:
  """Clips -> musicnn MSD embeddings, in fixed-size batches of patches.

  Built once (reads the checkpoint, compiles for one batch shape); memory is
  bounded by `batch_size` patches plus one clip, whatever the number of clips.

    embedder = Embedder()
    embeddings = embedder.embed(clips, sample_rate_hz=22_050)  # [num_clips, 200]
  """

  def __init__(self, batch_size: int = 32, model: str = 'MSD_musicnn',
               checkpoint_prefix: str | None = None):
    """
    Args:
      batch_size: patches per network call (a partial last batch is zero-padded).
      model: 'MSD_musicnn' or 'MTT_musicnn' (same architecture, other training set).
      checkpoint_prefix: overrides the checkpoint shipped with the musicnn package.
    """
    self.batch_size = batch_size
    params = load_musicnn_params(checkpoint_prefix or musicnn_checkpoint_prefix(model))
    self._params = jax.tree.map(jnp.asarray, params)
    self._jit_penultimate = jax.jit(lambda p, x: musicnn_forward(p, x)['penultimate'])

  def embed_patch_batch(self, patches: np.ndarray) -> np.ndarray:
    """[n, 187, 96] log-mel patches -> [n, 200] embeddings, `batch_size` at a time."""
    outputs = []
    for start in range(0, len(patches), self.batch_size):
      chunk = patches[start:start + self.batch_size]
      padded = np.zeros((self.batch_size,) + chunk.shape[1:], np.float32)
      padded[:len(chunk)] = chunk
      outputs.append(np.asarray(self._jit_penultimate(self._params, padded))[:len(chunk)])
    return np.concatenate(outputs) if outputs else np.zeros((0, EMBEDDING_DIM), np.float32)

  def iter_patch_embeddings(self, clips: Iterable[np.ndarray],
                            sample_rate_hz: int) -> Iterator[np.ndarray]:
    """Yields each clip's per-patch embeddings [num_patches, 200], in order.

    Patches of consecutive clips share full network batches (only the very
    last batch is padded); a clip is yielded once all its patches went through.

    Args:
      clips: an iterable (a generator is fine) of [samples] mono float clips, each >= 3 s.
      sample_rate_hz: their rate; the audio contract's is 22 050 Hz.
    """
    waiting = np.zeros((0, PATCH_FRAMES, MUSICNN_NUM_MELS), np.float32)  # Not yet embedded.
    embedded = np.zeros((0, EMBEDDING_DIM), np.float32)  # Embedded, clip not complete yet.
    counts = []  # Patches of each clip not yet yielded.

    def completed_clips():
      nonlocal embedded
      while counts and len(embedded) >= counts[0]:
        yield embedded[:counts[0]]
        embedded = embedded[counts.pop(0):]

    for clip in clips:
      patches = log_mel_patches(clip, sample_rate_hz)
      counts.append(len(patches))
      waiting = np.concatenate([waiting, patches])
      full = len(waiting) // self.batch_size * self.batch_size
      if full:
        embedded = np.concatenate([embedded, self.embed_patch_batch(waiting[:full])])
        waiting = waiting[full:]
        yield from completed_clips()
    embedded = np.concatenate([embedded, self.embed_patch_batch(waiting)])
    yield from completed_clips()

  def embed(self, clips: Iterable[np.ndarray], sample_rate_hz: int) -> np.ndarray:
    """Mean-pooled clip embeddings.

    Args:
      clips: [num_clips, samples] array or an iterable of [samples] clips (each >= 3 s).
      sample_rate_hz: their rate.

    Returns:
      [num_clips, 200] float32: the mean over each clip's 3 s patches.
    """
    means = [patches.mean(axis=0) for patches in self.iter_patch_embeddings(clips,
                                                                            sample_rate_hz)]
    return np.stack(means).astype(np.float32) if means else np.zeros((0, EMBEDDING_DIM),
                                                                     np.float32)
