"""The latent GAN's losses: adversarial, code usage, and the R1 penalty's gradients."""
import jax
import jax.numpy as jnp


def adversarial_losses(kind: str, real_logits, fake_logits):
  """(discriminator loss, generator loss) of one batch."""
  if kind == 'hinge':
    d_loss = jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
    return d_loss, -jnp.mean(fake_logits)
  d_loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
  return d_loss, jnp.mean(jax.nn.softplus(-fake_logits))


def code_usage_loss(codes: jax.Array, code_probs: jax.Array,
                    target_histogram: jax.Array) -> jax.Array:
  """KL(training code frequencies || this batch's generated ones), mean over levels.

  The discriminator sees latent vectors, and nearby codes look alike to it;
  this term keeps the generator using every code of every level about as often
  as the data. The value is that of the hard (chosen) codes; its gradient
  flows through the soft code probabilities (straight-through).

  Args:
    codes: [batch, steps, levels].
    code_probs: [batch, steps, levels, codebook_size].
    target_histogram: [levels, codebook_size], rows summing to 1.
  """
  num_levels, size = code_probs.shape[-2:]
  hard = jnp.mean(jax.nn.one_hot(codes.reshape(-1, num_levels), size, dtype=jnp.float32),
                  axis=0)
  soft = jnp.mean(code_probs.reshape(-1, num_levels, size), axis=0)
  used = hard + soft - jax.lax.stop_gradient(soft)
  smoothing = 0.5 * num_levels / codes.size  # Half a count: an unused code costs, not infinity.
  return jnp.mean(jnp.sum(target_histogram * (jnp.log(target_histogram + 1e-8)
                                              - jnp.log(used + smoothing)), axis=-1))


def logits_and_input_grads(discriminator, real):
  """D(real) [batch, scales] and d(sum of D(real))/dreal [batch, steps, dim], for the R1 penalty.

  As in StyleGAN's R1, this is the gradient of the summed logits. The
  discriminator mixes examples through its batch-std feature, so example i's
  row also holds the small terms of the other examples' logits through that
  feature; without it, the row would be dD(real_i)/dreal_i exactly.
  """
  logits, vjp = jax.vjp(discriminator, real)
  # [batch, scales]: the gradient of the mean over scales, as the losses average them.
  (grads,) = vjp(jnp.ones_like(logits) / logits.shape[-1])
  return logits, grads
