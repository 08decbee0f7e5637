"""Style: the global noise as a style vector, found from a real clip, and morphs.

The generator's global noise is what stays the same along a sample (its
character). The style of a real clip is the global noise that best generates
the clip's codes (projection.fit_inputs over up to MAX_STYLE_WINDOWS windows of
it, with coordinates fitted beside it and then dropped): a sample made with
that noise and fresh coordinates keeps the character, not the notes. Two
styles morph along a sample by moving the global noise from one to the other,
one vector per coordinate.
"""
import jax
import jax.numpy as jnp
import numpy as np

from melodygan_jax.generation import projection
from melodygan_jax.generation import user_audio
from melodygan_jax.models import gan as gan_models

MAX_STYLE_WINDOWS = 8  # Windows of a clip the style is fitted to.


def find_style(generator, path: str, seed: int) -> np.ndarray:
  """The global noise [noise_dim] that best generates the clip at `path` (its style).

  `generator` is a loading.LoadedGenerator; the fit starts from noise of
  `seed`, so the same seed finds the same style.
  """
  vqvae = generator.vqvae
  samples = user_audio.normalized_level(user_audio.read_clip(path, '--style_from'))
  codes = user_audio.encode_samples(vqvae, samples, generator.config.data.stems[0])
  if len(codes) < 2:
    raise user_audio.AudioInputError(f'--style_from={path}: shorter than two codes')
  return style_of_codes(generator, codes, seed)


def style_of_codes(generator, codes: np.ndarray, seed: int) -> np.ndarray:
  """The global noise [noise_dim] that best generates `codes` [steps, levels] (see find_style)."""
  vqvae = generator.vqvae
  windows = projection.style_windows(codes, generator.window_steps)[:MAX_STYLE_WINDOWS]
  model = generator.config.model
  global_key, step_key = jax.random.split(jax.random.fold_in(jax.random.key(seed), 2**30))
  style, _, _ = projection.fit_inputs(
      generator.graphdef, generator.params, jnp.asarray(vqvae.codebooks), jnp.asarray(windows),
      jax.random.normal(global_key, (model.noise_dim,)),
      gan_models.step_inputs(step_key, windows.shape[:2], model.noise_channels,
                             generator.beat_clock),
      free_steps=windows.shape[1])
  return np.asarray(style)


def slerp(a: np.ndarray, b: np.ndarray, t) -> np.ndarray:
  """Spherical interpolation between vectors a and b at t (scalar or [n]) -> [..., dim]."""
  t = np.asarray(t, np.float64)[..., None]
  omega = np.arccos(np.clip(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))
  if omega < 1e-6:
    return ((1 - t) * a + t * b).astype(np.float32)
  return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(
      np.float32)


def morph_over_time(style_a: np.ndarray, style_b: np.ndarray, steps: int,
                    there_and_back: bool = False) -> np.ndarray:
  """[steps, noise_dim]: the global noise moving from style a to style b along a sample.

  `there_and_back` (loops): a to b by the middle and back to a at the end,
  smoothly (a raised cosine), so the end flows into the start.
  """
  if there_and_back:
    return slerp(style_a, style_b, 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(steps) / steps))
  return slerp(style_a, style_b, np.linspace(0.0, 1.0, steps))
