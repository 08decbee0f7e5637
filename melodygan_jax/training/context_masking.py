"""Random context masking for the latent GAN (config.model.context_probability > 0).

Each example of a batch, with that probability, hands the generator a real
prefix of its crop (1 to max_context_fraction of the crop, uniformly) and the
discriminator judges the prefix followed by what the generator made of the
rest, with the mask as one more input channel (real crops get the same
masks), so it knows where each continuation begins. Real crops flow on at
that point, so a continuation that does not follow its context (another key,
tempo or instrument) is what the discriminator learns to catch; the generator
learns to continue real codes, which is what `sample --prompt` asks of it.
`loss.context_moment_weight` adds a direct pull: the continuation's mean and
std of latents against those of the crop's real rest. The other examples
have no context: the same generator samples freely.
"""
import jax
import jax.numpy as jnp
import ml_collections

from melodygan_jax.models import gan as gan_models
from melodygan_jax.training import config_checks


def check_config(model: ml_collections.ConfigDict, loss: ml_collections.ConfigDict) -> None:
  """The context masking fields, when the config has them, are in range."""
  probability = float(model.get('context_probability', 0.0))
  config_checks.require(0.0 <= probability <= 1.0, 'config.model.context_probability',
                        probability, 'must be in [0, 1] (0: no context conditioning)')
  fraction = float(model.get('max_context_fraction', 0.75))
  config_checks.require(0.0 < fraction < 1.0, 'config.model.max_context_fraction', fraction,
                        'must be in (0, 1): some of each crop is left to generate')
  weight = float(loss.get('context_moment_weight', 0.0))
  config_checks.require(weight >= 0.0, 'config.loss.context_moment_weight', weight,
                        'must be >= 0')


def masks(rng: jax.Array, batch: int, steps: int, probability: float,
          max_fraction: float) -> jax.Array:
  """[batch, steps] bool: each example, with `probability`, a real prefix of 1 to
  max_fraction * steps codes (uniformly); no context otherwise."""
  given_rng, length_rng = jax.random.split(rng)
  given = jax.random.bernoulli(given_rng, probability, (batch,))
  longest = gan_models.longest_context(max_fraction, steps)
  lengths = jax.random.randint(length_rng, (batch,), 1, longest + 1)
  return (jnp.arange(steps)[None, :] < lengths[:, None]) & given[:, None]


def with_context(real: jax.Array, fake: jax.Array, mask: jax.Array | None) -> jax.Array:
  """The real latents where the mask holds a context, the generated ones elsewhere."""
  return fake if mask is None else jnp.where(mask[..., None], real, fake)


def moment_loss(real: jax.Array, fake: jax.Array, mask: jax.Array) -> jax.Array:
  """How far a continuation's average sound is from the real one's, for examples with a
  context.

  The squared distance between the mean and the std over the generated steps
  of the generated latents and of the crop's real ones (per channel, mean over
  channels), averaged over the examples that have a context: a weak, direct
  pull towards continuing in the context's sound that leaves which codes, and
  in what order, to the discriminator (pix2pix's L1 beside its GAN loss, on
  summary statistics rather than on the codes themselves).

  Args:
    real, fake: [batch, steps, dim] latents; mask: [batch, steps] bool.
  """
  weights = (~mask).astype(jnp.float32)[..., None]
  count = jnp.maximum(jnp.sum(weights, axis=1), 1.0)
  mean = lambda x: jnp.sum(x * weights, axis=1) / count
  std = lambda x, m: jnp.sqrt(jnp.sum(jnp.square(x - m[:, None]) * weights, axis=1) / count
                              + 1e-6)
  real_mean, fake_mean = mean(real), mean(fake)
  per_example = jnp.mean(jnp.square(fake_mean - real_mean)
                         + jnp.square(std(fake, fake_mean) - std(real, real_mean)), axis=-1)
  has_context = jnp.any(mask, axis=1).astype(jnp.float32)
  return jnp.sum(per_example * has_context) / jnp.maximum(jnp.sum(has_context), 1.0)
