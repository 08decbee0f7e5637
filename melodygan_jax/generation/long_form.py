"""Any length without seams: windowed generation over one continuous coordinate sequence.

As in Musika, one noise sequence (the latent coordinates) spans the whole
sample, and the sample is generated in windows of the training crop that run
the generator on their slice of it; consecutive windows overlap by a quarter
window, and the generator's continuous outputs (features, before
quantization) are cross-faded there with raised-cosine ramps that sum to
one. The blended sequence is quantized once and decoded and inverted once, so
there is no join in code, mel or audio, and nothing repeats: every step has
its own coordinates.

Each window also sees `context_steps` coordinates on each side, whose outputs
are dropped. The generator is convolutional, so with half its receptive field
of context (the default) every window computes exactly what one pass over the
whole sequence would, and neighbours agree in their overlap: the joins are
seamless by construction, not by hiding. (Without context, a window's edges
see zero padding: neighbours disagree in the overlap, and the cross-fade
blends two different continuations, which the spectral flux at the joins
shows.) Windows bound the memory and the shape a step compiles for, and they
are where a continuation's first window is fitted to a prompt.

A loop (`loop=True`) puts the coordinates on a circle: the windows run past
the end into the start, and their overlap-add wraps around, so the last code
flows into the first exactly as any two neighbours do.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from melodygan_jax.models import gan as gan_models

OVERLAP_FRACTION = 0.25  # Of a window. Neighbours agree there, so a little is enough.


@dataclasses.dataclass(frozen=True)
class WindowPlan:
  """Where each window of one sample lies on its coordinate sequence.

  Attributes:
    output_steps: codes of the sample.
    window_steps: codes each window contributes (the training crop, or the
      whole sample when it is shorter: one pass).
    starts: first output step of each window.
    overlap_steps: steps two neighbouring windows share.
    context_steps: coordinates each window also sees on each side.
    blend_steps: output steps the windows cover: at least output_steps (the
      last window may run past the end, and is cut), or exactly output_steps
      on a loop, where positions wrap.
    loop: positions are circular.
  """
  output_steps: int
  window_steps: int
  starts: tuple[int, ...]
  overlap_steps: int
  context_steps: int
  blend_steps: int
  loop: bool

  @property
  def coordinate_steps(self) -> int:
    """Length of the noise sequence: the windows' reach, context included."""
    return self.blend_steps if self.loop else self.blend_steps + 2 * self.context_steps

  @property
  def view_steps(self) -> int:
    """Coordinates one window's generator run sees."""
    return self.window_steps + 2 * self.context_steps

  @property
  def join_steps(self) -> tuple[int, ...]:
    """Steps where one window hands over to the next (the middle of each overlap)."""
    if len(self.starts) == 1 and not self.loop:
      return ()
    pairs = list(zip(self.starts[:-1], self.starts[1:]))
    if self.loop:  # The last window hands over to the first across the end.
      pairs.append((self.starts[-1], self.starts[0] + self.blend_steps))
    joins = [(start + next_start + self.window_steps) // 2 for start, next_start in pairs]
    limit = self.output_steps
    return tuple(sorted({step % limit if self.loop else step for step in joins
                         if self.loop or step < limit}))

  def window_indices(self) -> np.ndarray:
    """[windows, window_steps] output position of every step of every window."""
    indices = np.asarray(self.starts)[:, None] + np.arange(self.window_steps)
    return indices % self.blend_steps if self.loop else indices

  def view_indices(self) -> np.ndarray:
    """[windows, view_steps] coordinate index of every step each window's run sees.

    Output position p is coordinate p + context_steps (p itself on a loop).
    """
    indices = np.asarray(self.starts)[:, None] + np.arange(self.view_steps)
    if self.loop:
      return (indices - self.context_steps) % self.blend_steps
    return indices

  def window_weights(self) -> np.ndarray:
    """[windows, window_steps] cross-fade weights; neighbours' ramps sum to one a hop
    apart (closer, on a loop, `blend_windows` normalizes their sum)."""
    weights = np.ones((len(self.starts), self.window_steps), np.float32)
    if len(self.starts) == 1 and not self.loop:
      return weights
    ramp = np.sin(0.5 * np.pi * (np.arange(self.overlap_steps) + 0.5) / self.overlap_steps)**2
    weights[:, :self.overlap_steps] = ramp
    weights[:, self.window_steps - self.overlap_steps:] = ramp[::-1]
    return weights


def overlap_steps(window_steps: int) -> int:
  """Steps two neighbouring windows share."""
  return max(1, int(round(window_steps * OVERLAP_FRACTION)))


def plan_windows(output_steps: int, window_steps: int, loop: bool = False,
                 context_steps: int = 0) -> WindowPlan:
  """The windows of a sample of `output_steps` codes.

  A sample no longer than a window is one pass (no joins), unless it loops.
  `context_steps`: coordinates each window sees beyond its edges (half the
  generator's receptive field makes windows agree exactly).

  Raises:
    ValueError: a length or window below one step, or negative context.
  """
  if output_steps < 1 or window_steps < 2 or context_steps < 0:
    raise ValueError(f'windows: {output_steps} steps in windows of {window_steps} with '
                     f'{context_steps} context: need at least 1 step, windows of 2, context >= 0')
  if output_steps <= window_steps and not loop:
    return WindowPlan(output_steps, output_steps, (0,), 0, context_steps, output_steps, False)
  overlap = overlap_steps(window_steps)
  hop = window_steps - overlap
  if loop:  # Evenly around the circle, at most a hop apart; the last wraps into the first.
    count = max(1, -(-output_steps // hop))
    starts = tuple(int(round(i * output_steps / count)) for i in range(count))
    return WindowPlan(output_steps, window_steps, starts, overlap, context_steps,
                      output_steps, True)
  count = 1 + -(-(output_steps - window_steps) // hop)
  starts = tuple(i * hop for i in range(count))
  return WindowPlan(output_steps, window_steps, starts, overlap, context_steps,
                    starts[-1] + window_steps, False)


def plan_for(generator, steps: int, loop: bool = False) -> WindowPlan:
  """The windows of a sample of `steps` codes from a loading.LoadedGenerator."""
  return plan_windows(steps, generator.window_steps, loop, generator.context_steps)


def step_noise_key_and_gumbel_key(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """A sample's keys for its coordinate noise and its code draws (the global noise is
  drawn from fold_in(key, 0), see generation/sample.py)."""
  step_key, gumbel_key = jax.random.split(jax.random.fold_in(key, 1))
  return step_key, gumbel_key


def coordinate_noise(key: jax.Array, plan: WindowPlan, noise_channels: int,
                     clock=None) -> jax.Array:
  """A sample's latent coordinates, [coordinate_steps, channels]: its step noise and, for
  a generator with a beat clock, the clock (see gan_models.step_inputs)."""
  step_key, _ = step_noise_key_and_gumbel_key(key)
  return gan_models.step_inputs(step_key, (plan.coordinate_steps,), noise_channels, clock)


def given_rhythm(clock, noise_channels: int, keys: jax.Array, plan: WindowPlan) -> jax.Array:
  """The rhythm each sample of `keys` is given at its output steps: the beat clock's (or
  rhythm bank's) channels of its coordinates, [batch, output_steps, clock channels]."""
  first = 0 if plan.loop else plan.context_steps  # Output position p is coordinate p + first.

  def one(key):
    coordinates = coordinate_noise(key, plan, noise_channels, clock)
    return coordinates[first:first + plan.output_steps, noise_channels:]
  return jax.vmap(one)(keys)


def blend_windows(window_features: jax.Array, plan: WindowPlan) -> jax.Array:
  """[windows, window_steps, features] -> [output_steps, features] by normalized overlap-add.

  Dividing by the summed weights keeps the first and last part-windows (which
  have no partner outside a loop) as they are.
  """
  indices = jnp.asarray(plan.window_indices().reshape(-1))
  weights = jnp.asarray(plan.window_weights().reshape(-1))
  features = window_features.reshape((-1, window_features.shape[-1]))
  total = jnp.zeros((plan.blend_steps, features.shape[-1]), features.dtype)
  total = total.at[indices].add(features * weights[:, None])
  weight_sum = jnp.zeros((plan.blend_steps,), features.dtype).at[indices].add(weights)
  return (total / weight_sum[:, None])[:plan.output_steps]


def window_features(generator, global_noise: jax.Array, step_noise: jax.Array,
                    plan: WindowPlan) -> jax.Array:
  """The generator's features of each window: [windows, window_steps, features].

  Args:
    global_noise: [noise_dim], or [coordinate_steps, noise_dim] for a style
      that moves along the sample.
    step_noise: [coordinate_steps, noise_channels], the coordinates.
  """
  indices = jnp.asarray(plan.view_indices())
  if global_noise.ndim == 2:
    view_global = global_noise[indices]
  else:
    view_global = jnp.broadcast_to(global_noise, (len(plan.starts),) + global_noise.shape)
  features = generator.features(view_global, step_noise[indices])
  return features[:, plan.context_steps:plan.context_steps + plan.window_steps]


@functools.partial(jax.jit, static_argnames=('graphdef', 'plan', 'temperature'))
def generate_codes(graphdef, params, codebooks, keys, global_noise, plan: WindowPlan,
                   temperature: float, step_noise=None):
  """Codes [batch, output_steps, levels]: sample i from keys[i] and global_noise[i] alone.

  Args:
    graphdef, params: the generator.
    codebooks: [levels, codebook_size, dim], the VQ-VAE's.
    keys: [batch] sample keys.
    global_noise: [batch, noise_dim], or [batch, coordinate_steps, noise_dim].
    plan: the windows (the same for every sample of the batch).
    temperature: the generator's output temperature.
    step_noise: [batch, coordinate_steps, noise_channels] coordinates to use
      instead of those drawn from the keys (a continuation's fitted prompt).
  """
  generator = nnx.merge(graphdef, params)

  def one(key, noise, coordinates):
    _, gumbel_key = step_noise_key_and_gumbel_key(key)
    if coordinates is None:
      coordinates = coordinate_noise(key, plan, generator.noise_channels,
                                     generator.beat_clock)
    features = blend_windows(window_features(generator, noise, coordinates, plan), plan)
    return generator.quantize(features[None], codebooks, gumbel_key, temperature)[1][0]

  if step_noise is None:
    return jax.vmap(lambda key, noise: one(key, noise, None))(keys, global_noise)
  return jax.vmap(one)(keys, global_noise, step_noise)


def steps_to_samples(steps, time_stride: int, hop_length: int) -> list[int]:
  """Code positions -> audio sample positions (a code covers time_stride frames)."""
  return [int(step) * time_stride * hop_length for step in steps]


def loop_audio(extended: np.ndarray, margin_samples: int, period_samples: int,
               crossfade_samples: int) -> np.ndarray:
  """A seamless loop from audio rendered with `margin_samples` of wrap-around each side.

  `extended` is the rendering of [end margin | one period | start margin]. Its
  middle period is the loop, except that its start is cross-faded in from the
  rendering that follows the end: the file's last sample is followed (on
  wrap-around) by what followed it in the rendering.
  """
  if crossfade_samples > margin_samples:
    raise ValueError(f'loop cross-fade {crossfade_samples} longer than its margin '
                     f'{margin_samples}')
  body = np.array(extended[margin_samples:margin_samples + period_samples], np.float32)
  after_end = extended[margin_samples + period_samples:
                       margin_samples + period_samples + crossfade_samples]
  fade_in = np.sin(0.5 * np.pi * (np.arange(crossfade_samples) + 0.5) / crossfade_samples)**2
  body[:crossfade_samples] = fade_in * body[:crossfade_samples] + (1 - fade_in) * after_end
  return body
