"""An endless stream of music, window after window, that a listener can steer.

long_form.py generates a sample of known length in overlapping windows over
one coordinate sequence and blends them; a stream has no end, so it does the
same one window at a time. Window k sees coordinates [k * hop, k * hop +
window + 2 * context) of one endless sequence (drawn hop by hop from the
seed, so the same seed always draws the same coordinates), its first
`overlap` features are cross-faded with the last `overlap` of window k - 1
with long_form's raised-cosine ramps, and the `hop` codes that no later window
touches are quantized: the codes come out exactly as a long-form sample's
windows would make them, a hop at a time, with no join.

Steering: each window has its own global noise (the style). When the target
style moves, the next window morphs from the style it had to the new one
across its view (style.slerp), and the windows after it hold the new style;
neighbours agree where they overlap, so the change is a smooth morph.

Rendering: codes are decoded in units of about half a second with codes of
context on each side (the codes after a unit must exist, so audio lags the
codes a little) and inverted with Griffin-Lim over the unit's frames
plus a margin each side. Each unit's Griffin-Lim starts from the phase the
previous unit found for the frames they share, and the two renderings are
cross-faded there, so the waveform runs on across units. A neural vocoder
renders the same frames and is cross-faded the same way.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from melodygan_jax.audio import contract
from melodygan_jax.audio import inversion
from melodygan_jax.generation import long_form
from melodygan_jax.generation import sampling
from melodygan_jax.generation import style as style_lib
from melodygan_jax.models import gan as gan_models

UNIT_SECONDS = 0.5  # Audio per rendered unit: at least this, in whole codes.
DECODE_CONTEXT_STEPS = 16  # Codes decoded on each side of a unit (fewer at the start).
MARGIN_FRAMES = 16  # Frames inverted beyond each side of a unit (the shared phase).
CROSSFADE_SAMPLES = 2048  # Audio cross-fade between units (93 ms), inside the margin.


@functools.partial(jax.jit, static_argnames=('graphdef', 'context_steps', 'window_steps',
                                             'hop_steps', 'temperature'))
def _window_codes(graphdef, params, codebooks, view_global, view_coordinates, previous_tail,
                  has_previous, gumbel_key, *, context_steps: int, window_steps: int,
                  hop_steps: int, temperature: float):
  """One window: (the hop codes [hop, levels] it finishes, its tail features [overlap, F])."""
  generator = nnx.merge(graphdef, params)
  features = generator.features(view_global[None], view_coordinates[None])[0]
  features = features[context_steps:context_steps + window_steps]
  overlap = window_steps - hop_steps
  ramp = jnp.sin(0.5 * jnp.pi * (jnp.arange(overlap) + 0.5) / overlap)**2
  ramp = jnp.where(has_previous, ramp, 1.0)[:, None]
  head = ramp * features[:overlap] + (1.0 - ramp) * previous_tail
  finished = jnp.concatenate([head, features[overlap:hop_steps]], axis=0)
  codes = generator.quantize(finished[None], codebooks, gumbel_key, temperature)[1][0]
  return codes, features[hop_steps:]


@functools.partial(jax.jit, static_argnames=('iterations', 'nnls_iterations', 'momentum',
                                             'shared_frames'))
def _griffin_lim_unit(log_mel, previous_phase, has_previous, key, *, iterations: int,
                      nnls_iterations: int, momentum: float, shared_frames: int):
  """[frames, mels] -> (audio [(frames - 1) * hop], phase [frames, bins]).

  The first `shared_frames` start from `previous_phase` (when `has_previous`),
  the rest from seeded random phases.
  """
  magnitude = inversion.mel_to_magnitude(jnp.exp(log_mel)[None], nnls_iterations)
  random_phase = jnp.exp(2j * jnp.pi * jax.random.uniform(key, magnitude.shape[1:]))
  shared = (jnp.arange(magnitude.shape[1]) < shared_frames)[:, None] & has_previous
  padded = jnp.zeros_like(random_phase).at[:shared_frames].set(previous_phase)
  initial = jnp.where(shared, padded, random_phase)[None]
  phase = inversion.griffin_lim_phase(magnitude, None, iterations, momentum,
                                      initial_phase=initial)
  audio = inversion.istft(magnitude * phase, (magnitude.shape[1] - 1) * contract.HOP_LENGTH)
  return audio[0], phase[0]


def style_of_seed(generator, seed: int) -> np.ndarray:
  """The global noise [noise_dim] that piece 0 of `seed` is generated with (sampling's, at
  the generator's style strength)."""
  return sampling.keys_and_noise(generator, seed, [0])[1][0]


class Stream:
  """Endless music from one seed; `set_style` steers it from the next window on.

    stream = Stream(model, seed=0)
    chunk = stream.next_chunk()   # float32 audio, UNIT_SECONDS or a little more (whole codes)
    stream.set_style(other_style)

  `model` is a sampling.Model. The same seed and the same steering at the same
  windows make the same audio. Not thread-safe: one caller at a time.
  """

  def __init__(self, model, seed: int, style: np.ndarray | None = None):
    generator = model.generator  # A context-conditioned one runs with an empty context.
    self.model = model
    self.seed = seed
    self.window_steps = generator.window_steps
    overlap = long_form.overlap_steps(self.window_steps)
    if self.window_steps < 2 or overlap >= self.window_steps:
      raise ValueError(f'a window of {self.window_steps} codes is too short to stream')
    self.hop_steps = self.window_steps - overlap
    self.context_steps = generator.context_steps
    self.noise_channels = generator.config.model.noise_channels
    self.beat_clock = generator.beat_clock
    key = jax.random.fold_in(jax.random.key(seed), 0)
    self._step_key, self._gumbel_key = long_form.step_noise_key_and_gumbel_key(key)
    self._vocoder_key = jax.random.fold_in(jax.random.key(seed), 1)
    self._codebooks = jnp.asarray(model.vqvae.codebooks)
    stride = model.vqvae.time_stride
    # Units need not be whole windows: the first sounds once one window is made.
    self.unit_steps = max(1, math.ceil(
        UNIT_SECONDS * contract.SAMPLE_RATE_HZ / (stride * contract.HOP_LENGTH)))
    # At most a unit, so that units decode in two shapes only: the first, and all others.
    self.decode_context_steps = max(min(DECODE_CONTEXT_STEPS, self.unit_steps),
                                    -(-(MARGIN_FRAMES + 1) // stride))
    network = nnx.merge(generator.graphdef, generator.params)
    self._feature_count = (network.num_levels * network.codebook_size
                           if network.output == 'gumbel' else network.codebook_dim)
    self.margin_frames = MARGIN_FRAMES
    self._style = np.asarray(style if style is not None else style_of_seed(generator, seed),
                             np.float32)
    self._target = self._style
    self._blocks = {}  # Coordinate blocks (hop steps each) by index.
    self._tail = None
    self._codes = np.zeros((0, model.vqvae.num_levels), np.int32)
    self._codes_start = 0  # Output step of self._codes[0].
    self.windows_done = 0
    self.units_done = 0
    self._previous = None  # Griffin-Lim's phase of the frames the next unit shares.
    self._tail_audio = None  # The last unit's rendering past its end, to cross-fade.

  @property
  def unit_samples(self) -> int:
    return self.unit_steps * self.model.vqvae.time_stride * contract.HOP_LENGTH

  def set_style(self, style: np.ndarray) -> None:
    """From the next window on, morph to `style` (global noise [noise_dim])."""
    self._target = np.asarray(style, np.float32)

  def _coordinates(self, first: int, count: int) -> np.ndarray:
    """Coordinates [count, noise_channels] from index `first` of the endless sequence."""
    hop = self.hop_steps
    blocks = range(first // hop, (first + count - 1) // hop + 1)
    for block in blocks:
      if block not in self._blocks:
        # Each block its own noise; one clock for the whole stream, so the tempo goes on.
        self._blocks[block] = np.asarray(gan_models.step_inputs(
            jax.random.fold_in(self._step_key, block), (hop,), self.noise_channels,
            self.beat_clock, block * hop, gan_models.clock_key(self._step_key)))
    for block in [b for b in self._blocks if b < blocks[0]]:
      del self._blocks[block]  # Windows only move forward.
    joined = np.concatenate([self._blocks[block] for block in blocks])
    offset = first - blocks[0] * hop
    return joined[offset:offset + count]

  def _next_window(self) -> None:
    generator = self.model.generator
    k = self.windows_done
    view_steps = self.window_steps + 2 * self.context_steps
    coordinates = self._coordinates(k * self.hop_steps, view_steps)
    if np.array_equal(self._target, self._style):
      view_global = np.broadcast_to(self._style, (view_steps, self._style.shape[0]))
    else:  # Across this window, from where the style was to where it is asked to be.
      view_global = style_lib.slerp(self._style, self._target, np.linspace(0, 1, view_steps))
      self._style = self._target
    overlap = self.window_steps - self.hop_steps
    previous = self._tail if self._tail is not None else np.zeros(
        (overlap, self._feature_count), np.float32)
    codes, self._tail = _window_codes(
        generator.graphdef, generator.params, self._codebooks, jnp.asarray(view_global),
        jnp.asarray(coordinates), jnp.asarray(previous), jnp.asarray(self._tail is not None),
        jax.random.fold_in(self._gumbel_key, k), context_steps=self.context_steps,
        window_steps=self.window_steps, hop_steps=self.hop_steps,
        temperature=generator.temperature)
    self._codes = np.concatenate([self._codes, np.asarray(codes)])
    self.windows_done += 1

  def next_chunk(self) -> np.ndarray:
    """The next unit's audio: float32 in [-1, 1], unit_samples long."""
    vqvae, stride = self.model.vqvae, self.model.vqvae.time_stride
    unit = self.units_done
    start, end = unit * self.unit_steps, (unit + 1) * self.unit_steps
    right = self.decode_context_steps
    while self._codes_start + len(self._codes) < end + right:
      self._next_window()
    left = min(self.decode_context_steps, start)
    first = start - left - self._codes_start
    codes = self._codes[first:first + left + self.unit_steps + right]
    log_mel = vqvae.codes_to_log_mel(codes[None], self.model.stem)[0]
    # Frames of the unit and its margins, relative to the decoded codes.
    margin_left = min(self.margin_frames, left * stride)
    begin = left * stride - margin_left
    stop = (left + self.unit_steps) * stride + self.margin_frames + 1
    audio = self._render(log_mel[begin:stop], margin_left)
    # Keep what the next unit decodes as its left context.
    drop = max(0, end - self.decode_context_steps - self._codes_start)
    self._codes, self._codes_start = self._codes[drop:], self._codes_start + drop
    self.units_done += 1
    return audio

  def _render(self, log_mel: np.ndarray, margin_left: int) -> np.ndarray:
    """Audio of the unit (log_mel holds it with `margin_left` frames before, margin after)."""
    hop, margin = contract.HOP_LENGTH, self.margin_frames
    shared = 2 * margin  # Frames this unit shares with the next: its last margin either side.
    vocoder = self.model.vocoder
    key = jax.random.fold_in(self._vocoder_key, self.units_done)
    if isinstance(vocoder, inversion.GriffinLimVocoder):
      previous = (self._previous if self._previous is not None
                  else np.zeros((shared, contract.N_FFT // 2 + 1), np.complex64))
      rendered, phase = _griffin_lim_unit(
          jnp.asarray(log_mel, jnp.float32), jnp.asarray(previous),
          jnp.asarray(self._previous is not None and margin_left == margin), key,
          iterations=vocoder.iterations, nnls_iterations=vocoder.nnls_iterations,
          momentum=vocoder.momentum, shared_frames=shared)
      rendered, phase = np.asarray(rendered), np.asarray(phase)
      # Frames [end - margin, end + margin) of the unit: the next one's first `shared`.
      next_previous = phase[len(phase) - 1 - shared:len(phase) - 1]
    else:
      rendered = np.asarray(vocoder(jnp.asarray(log_mel[None], jnp.float32), key[None]))[0]
      next_previous = None
    # Sample 0 of `rendered` is the first margin frame's centre.
    body = rendered[margin_left * hop:margin_left * hop + self.unit_samples].astype(np.float32)
    if self._tail_audio is not None and margin_left * hop >= CROSSFADE_SAMPLES:
      ramp = np.sin(0.5 * np.pi * (np.arange(CROSSFADE_SAMPLES) + 0.5) / CROSSFADE_SAMPLES)**2
      body[:CROSSFADE_SAMPLES] = (ramp * body[:CROSSFADE_SAMPLES]
                                  + (1.0 - ramp) * self._tail_audio)
    elif self.units_done == 0:  # The very start, faded in as finished files are.
      fade = int(0.005 * contract.SAMPLE_RATE_HZ)
      body[:fade] *= np.linspace(0.0, 1.0, fade, dtype=np.float32)
    after = margin_left * hop + self.unit_samples
    self._tail_audio = np.asarray(rendered[after:after + CROSSFADE_SAMPLES], np.float32)
    self._previous = next_previous
    return np.clip(np.nan_to_num(body), -1.0, 1.0)
