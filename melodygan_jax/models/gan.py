"""Latent GAN: a generator of VQ-VAE code sequences and its discriminator.

Both are fully convolutional in time (dilated residual 1-D convolutions), so
the generator makes sequences of any length: a global noise vector (the
sample's character, or style; it may also change along the sample) plus
per-step noise, and, in a generator built with `context_conditioning`, the
real codes of a context (a prompt's last codes) with a mask saying which
steps hold one: such a generator learns to continue them (trained with random
context masking, training/gan_trainer.py). The generator's receptive field
should cover the training crop (`receptive_field`), so every output step can
depend on the whole crop; the discriminator judges the sequence at several
time scales (average-pooled by 1, 2, 4, ...): local texture at the first,
long-range structure at the last.
The generator's output is always a latent the VQ-VAE's residual quantizer
could have made, a sum of one entry per level:
  'gumbel': logits over each level's codes, straight-through Gumbel-softmax;
            the forward pass is a one-hot choice per level, the gradient flows
            through the soft probabilities.
  'snap':   a vector per step quantized through the same residual quantizer
            (nearest code of each level's residual), straight-through.
"""
import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from melodygan_jax.models import layers
from melodygan_jax.models import residual_quantizer


class DilatedBlock(nnx.Module):
  """x + Conv_k1(act(Conv_k3,dilated(act(x))))."""

  def __init__(self, width: int, dilation: int, *, rngs: nnx.Rngs, dtype=jnp.float32,
               negative_slope: float = 0.0):
    self.conv_k3 = layers.conv(width, width, 3, dilation=dilation, rngs=rngs, dtype=dtype)
    self.conv_k1 = layers.conv(width, width, 1, rngs=rngs, dtype=dtype)
    self.negative_slope = negative_slope

  def __call__(self, x):
    act = lambda h: jax.nn.leaky_relu(h, self.negative_slope)
    return x + self.conv_k1(act(self.conv_k3(act(x))))


