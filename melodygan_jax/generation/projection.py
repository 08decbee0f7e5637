"""Real audio onto the generator's inputs: a style vector, or a prompt's coordinates.

The GAN has no encoder, so real codes are projected by optimization (GAN
inversion): gradient descent on the generator's inputs, its weights frozen,
until its features match the VQ-VAE latents of real music. Both uses share it:

  style (`--style_from`): the global noise that best generates a clip (with
    per-window coordinates fitted beside it and then dropped) is that clip's
    style: the character a new sample with fresh coordinates keeps.
  continuation (`--prompt`): the prompt's style, found as above over its
    whole length, then the coordinates of the first window's leading part,
    fitted to the prompt's last codes, so the windows that follow start where
    the prompt ends, in its style (generation/continuation.py).

Noise vectors are kept on their typical sphere (norm sqrt(dim)) after every
step, as in GAN inversion practice: the norm of Gaussian noise is
concentrated, and an unconstrained fit drifts where the generator never
trained. Everything is deterministic on a given device: the same inputs
give the same fit.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from melodygan_jax.models import residual_quantizer

FIT_ITERATIONS = 200
FIT_LEARNING_RATE = 0.05


def onto_sphere(noise: jax.Array) -> jax.Array:
  """Rescales each vector (last axis) to norm sqrt(dim)."""
  norm = jnp.sqrt(jnp.sum(jnp.square(noise), axis=-1, keepdims=True))
  return noise * jnp.sqrt(float(noise.shape[-1])) / jnp.maximum(norm, 1e-6)


def feature_loss(generator, features: jax.Array, target_codes: jax.Array,
                 codebooks: jax.Array) -> jax.Array:
  """How far features [..., steps, F] are from generating target codes [..., steps, levels].

  'snap' features are latent vectors: squared distance to the codes' latent,
  in units of its variance. 'gumbel' features are logits: cross-entropy of
  the codes.
  """
  if generator.output == 'gumbel':
    logits = features.reshape(features.shape[:-1] + (generator.num_levels,
                                                     generator.codebook_size))
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits, -1),
                                         target_codes[..., None], axis=-1))
  target = residual_quantizer.codes_to_latents(target_codes, codebooks)
  return jnp.mean(jnp.square(features - target)) / (jnp.var(target) + 1e-6)


@functools.partial(jax.jit, static_argnames=('graphdef', 'free_steps', 'loss_start',
                                             'iterations', 'fit_global'))
def fit_inputs(graphdef, params, codebooks, target_codes, global_noise, step_noise,
               free_steps: int, loss_start: int = 0, iterations: int = FIT_ITERATIONS,
               fit_global: bool = True):
  """Fits the global noise and the first `free_steps` coordinates of each window's view.

  Args:
    graphdef, params: the generator (frozen).
    codebooks: [levels, codebook_size, dim].
    target_codes: [windows, steps, levels]: real codes that each view's
      outputs from `loss_start` on should generate.
    global_noise: [noise_dim], the start (shared by all windows).
    step_noise: [windows, view_steps, noise_channels], the start; coordinates
      from `free_steps` on stay as given (fresh coordinates).
    free_steps: leading coordinates of each view that are fitted.
    loss_start: first output step of each view the loss sees.
    iterations: Adam steps.
    fit_global: False: the global noise stays as given (a style found
      before), only the coordinates are fitted.

  Returns:
    (global noise [noise_dim], step noise like `step_noise`, the loss they reach).
  """
  generator = nnx.merge(graphdef, params)
  fixed_tail = step_noise[:, free_steps:]
  loss_end = loss_start + target_codes.shape[1]

  def loss_fn(inputs):
    style, free = inputs
    coordinates = jnp.concatenate([free, fixed_tail], axis=1)
    styles = jnp.broadcast_to(style, (coordinates.shape[0],) + style.shape)
    features = generator.features(styles, coordinates)[:, loss_start:loss_end]
    return feature_loss(generator, features, target_codes, codebooks)

  optimizer = optax.adam(FIT_LEARNING_RATE)
  inputs = (global_noise, step_noise[:, :free_steps])
  state = optimizer.init(inputs)

  def step(carry, _):
    inputs, state = carry
    grads = jax.grad(loss_fn)(inputs)
    if not fit_global:
      grads = (jnp.zeros_like(grads[0]), grads[1])
    updates, state = optimizer.update(grads, state, inputs)
    style, free = optax.apply_updates(inputs, updates)
    return ((onto_sphere(style), onto_sphere(free)), state), None

  (inputs, _), _ = jax.lax.scan(step, (inputs, state), None, length=iterations)
  style, free = inputs
  return style, jnp.concatenate([free, fixed_tail], axis=1), loss_fn(inputs)


def style_windows(codes: np.ndarray, window_steps: int) -> np.ndarray:
  """A clip's codes [steps, levels] cut into whole windows [windows, window_steps, levels].

  A clip shorter than one window is one window of its own length.
  """
  count = len(codes) // window_steps
  if count == 0:
    return codes[None]
  return codes[:count * window_steps].reshape((count, window_steps) + codes.shape[1:])
