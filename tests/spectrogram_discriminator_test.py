"""The spectrogram discriminator: scales, patch logits, hinge and feature-matching losses."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from melodygan_jax.models import spectrogram_discriminator


def test_each_scale_sees_a_coarser_image_and_returns_its_features():
  discriminator = spectrogram_discriminator.MultiScaleDiscriminator((3, 5), 3, rngs=nnx.Rngs(0))
  mel = jax.random.normal(jax.random.key(0), (2, 44, 52))
  outputs = discriminator(mel)
  assert len(outputs) == 3
  for scale, (logits, features) in enumerate(outputs):
    frames, mels = -(-44 // 2**scale), -(-52 // 2**scale)  # SAME pooling rounds up.
    assert logits.shape == (2, -(-frames // 4), -(-mels // 4)) and logits.dtype == jnp.float32
    assert [f.shape[-1] for f in features] == [3, 5]
  # Patch logits are local: changing the last frames leaves the first patches alone.
  changed = mel.at[:, 36:].set(0.0)
  logits, changed_logits = outputs[0][0], discriminator(changed)[0][0]
  np.testing.assert_allclose(logits[:, :5], changed_logits[:, :5], atol=1e-5)
  assert float(jnp.max(jnp.abs(logits[:, -1] - changed_logits[:, -1]))) > 1e-4


def test_losses_are_hinge_and_relative_feature_matching():
  discriminator = spectrogram_discriminator.MultiScaleDiscriminator((3, 5), 2, rngs=nnx.Rngs(1))
  real = jax.random.normal(jax.random.key(1), (2, 32, 32))
  fake = real + 0.5 * jax.random.normal(jax.random.key(2), real.shape)
  real_outputs, fake_outputs = discriminator(real), discriminator(fake)
  adversarial, matching = spectrogram_discriminator.generator_losses(real_outputs, real_outputs)
  assert float(matching) == 0.0  # A perfect reconstruction matches every feature.
  _, matching = spectrogram_discriminator.generator_losses(real_outputs, fake_outputs)
  assert float(matching) > 0.05
  expected = np.mean([np.mean(np.maximum(0, 1 - np.asarray(logits))) for logits, _ in fake_outputs])
  adversarial, _ = spectrogram_discriminator.generator_losses(real_outputs, fake_outputs)
  np.testing.assert_allclose(adversarial, expected, rtol=1e-5)
  confident = [(jnp.full_like(r, 2.0), f) for r, f in real_outputs]
  rejected = [(jnp.full_like(r, -2.0), f) for r, f in fake_outputs]
  assert float(spectrogram_discriminator.discriminator_loss(confident, rejected)) == 0.0
  assert float(spectrogram_discriminator.discriminator_loss(rejected, confident)) == 6.0