class Generator(nnx.Module):
  """(global noise [b, noise_dim] or [b, steps, noise_dim], step noise
  [b, steps, noise_channels][, context]) -> codes.

  `context`, for a generator built with `context_conditioning` only, is
  (latents [b, steps, dim], mask [b, steps]): the mask is 1 where the latent
  is a given real one (the rest of `latents` is ignored). None is a mask of
  zeros: the generator samples freely, as it does for the examples of its
  training that had no context.

  `features` and `quantize` are the two halves of `__call__`: windowed
  generation (generation/long_form.py) cross-fades features between windows
  before quantizing.
  """

  def __init__(self, *, noise_dim: int, noise_channels: int, width: int,
               dilations: Sequence[int], num_levels: int, codebook_size: int,
               codebook_dim: int, output: str, rngs: nnx.Rngs, dtype=jnp.float32,
               context_conditioning: bool = False, beat_clock: 'BeatClock | None' = None,
               noise_smoothing: int = 1):
    if output not in ('gumbel', 'snap'):
      raise ValueError(f'generator output {output!r}: choose gumbel or snap')
    if noise_smoothing < 1 or noise_smoothing % 2 == 0:
      raise ValueError(f'noise_smoothing={noise_smoothing}: must be an odd number of steps')
    self.output = output
    self.noise_smoothing = noise_smoothing
    self.noise_dim = noise_dim
    self.noise_channels = noise_channels
    self.num_levels = num_levels
    self.codebook_size = codebook_size
    self.global_in = nnx.Linear(noise_dim, width, rngs=rngs, dtype=dtype)
    self.beat_clock = beat_clock
    self.local_in = layers.conv(self.step_channels, width, 1, rngs=rngs, dtype=dtype)
    self.codebook_dim = codebook_dim
    self.conditioned = context_conditioning
    if context_conditioning:  # The context's latents and the mask, one more channel.
      self.context_in = layers.conv(codebook_dim + 1, width, 1, rngs=rngs, dtype=dtype)
    self.blocks = nnx.List([DilatedBlock(width, d, rngs=rngs, dtype=dtype) for d in dilations])
    self.norm = nnx.LayerNorm(width, rngs=rngs, dtype=dtype)
    out_features = num_levels * codebook_size if output == 'gumbel' else codebook_dim
    self.head = layers.conv(width, out_features, 1, rngs=rngs, dtype=dtype)

  def __call__(self, global_noise: jax.Array, step_noise: jax.Array, codebooks: jax.Array,
               rng: jax.Array, temperature: float = 1.0, context=None):
    """Generates a batch.

    Args:
      codebooks: [levels, codebook_size, dim], the VQ-VAE's (not trained here).

    Returns:
      latents: [b, steps, dim], each a sum of one codebook entry per level
        (straight-through).
      codes: [b, steps, levels] int32.
      code_probs: [b, steps, levels, codebook_size], the distribution each
        code was drawn from ('snap': a soft assignment of each level's
        residual by distance), for losses on code usage.
    """
    return self.quantize(self.features(global_noise, step_noise, context), codebooks, rng,
                         temperature)

  def features(self, global_noise: jax.Array, step_noise: jax.Array,
               context=None) -> jax.Array:
    """The continuous output before quantization, [b, steps, features] float32.

    'gumbel': code logits, levels * codebook_size features; 'snap': a latent
    vector, codebook_dim features. A time-varying global noise
    [b, steps, noise_dim] morphs the character along the sample.
    """
    style = self.global_in(global_noise)
    step_noise = jnp.concatenate([smooth(step_noise[..., :self.noise_channels],
                                         self.noise_smoothing),
                                  step_noise[..., self.noise_channels:]], axis=-1)
    h = (style if style.ndim == 3 else style[:, None, :]) + self.local_in(step_noise)
    if self.conditioned:
      h = h + self.context_in(self._context_channels(context, step_noise.shape[:2]))
    elif context is not None:
      raise ValueError('this generator was trained without context_conditioning: it cannot '
                       'take a context')
    for block in self.blocks:
      h = block(h)
    return self.head(jax.nn.relu(self.norm(h))).astype(jnp.float32)

  def _context_channels(self, context, batch_steps) -> jax.Array:
    """[b, steps, dim + 1]: the given latents (zero elsewhere) and the mask."""
    if context is None:
      return jnp.zeros(batch_steps + (self.codebook_dim + 1,), jnp.float32)
    latents, mask = context
    mask = jnp.broadcast_to(mask, latents.shape[:-1]).astype(jnp.float32)[..., None]
    return jnp.concatenate([latents.astype(jnp.float32) * mask, mask], axis=-1)

  def quantize(self, out: jax.Array, codebooks: jax.Array, rng: jax.Array,
               temperature: float = 1.0):
    """`features` -> (latents, codes, code_probs), as `__call__` returns them."""
    codebooks = jax.lax.stop_gradient(codebooks)
    if self.output == 'gumbel':
      logits = out.reshape(out.shape[:-1] + (self.num_levels, self.codebook_size))
      gumbel = jax.random.gumbel(rng, logits.shape, jnp.float32)
      soft = jax.nn.softmax((logits + gumbel) / temperature, axis=-1)
      codes = jnp.argmax(soft, axis=-1).astype(jnp.int32)  # Gumbel-max: a draw from softmax.
      hard = jax.nn.one_hot(codes, self.codebook_size, dtype=jnp.float32)
      choice = hard + soft - jax.lax.stop_gradient(soft)
      latents = jnp.einsum('bslk,lkd->bsd', choice, codebooks)
      return latents, codes, jax.nn.softmax(logits, axis=-1)
    codes = residual_quantizer.residual_codes(out, codebooks)
    snapped = residual_quantizer.codes_to_latents(codes, codebooks)
    # Each level's input, as the quantizer saw it: the output minus the levels before.
    level_latents = jnp.stack([jnp.take(codebooks[level], codes[..., level], axis=0)
                               for level in range(codes.shape[-1])], axis=-2)
    before = jnp.cumsum(level_latents, axis=-2) - level_latents
    residual_inputs = out[..., None, :] - before  # [b, steps, levels, dim]
    distances = (jnp.sum(residual_inputs**2, -1, keepdims=True)
                 - 2.0 * jnp.einsum('bsld,lkd->bslk', residual_inputs, codebooks)
                 + jnp.sum(codebooks**2, axis=-1))
    # In units of each level's spread, so `temperature` means the same at every level.
    spread = 2.0 * jnp.sum(jnp.var(codebooks, axis=1), axis=-1)[:, None]
    return (out + jax.lax.stop_gradient(snapped - out), codes,
            jax.nn.softmax(-distances / (spread * temperature), axis=-1))

  @property
  def step_channels(self) -> int:
    """Channels of the step input: the noise, then the beat clock's."""
    return self.noise_channels + (self.beat_clock.channels if self.beat_clock else 0)

  def sample_noise(self, rng: jax.Array, batch: int, steps: int):
    global_rng, step_rng = jax.random.split(rng)
    return (jax.random.normal(global_rng, (batch, self.noise_dim)),
            self.step_inputs(step_rng, (batch, steps)))

  def step_inputs(self, key: jax.Array, shape: tuple[int, ...], first_step=0,
                  clock_rng: jax.Array | None = None):
    """This generator's step input [*shape, step_channels] (shape ends in steps)."""
    return step_inputs(key, shape, self.noise_channels, self.beat_clock, first_step, clock_rng)


