"""Vector quantizer with an EMA-learned codebook.

Nearest-code lookup (Euclidean, or cosine on l2-normalized vectors), straight-
through gradients and a commitment loss. The codebook is not trained by the
optimizer: `update_codebook` moves each code to the exponential moving average
of the encoder outputs assigned to it (van den Oord et al. 2017, appendix),
`kmeans_init` starts it from k-means of the first encoder outputs, and codes
unused for a whole usage window are restarted from recent encoder outputs.
"""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class CodebookVariable(nnx.Variable):
  """Quantizer state moved by EMA updates, never by gradients."""


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis, keepdims=True), 1e-12))


def nearest_codes(z: jax.Array, codebook: jax.Array, cosine: bool = False) -> jax.Array:
  """[..., dim] vectors -> [...] int32 index of the nearest of [codes, dim]."""
  scores = z @ codebook.T  # Nearest = largest 2 z.e - |e|^2 (|z|^2 is common).
  if not cosine:
    scores = 2.0 * scores - jnp.sum(codebook * codebook, axis=-1)
  return jnp.argmax(scores, axis=-1).astype(jnp.int32)


class VectorQuantizer(nnx.Module):
  """Maps [..., dim] vectors to their nearest of `codebook_size` codes."""

  def __init__(self, codebook_size: int, codebook_dim: int, *, decay: float = 0.99,
               cosine: bool = False, usage_window_steps: int = 100,
               restart_every_steps: int = 100, epsilon: float = 1e-5, rngs: nnx.Rngs):
    self.codebook_size = codebook_size
    self.decay = decay
    self.cosine = cosine
    self.usage_window_steps = usage_window_steps
    self.restart_every_steps = restart_every_steps
    self.epsilon = epsilon
    codebook = jax.random.normal(rngs.params(), (codebook_size, codebook_dim), jnp.float32)
    codebook = l2_normalize(codebook) if cosine else codebook
    self.codebook = CodebookVariable(codebook)
    self.cluster_size = CodebookVariable(jnp.ones((codebook_size,), jnp.float32))
    self.embed_sum = CodebookVariable(jnp.copy(codebook))  # Own buffer: states are donated.
    # Assignments per code in each of the last `usage_window_steps` steps.
    self.usage = CodebookVariable(jnp.zeros((usage_window_steps, codebook_size), jnp.int32))
    self.initialized = CodebookVariable(jnp.array(False))

  def _prepare(self, z: jax.Array) -> jax.Array:
    z = z.astype(jnp.float32)
    return l2_normalize(z) if self.cosine else z

  def nearest_codes(self, z: jax.Array) -> jax.Array:
    """[..., dim] -> [...] int32 index of the nearest code."""
    return nearest_codes(self._prepare(z), self.codebook[...], self.cosine)

  def codes_to_latents(self, codes: jax.Array) -> jax.Array:
    """[...] int codes -> [..., dim] codebook vectors."""
    return jnp.take(self.codebook[...], codes, axis=0)

  def __call__(self, z_e: jax.Array) -> tuple[jax.Array, dict]:
    """Quantizes encoder outputs.

    Args:
      z_e: [batch, steps, dim] encoder outputs.

    Returns:
      z_q: [batch, steps, dim] codebook vectors with straight-through gradients
        to z_e.
      aux: 'codes' [batch, steps] int32, 'commitment_loss' scalar, 'z_e'
        (float32, as looked up), 'perplexity' of this batch's code use.
    """
    z = self._prepare(z_e)
    codes = self.nearest_codes(z)
    z_q = self.codes_to_latents(codes)
    commitment_loss = jnp.mean(jnp.square(z - jax.lax.stop_gradient(z_q)))
    z_q_straight_through = z + jax.lax.stop_gradient(z_q - z)
    probs = jnp.mean(jax.nn.one_hot(codes, self.codebook_size, dtype=jnp.float32),
                     axis=tuple(range(codes.ndim)))
    perplexity = jnp.exp(-jnp.sum(probs * jnp.log(probs + 1e-10)))
    aux = {'codes': codes, 'commitment_loss': commitment_loss, 'perplexity': perplexity,
           'z_e': jax.lax.stop_gradient(z)}
    return z_q_straight_through.astype(z_e.dtype), aux

  def usage_share(self) -> jax.Array:
    """Share of codes assigned at least once in the usage window."""
    return jnp.mean(jnp.sum(self.usage[...], axis=0) > 0)

  def update_codebook(self, z: jax.Array, codes: jax.Array, step: jax.Array,
                      rng: jax.Array) -> None:
    """One EMA step towards the assigned vectors, then restart dead codes.

    Args:
      z: [..., dim] vectors as looked up (aux['z_e']).
      codes: [...] their codes.
      step: the train step (selects the usage-window slot, times restarts).
      rng: for choosing the vectors that restart dead codes.
    """
    z = z.reshape(-1, z.shape[-1])
    one_hot = jax.nn.one_hot(codes.reshape(-1), self.codebook_size, dtype=jnp.float32)
    counts = jnp.sum(one_hot, axis=0)
    decay = self.decay
    cluster_size = decay * self.cluster_size[...] + (1 - decay) * counts
    embed_sum = decay * self.embed_sum[...] + (1 - decay) * (one_hot.T @ z)
    usage = self.usage[...].at[step % self.usage_window_steps].set(counts.astype(jnp.int32))

    # Restart codes unused for a whole window from random recent vectors.
    window_full = step + 1 >= self.usage_window_steps
    due = window_full & (step % self.restart_every_steps == 0)
    dead = due & (jnp.sum(usage, axis=0) == 0)
    picks = jax.random.randint(rng, (self.codebook_size,), 0, z.shape[0])
    fresh = z[picks]
    embed_sum = jnp.where(dead[:, None], fresh, embed_sum)
    cluster_size = jnp.where(dead, 1.0, cluster_size)
    usage = jnp.where(dead[None, :], 1, usage)  # A window's grace before judged again.

    self.cluster_size[...] = cluster_size
    self.embed_sum[...] = embed_sum
    self.usage[...] = usage
    self.codebook[...] = self._codebook_from_stats(cluster_size, embed_sum)

  def _codebook_from_stats(self, cluster_size, embed_sum):
    total = jnp.sum(cluster_size)
    # Laplace smoothing keeps rarely used codes from dividing by ~0.
    smoothed = (cluster_size + self.epsilon) / (total + self.codebook_size * self.epsilon) * total
    codebook = embed_sum / smoothed[:, None]
    return l2_normalize(codebook) if self.cosine else codebook

  def kmeans_init(self, z: jax.Array, rng: jax.Array, iterations: int = 10) -> None:
    """Sets the codebook to k-means centroids of `z` ([..., dim], as looked up)."""
    z = self._prepare(z.reshape(-1, z.shape[-1]))
    num_vectors = z.shape[0]
    pick_rng, noise_rng = jax.random.split(rng)
    # Without replacement when there are enough vectors, so no two codes start equal.
    if num_vectors >= self.codebook_size:
      picks = jax.random.permutation(pick_rng, num_vectors)[:self.codebook_size]
    else:
      picks = jax.random.randint(pick_rng, (self.codebook_size,), 0, num_vectors)
    noise = 1e-3 * jnp.std(z) * jax.random.normal(noise_rng, (self.codebook_size, z.shape[1]))
    centroids = self._prepare(z[picks] + noise)

    def lloyd_step(centroids, _):
      scores = 2.0 * z @ centroids.T - jnp.sum(centroids * centroids, axis=-1)
      one_hot = jax.nn.one_hot(jnp.argmax(scores, axis=-1), self.codebook_size)
      counts = jnp.sum(one_hot, axis=0)
      means = (one_hot.T @ z) / jnp.maximum(counts, 1.0)[:, None]
      updated = jnp.where(counts[:, None] > 0, means, centroids)  # Empty: keep.
      return self._prepare(updated), counts

    centroids, counts = jax.lax.scan(lloyd_step, centroids, None, length=iterations)
    cluster_size = jnp.maximum(counts[-1], 1.0)
    self.codebook[...] = centroids
    self.cluster_size[...] = cluster_size
    self.embed_sum[...] = centroids * cluster_size[:, None]
    self.initialized[...] = jnp.array(True)


def codebook_statistics(code_counts: np.ndarray) -> dict:
  """Usage share and perplexity of a code histogram [codebook_size] (NumPy)."""
  code_counts = np.asarray(code_counts, np.float64)
  probs = code_counts / max(code_counts.sum(), 1.0)
  nonzero = probs[probs > 0]
  return {'codebook_usage': float(np.mean(code_counts > 0)),
          'perplexity': float(np.exp(-np.sum(nonzero * np.log(nonzero))))}
