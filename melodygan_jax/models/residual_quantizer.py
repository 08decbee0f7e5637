"""Residual vector quantization (SoundStream, EnCodec, DAC).

Level 1 quantizes the encoder output, each further level the residual that the
levels before it left: a latent vector is the sum of one codebook entry per
level, and its token form is one integer code per level. Each level is a
`VectorQuantizer`, with its own EMA updates, k-means init, dead-code restarts
and usage window. Decoding the first n levels alone gives a coarser latent at
n / levels of the bit rate; quantizer dropout (training each example with a
random number of levels) makes that coarser latent a good one, so one model
serves several bit rates.

Factorized lookup (DAC, after ViT-VQGAN), when `lookup_dim` > 0: each level
projects its input to `lookup_dim` dimensions, finds the code by cosine
similarity on the unit sphere (l2-normalized input and codes), and projects
the code back; the projections are learned, the codes still follow their EMA.
A low-dimensional, normalized lookup spreads the use over more codes. The
latent of a code is then its back-projection: `codebooks()` returns those
[levels, codebook_size, dim] tables, so decoding and the GAN see the same
contract either way.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from melodygan_jax.models import quantizer as quantizer_lib


def residual_codes(z: jax.Array, codebooks: jax.Array) -> jax.Array:
  """Greedy residual lookup, on plain arrays (the GAN snaps with it).

  Args:
    z: [..., dim] vectors.
    codebooks: [levels, codebook_size, dim].

  Returns:
    [..., levels] int32 codes.
  """
  residual = z.astype(jnp.float32)
  codes = []
  for codebook in codebooks:
    level_codes = quantizer_lib.nearest_codes(residual, codebook)
    residual = residual - jnp.take(codebook, level_codes, axis=0)
    codes.append(level_codes)
  return jnp.stack(codes, axis=-1)


def codes_to_latents(codes: jax.Array, codebooks: jax.Array) -> jax.Array:
  """[..., n] codes of the first n levels, [levels, size, dim] -> [..., dim] sums."""
  latents = jnp.zeros(codes.shape[:-1] + codebooks.shape[-1:], jnp.float32)
  for level in range(codes.shape[-1]):
    latents = latents + jnp.take(codebooks[level], codes[..., level], axis=0)
  return latents


def sample_active_levels(rng: jax.Array, batch: int, num_levels: int,
                         dropout_rate: float) -> jax.Array:
  """Levels each example keeps: all, or with `dropout_rate` uniform in 1..levels (DAC).

  Returns:
    [batch] int32.
  """
  drop_rng, count_rng = jax.random.split(rng)
  dropped = jax.random.uniform(drop_rng, (batch,)) < dropout_rate
  counts = jax.random.randint(count_rng, (batch,), 1, num_levels + 1)
  return jnp.where(dropped, counts, num_levels).astype(jnp.int32)


class ResidualVectorQuantizer(nnx.Module):
  """Maps [..., dim] vectors to sums of one of `codebook_size` codes per level."""

  def __init__(self, num_levels: int, codebook_size: int, codebook_dim: int, *,
               decay: float = 0.99, usage_window_steps: int = 100,
               restart_every_steps: int = 100, lookup_dim: int = 0, rngs: nnx.Rngs):
    self.num_levels = num_levels
    self.codebook_size = codebook_size
    self.factorized = lookup_dim > 0
    self.levels = nnx.List([quantizer_lib.VectorQuantizer(
        codebook_size, lookup_dim if self.factorized else codebook_dim, decay=decay,
        cosine=self.factorized, usage_window_steps=usage_window_steps,
        restart_every_steps=restart_every_steps, rngs=rngs) for _ in range(num_levels)])
    if self.factorized:
      self.in_projections = nnx.List([nnx.Linear(codebook_dim, lookup_dim, rngs=rngs)
                                      for _ in range(num_levels)])
      self.out_projections = nnx.List([nnx.Linear(lookup_dim, codebook_dim, rngs=rngs)
                                       for _ in range(num_levels)])

  def _lookup_input(self, index: int, residual: jax.Array) -> jax.Array:
    """What level `index` looks up for `residual` [..., dim]: itself, or its unit projection."""
    if not self.factorized:
      return residual
    return quantizer_lib.l2_normalize(self.in_projections[index](residual))

  def _code_latents(self, index: int, looked_up: jax.Array) -> jax.Array:
    """Level `index`'s looked-up vectors [..., lookup] -> latents [..., dim]."""
    return self.out_projections[index](looked_up) if self.factorized else looked_up

  def codebooks(self) -> jax.Array:
    """[levels, codebook_size, dim] float32: the latent of every code of every level."""
    return jnp.stack([self._code_latents(index, level.codebook[...])
                      for index, level in enumerate(self.levels)]).astype(jnp.float32)

  def nearest_codes(self, z: jax.Array) -> jax.Array:
    """[..., dim] -> [..., levels] int32 (plain: what `residual_codes` finds)."""
    residual = z.astype(jnp.float32)
    codes = []
    for index, level in enumerate(self.levels):
      level_codes = level.nearest_codes(self._lookup_input(index, residual))
      residual = residual - self._code_latents(index, level.codes_to_latents(level_codes))
      codes.append(level_codes)
    return jnp.stack(codes, axis=-1)

  def codes_to_latents(self, codes: jax.Array) -> jax.Array:
    """[..., n] codes of the first n <= levels levels -> [..., dim]."""
    return codes_to_latents(codes, self.codebooks())

  def __call__(self, z_e: jax.Array, active_levels: jax.Array | None = None
               ) -> tuple[jax.Array, dict]:
    """Quantizes encoder outputs.

    Args:
      z_e: [batch, steps, dim] encoder outputs.
      active_levels: [batch] int, how many levels each example's latent sums
        (quantizer dropout); None: all.

    Returns:
      z_q: [batch, steps, dim] quantized latents, straight-through to z_e.
      aux: 'codes' [batch, steps, levels] int32 (of every level, dropped or
        not), 'residuals' [levels, batch, steps, dim or lookup_dim] (each
        level's input as looked up, for its EMA update), 'commitment_loss'
        (summed over levels, as EnCodec),
        'perplexity' [levels] of this batch's code use.
    """
    z = z_e.astype(jnp.float32)
    residual = z
    quantized = jnp.zeros_like(z)
    codes, residuals, perplexities = [], [], []
    commitment_loss = 0.0
    for index, level in enumerate(self.levels):
      looked_up = self._lookup_input(index, residual)
      level_codes = level.nearest_codes(looked_up)
      code_vectors = level.codes_to_latents(level_codes)
      commitment_loss += jnp.mean(jnp.square(looked_up - jax.lax.stop_gradient(code_vectors)))
      # Factorized: straight through the lookup, so both projections learn
      # from the decoder (DAC); plain: straight through the whole sum, below.
      level_latents = (self._code_latents(
          index, looked_up + jax.lax.stop_gradient(code_vectors - looked_up))
                       if self.factorized else code_vectors)
      if active_levels is None:
        quantized = quantized + level_latents
      else:
        keep = (index < active_levels).astype(jnp.float32)[:, None, None]
        quantized = quantized + keep * level_latents
      residuals.append(jax.lax.stop_gradient(looked_up))
      codes.append(level_codes)
      probs = jnp.mean(jax.nn.one_hot(level_codes, self.codebook_size, dtype=jnp.float32),
                       axis=tuple(range(level_codes.ndim)))
      perplexities.append(jnp.exp(-jnp.sum(probs * jnp.log(probs + 1e-10))))
      residual = residual - level_latents
    z_q = quantized if self.factorized else z + jax.lax.stop_gradient(quantized - z)
    aux = {'codes': jnp.stack(codes, axis=-1), 'residuals': jnp.stack(residuals),
           'commitment_loss': commitment_loss, 'perplexity': jnp.stack(perplexities)}
    return z_q.astype(z_e.dtype), aux

  def usage_share(self) -> jax.Array:
    """[levels] share of each level's codes used in its usage window."""
    return jnp.stack([level.usage_share() for level in self.levels])

  def update_codebook(self, residuals: jax.Array, codes: jax.Array, step: jax.Array,
                      rng: jax.Array) -> None:
    """One EMA step (and due dead-code restarts) on every level.

    Args:
      residuals: [levels, ..., dim] (aux['residuals']).
      codes: [..., levels] (aux['codes']).
      step: the train step.
      rng: folded per level.
    """
    for index, level in enumerate(self.levels):
      level.update_codebook(residuals[index], codes[..., index], step,
                            jax.random.fold_in(rng, index))

  def kmeans_init(self, z: jax.Array, rng: jax.Array, iterations: int = 10) -> None:
    """Level by level: k-means of what the levels before left of `z` [..., dim]."""
    residual = z.reshape(-1, z.shape[-1]).astype(jnp.float32)
    for index, level in enumerate(self.levels):
      looked_up = self._lookup_input(index, residual)
      level.kmeans_init(looked_up, jax.random.fold_in(rng, index), iterations)
      residual = residual - self._code_latents(
          index, level.codes_to_latents(level.nearest_codes(looked_up)))