def smooth(noise: jax.Array, window: int) -> jax.Array:
  """[b, steps, c] -> moving means over `window` steps (odd; fewer at the ends), scaled
  back to unit variance for i.i.d. unit noise.

  Per-step noise is what the generator draws its changes from: i.i.d. from step to step,
  it changes what is played every 46 ms, where a held note lasts a few hundred.
  """
  if window == 1:
    return noise
  half = window // 2
  steps = noise.shape[-2]
  padded = jnp.pad(noise, [(0, 0)] * (noise.ndim - 2) + [(half + 1, half), (0, 0)])
  sums = jnp.cumsum(padded, axis=-2)
  totals = sums[..., window:, :] - sums[..., :steps, :]
  index = jnp.arange(steps)
  counts = (jnp.minimum(index + half, steps - 1) - jnp.maximum(index - half, 0) + 1)
  counts = counts.astype(noise.dtype)[:, None]
  return totals / jnp.sqrt(counts)


def step_inputs(key: jax.Array, shape: tuple[int, ...], noise_channels: int,
                clock: 'BeatClock | None' = None, first_step=0,
                clock_rng: jax.Array | None = None) -> jax.Array:
  """A generator's step input, [*shape, channels] (`shape` ends in steps): i.i.d. normal
  noise from `key`, then, with a `clock`, its channels for a tempo and phase drawn from
  `clock_rng` (default: `clock_key(key)`), at steps first_step, first_step + 1, ... (so
  the clock of a later stretch of the same sample, asked from its first step with the
  sample's `clock_rng`, continues it whatever noise that stretch draws)."""
  noise = jax.random.normal(key, tuple(shape) + (noise_channels,))
  if clock is None:
    return noise
  clock_rng = clock_key(key) if clock_rng is None else clock_rng
  ticks = clock(clock_rng, tuple(shape[:-1]), shape[-1], first_step)
  return jnp.concatenate([noise, ticks], axis=-1)


def clock_key(key: jax.Array) -> jax.Array:
  """The key a sample's beat clock is drawn from, given its step-noise key."""
  return jax.random.fold_in(key, 0x0c10c)


DEFAULT_BEAT_CYCLES = (0.5, 1.0)  # Eighth notes and beats (configs/gan.py's beat_cycles).


@dataclasses.dataclass(frozen=True)
class BeatClock:
  """A grid for the generator to put events on: sin and cos of a random tempo's cycles.

  A convolution of i.i.d. noise has no reason to repeat anything at a fixed
  lag; a function of this phase does. Each sample draws a beat period (codes,
  log-uniform in `periods` = (min, max)) and a phase; the channels are the
  phase of each cycle (`cycles`, in beats: 0.5 eighth notes, 1 beats, 4 bars
  of 4/4) at each step.
  """
  periods: tuple[float, float]
  cycles: tuple[float, ...] = DEFAULT_BEAT_CYCLES

  @property
  def channels(self) -> int:
    return 2 * len(self.cycles)

  def __call__(self, rng: jax.Array, batch_shape: tuple[int, ...], steps: int,
               first_step=0) -> jax.Array:
    """[*batch_shape, steps, channels] from step `first_step` on."""
    period_rng, phase_rng = jax.random.split(rng)
    one = tuple(batch_shape) + (1, 1)
    low, high = jnp.log(float(self.periods[0])), jnp.log(float(self.periods[-1]))
    period = jnp.exp(jax.random.uniform(period_rng, one, minval=low, maxval=high))
    phase = jax.random.uniform(phase_rng, one, maxval=max(self.cycles))  # In beats.
    beats = (first_step + jnp.arange(steps, dtype=jnp.float32))[:, None] / period + phase
    angles = 2.0 * jnp.pi * beats / jnp.asarray(self.cycles, jnp.float32)
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class RhythmEnvelopes(nnx.Variable):
  """The onset envelopes a `RhythmBank` draws from: data, not trained."""


# The bank is stretches of this many codes (24 s), each from one place in the songs; the
# next stretch is another song's, at another tempo.
RHYTHM_BANK_BLOCK = 512


class RhythmBank(nnx.Module):
  """A generator's rhythm: the onset envelope of a stretch of the training songs.

  Each sample draws a start in the bank (`steps` codes' onset strengths,
  `frames` a code: the mean over its frames, or each of its frames;
  standardized; filled from the training codes before step 0 and saved with
  the generator) and reads on from there, one channel a frame. The generator
  learns to put its events where the envelope has them (the discriminator
  sees the envelope beside the codes, real and generated alike); what is
  played there, timbre and harmony, is its own. Called like a `BeatClock`, so
  long pieces, continuations and streams read one envelope on across their
  windows.

  Only sampling reads the bank (in training the generator follows each real
  crop's own envelope). A start lies in the first half of one of the bank's
  stretches, so a piece of up to half a stretch (12 s) keeps one song's rhythm
  throughout; longer pieces read on into the next stretch. Drawn anywhere, 42%
  of 10 s pieces crossed into another song's tempo, and their envelopes' pulse
  clarity fell from 0.58 to 0.50.

  With one value a code the generator knows in which code an onset falls but
  not on which of its frames: held-out songs' pulse clarity is higher from
  their frames than from code-long means of them (0.635 against 0.611), a
  generator's given the means lower (0.525 against 0.544), its hits a frame
  or two off the beat (docs/create.md, "Where in its code an onset falls").
  """

  def __init__(self, steps: int, frames: int = 1):
    self.channels = frames
    # (steps,) for one frame a code: the layout of runs from before `frames`.
    shape = (steps,) if frames == 1 else (steps, frames)
    self.envelopes = RhythmEnvelopes(jnp.zeros(shape, jnp.float32))

  def __call__(self, rng: jax.Array, batch_shape: tuple[int, ...], steps: int,
               first_step=0) -> jax.Array:
    """[*batch_shape, steps, frames] from step `first_step` on."""
    envelopes = jax.lax.stop_gradient(jnp.asarray(self.envelopes.value))  # Loaded: NumPy.
    size = envelopes.shape[0]
    envelopes = envelopes.reshape(size, self.channels)
    block = min(RHYTHM_BANK_BLOCK, size)
    stretch_rng, offset_rng = jax.random.split(rng)
    shape = tuple(batch_shape) + (1,)
    # Neither draw depends on `steps`: every window of a piece finds the same start.
    start = (jax.random.randint(stretch_rng, shape, 0, size // block) * block
             + jax.random.randint(offset_rng, shape, 0, max(block // 2, 1)))
    index = (start + first_step + jnp.arange(steps)) % size
    return envelopes[index]


def beat_clock_of(model_config) -> 'BeatClock | RhythmBank | None':
  """The beat clock of a configs/gan.py `model` section (runs from before it: none)."""
  bank_steps = int(model_config.get('rhythm_bank_steps', 0))
  if bank_steps:
    return RhythmBank(bank_steps, rhythm_frames(model_config))
  periods = tuple(model_config.get('beat_periods', ()))
  if not periods:
    return None
  return BeatClock(tuple(float(p) for p in periods),
                   tuple(float(c) for c in model_config.get('beat_cycles', DEFAULT_BEAT_CYCLES)))


class Discriminator(nnx.Module):
  """Latents [b, steps, dim] -> realness logits [b] (mean of per-step logits)."""

  def __init__(self, *, codebook_dim: int, width: int, dilations: Sequence[int],
               rngs: nnx.Rngs, dtype=jnp.float32):
    self.conv_in = layers.conv(codebook_dim, width, 1, rngs=rngs, dtype=dtype)
    self.blocks = nnx.List([DilatedBlock(width, d, rngs=rngs, dtype=dtype, negative_slope=0.2)
                            for d in dilations])
    # +1 channel: the batch's feature std (minibatch discrimination), which
    # lets the discriminator see a collapsed, too-uniform batch.
    self.head = layers.conv(width + 1, 1, 1, rngs=rngs, dtype=dtype)

  def __call__(self, latents: jax.Array) -> jax.Array:
    h = self.conv_in(latents)
    for block in self.blocks:
      h = block(h)
    h = jax.nn.leaky_relu(h, 0.2)
    batch_std = jnp.mean(jnp.std(h.astype(jnp.float32), axis=0))
    h = jnp.concatenate([h, jnp.broadcast_to(batch_std, h.shape[:-1] + (1,)).astype(h.dtype)], -1)
    return jnp.mean(self.head(h).astype(jnp.float32), axis=(1, 2))


def lagged_products(series: jax.Array, min_lag: int, max_lag: int) -> jax.Array:
  """[b, steps, channels, dim] -> [b, channels * lags]: for each lag in [min_lag, max_lag],
  the mean over the steps of the dot product of each step with the step `lag` later
  (the rhythm judge's autocorrelations, the similarity judge's self-similarities).
  Lags a short sequence does not reach are 0."""
  steps = series.shape[1]
  lags = range(min_lag, min(max_lag, steps - 1) + 1)
  products = jnp.stack(
      [jnp.mean(jnp.sum(series[:, lag:] * series[:, :steps - lag], axis=-1), axis=1)
       for lag in lags], -1)  # [b, channels, lags]
  products = jnp.pad(products, ((0, 0), (0, 0), (0, max_lag - min_lag + 1 - len(lags))))
  return products.reshape(products.shape[0], -1)


class RhythmDiscriminator(nnx.Module):
  """Latents [b, steps, dim] -> logits [b], from the crop's periodicity alone.

  A convolutional discriminator can tell a crop with a beat from one without,
  but nothing in its view says "the same kind of event every n steps", so its
  judgement gives the generator no pull toward a pulse. This one is handed
  the rhythm: a few onset envelopes it learns from the latents (a kernel-3
  convolution: change from step to step), each normalised over the crop, their
  autocorrelations at every lag in [min_lag, max_lag] (the beat-to-bar range),
  and a small MLP that judges those. What it sees is invariant to where in the
  crop events fall, so the generator can only satisfy it by making events
  recur at the lags real music has.
  """

  def __init__(self, *, codebook_dim: int, width: int, lags: tuple[int, int],
               rngs: nnx.Rngs, dtype=jnp.float32, envelopes: int = 4):
    self.min_lag, self.max_lag = int(lags[0]), int(lags[1])
    if not 1 <= self.min_lag <= self.max_lag:
      raise ValueError(f'rhythm lags {lags}: need 1 <= min_lag <= max_lag')
    self.onset_in = layers.conv(codebook_dim, width, 3, rngs=rngs, dtype=dtype)
    self.onset_out = layers.conv(width, envelopes, 1, rngs=rngs, dtype=dtype)
    num_lags = self.max_lag - self.min_lag + 1
    self.hidden = nnx.Linear(envelopes * num_lags, width, rngs=rngs)
    self.out = nnx.Linear(width, 1, rngs=rngs)

  def __call__(self, latents: jax.Array) -> jax.Array:
    return self.out(jax.nn.leaky_relu(self.hidden(self.features(latents)), 0.2))[:, 0]

  def features(self, latents: jax.Array) -> jax.Array:
    """[b, steps, dim] -> [b, envelopes * lags]: what the MLP judges (also for matching)."""
    h = jax.nn.leaky_relu(self.onset_in(latents), 0.2)
    envelopes = jax.nn.softplus(self.onset_out(h)).astype(jnp.float32)  # [b, steps, e]
    return self.autocorrelation(envelopes)

  def autocorrelation(self, envelopes: jax.Array) -> jax.Array:
    """[b, steps, e] -> [b, e * lags]: each envelope's normalised autocorrelation."""
    centred = envelopes - jnp.mean(envelopes, axis=1, keepdims=True)
    centred = centred * jax.lax.rsqrt(jnp.mean(centred**2, axis=1, keepdims=True) + 1e-4)
    return lagged_products(centred[..., None], self.min_lag, self.max_lag)


class SimilarityDiscriminator(nnx.Module):
  """Latents [b, steps, dim] -> logits [b], from how alike the crop's steps are at each lag.

  Held notes make a step like the next few; a bar that comes back makes a step
  like the one a bar later. The convolutional judges have no view that says
  either, and their judgement gives the generator no pull toward held pitches
  or returning bars. This one is handed the crop's self-similarity: a few
  embeddings of each step that it learns (kernel 1: what sounds at the step,
  such as which pitches), each step's cosine similarity with the step `lag`
  later, averaged over the crop, for every lag in [min_lag, max_lag], and a
  small MLP that judges those. Like the rhythm judge's, its view is blind to
  where in the crop things happen.
  """

  def __init__(self, *, codebook_dim: int, width: int, lags: tuple[int, int],
               rngs: nnx.Rngs, dtype=jnp.float32, heads: int = 4, head_dim: int = 16):
    self.min_lag, self.max_lag = int(lags[0]), int(lags[1])
    if not 1 <= self.min_lag <= self.max_lag:
      raise ValueError(f'similarity lags {lags}: need 1 <= min_lag <= max_lag')
    self.heads, self.head_dim = heads, head_dim
    self.embed_in = layers.conv(codebook_dim, width, 1, rngs=rngs, dtype=dtype)
    self.embed_out = layers.conv(width, heads * head_dim, 1, rngs=rngs, dtype=dtype)
    self.hidden = nnx.Linear(heads * (self.max_lag - self.min_lag + 1), width, rngs=rngs)
    self.out = nnx.Linear(width, 1, rngs=rngs)

  def __call__(self, latents: jax.Array) -> jax.Array:
    return self.out(jax.nn.leaky_relu(self.hidden(self.features(latents)), 0.2))[:, 0]

  def features(self, latents: jax.Array) -> jax.Array:
    """[b, steps, dim] -> [b, heads * lags]: what the MLP judges (also for matching)."""
    h = jax.nn.leaky_relu(self.embed_in(latents), 0.2)
    embeddings = self.embed_out(h).astype(jnp.float32)
    return self.similarity(embeddings.reshape(embeddings.shape[:2] + (self.heads,
                                                                     self.head_dim)))

  def similarity(self, embeddings: jax.Array) -> jax.Array:
    """[b, steps, heads, head_dim] -> [b, heads * lags]: mean cosine similarity at each lag.

    Centred over the crop first: what every step shares (the crop's timbre) would
    make all steps alike at every lag.
    """
    centred = embeddings - jnp.mean(embeddings, axis=1, keepdims=True)
    unit = centred * jax.lax.rsqrt(jnp.sum(centred**2, axis=-1, keepdims=True) + 1e-6)
    return lagged_products(unit, self.min_lag, self.max_lag)


class OnsetRegressor(nnx.Module):
  """Latents [b, steps, dim] -> the onset strength [b, steps, frames] of each code (of
  each of its frames, or their mean: `frames` 1), as decoded.

  Trained on real crops against their own onset envelopes (a regression, not a
  judgement), so it learns what in the codes the ears hear as an onset. The
  generator is then asked to put onsets where the envelope it was given has them,
  as this reads them: a direct, local pull (an auxiliary-classifier GAN's, Odena et
  al. 2017) where the discriminator's only says real or not.
  """

  def __init__(self, *, codebook_dim: int, width: int, rngs: nnx.Rngs, dtype=jnp.float32,
               frames: int = 1):
    self.conv_in = layers.conv(codebook_dim, width, 3, rngs=rngs, dtype=dtype)
    self.blocks = nnx.List([DilatedBlock(width, d, rngs=rngs, dtype=dtype, negative_slope=0.2)
                            for d in (1, 2)])  # 11 codes: an onset and its surroundings.
    self.head = layers.conv(width, frames, 1, rngs=rngs, dtype=dtype)

  def __call__(self, latents: jax.Array) -> jax.Array:
    h = self.conv_in(latents)
    for block in self.blocks:
      h = block(h)
    return self.head(jax.nn.leaky_relu(h, 0.2)).astype(jnp.float32)


class MultiScaleDiscriminator(nnx.Module):
  """Latents [b, steps, dim] -> logits [b, scales (+1) (+1)]: one `Discriminator` per time
  scale (then a `RhythmDiscriminator` when given `rhythm_lags` and a
  `SimilarityDiscriminator` when given `similarity_lags`, a column each).

  Scale i sees the sequence average-pooled by 2**i (MelGAN's multi-scale
  discriminator, here over latents): the same dilations span 2**i times as
  many steps, so the last scale judges structure across the whole crop while
  the first judges step-to-step texture. The losses average over the columns.
  With `onset_dim`, it also holds an `OnsetRegressor` of latents of that width
  (the codes alone: none of the channels judged beside them), reading
  `onset_frames` values a code.
  """

  def __init__(self, *, codebook_dim: int, width: int, dilations: Sequence[int],
               num_scales: int, rngs: nnx.Rngs, dtype=jnp.float32,
               rhythm_lags: Sequence[int] = (), onset_dim: int = 0, onset_frames: int = 1,
               similarity_lags: Sequence[int] = ()):
    if num_scales < 1:
      raise ValueError(f'discriminator num_scales={num_scales}: must be >= 1')
    self.scales = nnx.List([
        Discriminator(codebook_dim=codebook_dim, width=width, dilations=dilations, rngs=rngs,
                      dtype=dtype) for _ in range(num_scales)])
    self.rhythm = (RhythmDiscriminator(codebook_dim=codebook_dim, width=width,
                                       lags=tuple(rhythm_lags), rngs=rngs, dtype=dtype)
                   if rhythm_lags else None)
    self.similarity = (SimilarityDiscriminator(codebook_dim=codebook_dim, width=width,
                                               lags=tuple(similarity_lags), rngs=rngs,
                                               dtype=dtype)
                       if similarity_lags else None)
    self.onsets = (OnsetRegressor(codebook_dim=onset_dim, width=width, rngs=rngs, dtype=dtype,
                                  frames=onset_frames) if onset_dim else None)

  def __call__(self, latents: jax.Array) -> jax.Array:
    logits = []
    for scale, discriminator in enumerate(self.scales):
      logits.append(discriminator(average_pool(latents, 2**scale)))
    for judge in (self.rhythm, self.similarity):
      if judge is not None:
        logits.append(judge(latents))
    return jnp.stack(logits, axis=-1)


def average_pool(latents: jax.Array, factor: int) -> jax.Array:
  """[b, steps, dim] -> [b, ceil(steps / factor), dim]: means of `factor` steps.

  A last, partial group is the mean of the steps it has, so a short sequence
  still has one pooled step.
  """
  if factor == 1:
    return latents
  batch, steps, dim = latents.shape
  groups = -(-steps // factor)
  pad = groups * factor - steps
  padded = jnp.pad(latents, ((0, 0), (0, pad), (0, 0)))
  counts = jnp.pad(jnp.ones((steps,), latents.dtype), (0, pad)).reshape(groups, factor)
  sums = padded.reshape(batch, groups, factor, dim).sum(axis=2)
  return sums / counts.sum(axis=1)[None, :, None]


def receptive_field(dilations: Sequence[int]) -> int:
  """Steps one output step of a stack of `DilatedBlock`s sees (kernel 3)."""
  return 1 + 2 * sum(int(d) for d in dilations)


def generator_from_config(model_config, *, num_levels: int, codebook_size: int,
                          codebook_dim: int, seed: int) -> Generator:
  """The generator of a configs/gan.py `model` section."""
  return Generator(
      noise_dim=model_config.noise_dim, noise_channels=model_config.noise_channels,
      width=model_config.generator_width, dilations=tuple(model_config.generator_dilations),
      num_levels=num_levels, codebook_size=codebook_size, codebook_dim=codebook_dim,
      output=model_config.output,
      rngs=nnx.Rngs(seed), dtype=jnp.dtype(model_config.dtype),
      context_conditioning=is_context_conditioned(model_config),
      beat_clock=beat_clock_of(model_config),
      noise_smoothing=int(model_config.get('noise_smoothing', 1)))  # Runs from before it: 1.


def longest_context(max_context_fraction: float, window_steps: int) -> int:
  """Codes of real context a window of `window_steps` holds at most (at least one code is
  left to generate)."""
  return max(1, min(window_steps - 1, int(round(float(max_context_fraction) * window_steps))))


def is_context_conditioned(model_config) -> bool:
  """Whether a configs/gan.py `model` section trains with random context masking (runs
  from before the field: no)."""
  return float(model_config.get('context_probability', 0.0)) > 0.0


def discriminator_from_config(model_config, *, codebook_dim: int, seed: int,
                              onset_following: bool = False) -> MultiScaleDiscriminator:
  """The discriminator of a configs/gan.py `model` section.

  With context masking it also sees the mask, one more channel (as
  inpainting discriminators do), real and generated alike, so it knows where
  a continuation begins. `onset_following` (config.loss.onset_following_weight
  > 0): with an `OnsetRegressor`.
  """
  return MultiScaleDiscriminator(
      codebook_dim=(codebook_dim + int(is_context_conditioned(model_config))
                    + (rhythm_frames(model_config) if has_rhythm_bank(model_config) else 0)),
      width=model_config.discriminator_width,
      dilations=tuple(model_config.discriminator_dilations),
      num_scales=int(model_config.discriminator_scales), rngs=nnx.Rngs(seed),
      dtype=jnp.dtype(model_config.dtype),
      rhythm_lags=tuple(model_config.get('rhythm_lags', ())),  # Runs from before it: none.
      similarity_lags=tuple(model_config.get('similarity_lags', ())),
      onset_dim=codebook_dim if onset_following else 0,
      onset_frames=rhythm_frames(model_config))


def generator_temperature(model_config) -> float:
  """The temperature the generator's output mode uses."""
  if model_config.output == 'gumbel':
    return float(model_config.gumbel_temperature)
  return float(model_config.snap_temperature)


def sample_codes(generator: Generator, codebooks: jax.Array, temperature: float,
                 rng: jax.Array, batch: int, steps: int, context=None, rhythm=None,
                 global_noise_scale=1.0):
  """(latents [batch, steps, dim], codes [batch, steps, levels], code_probs) from noise
  (and a context, see `Generator`; and for a generator with a `RhythmBank`, the onset
  envelopes [batch, steps, frames] to follow instead of the bank's). The global noise is
  scaled by `global_noise_scale` (a style strength, runs/style_strength.py)."""
  noise_rng, gumbel_rng = jax.random.split(rng)
  global_noise, step_noise = generator.sample_noise(noise_rng, batch, steps)
  global_noise = global_noise * global_noise_scale
  if rhythm is not None:
    step_noise = jnp.concatenate([step_noise[..., :generator.noise_channels],
                                  rhythm.astype(step_noise.dtype)], axis=-1)
  return generator(global_noise, step_noise, codebooks, gumbel_rng, temperature, context)


def has_rhythm_bank(model_config) -> bool:
  return int(model_config.get('rhythm_bank_steps', 0)) > 0


def rhythm_frames(model_config) -> int:
  """Onset strengths a code of a configs/gan.py `model` section's rhythm (runs from before
  the field: 1, the mean over the code's frames)."""
  return int(model_config.get('rhythm_frames', 1))
