"""The vector quantizer's contract: nearest codes, straight-through, EMA, restarts, k-means."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from melodygan_jax.models import quantizer as quantizer_lib
from melodygan_jax.models import vqvae


def make_quantizer(size=7, dim=11, **kwargs):
  return quantizer_lib.VectorQuantizer(size, dim, rngs=nnx.Rngs(0), **kwargs)


def test_lookup_returns_codebook_entries_with_straight_through_gradients():
  quantizer = make_quantizer()
  z = jax.random.normal(jax.random.key(1), (3, 13, 11))
  z_q, aux = quantizer(z)
  codebook = quantizer.codebook[...]
  assert z_q.shape == (3, 13, 11) and aux['codes'].shape == (3, 13)
  np.testing.assert_allclose(z_q, codebook[aux['codes']], atol=1e-6)
  distances = jnp.sum((z[..., None, :] - codebook) ** 2, axis=-1)
  np.testing.assert_array_equal(aux['codes'], jnp.argmin(distances, axis=-1))
  weights = jax.random.normal(jax.random.key(2), z.shape)
  grad = jax.grad(lambda z: jnp.sum(quantizer(z)[0] * weights))(z)
  np.testing.assert_allclose(grad, weights, atol=1e-6)  # Identity: straight through.
  assert float(aux['commitment_loss']) > 0


def test_ema_update_moves_codes_toward_their_inputs():
  quantizer = make_quantizer(decay=0.9)
  before = quantizer.codebook[...]
  target = before[3] + 2.0
  z = jnp.broadcast_to(target, (1, 20, 11))
  codes = jnp.full((1, 20), 3, jnp.int32)
  for step in range(5):
    quantizer.update_codebook(z, codes, jnp.int32(step), jax.random.key(step))
  after = quantizer.codebook[...]
  assert jnp.linalg.norm(after[3] - target) < 0.6 * jnp.linalg.norm(before[3] - target)
  unused = jnp.array([0, 1, 2, 4, 5, 6])
  # Unused codes keep their direction (only the shared normalisation rescales them).
  cosine = jnp.sum(after[unused] * before[unused], -1) / (
      jnp.linalg.norm(after[unused], axis=-1) * jnp.linalg.norm(before[unused], axis=-1))
  np.testing.assert_allclose(cosine, 1.0, atol=1e-5)


def test_dead_codes_are_restarted_from_recent_inputs():
  quantizer = make_quantizer(usage_window_steps=4, restart_every_steps=4)
  z = jax.random.normal(jax.random.key(0), (2, 5, 11)) + 10.0
  codes = jnp.zeros((2, 5), jnp.int32)  # Only code 0 is ever used.
  for step in range(4):
    quantizer.update_codebook(z, codes, jnp.int32(step), jax.random.key(9))
  # The window is full, but restarts are due only every 4th step (next: step 4).
  np.testing.assert_allclose(quantizer.usage_share(), 1 / 7)
  quantizer.update_codebook(z, codes, jnp.int32(4), jax.random.key(9))
  flat = z.reshape(-1, 11)
  for code in range(1, 7):
    distances = jnp.min(jnp.linalg.norm(flat - quantizer.codebook[...][code], axis=-1))
    assert distances < 0.1, code  # Revived at an input vector.
  assert float(quantizer.usage_share()) == 1.0  # Revived codes get a window of grace.


def test_kmeans_init_finds_the_clusters():
  centers = jnp.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
  points = (centers[jnp.arange(400) % 4]
            + 0.1 * jax.random.normal(jax.random.key(0), (400, 2)))
  quantizer = quantizer_lib.VectorQuantizer(4, 2, rngs=nnx.Rngs(0))
  quantizer.kmeans_init(points.reshape(4, 100, 2), jax.random.key(3))
  found = quantizer.codebook[...]
  for center in centers:
    assert jnp.min(jnp.linalg.norm(found - center, axis=-1)) < 0.2
  assert bool(quantizer.initialized[...])


def test_cosine_lookup_uses_unit_vectors():
  quantizer = make_quantizer(cosine=True)
  z = jax.random.normal(jax.random.key(1), (2, 5, 11)) * 7.0
  z_q, _ = quantizer(z)
  np.testing.assert_allclose(jnp.linalg.norm(z_q, axis=-1), 1.0, atol=1e-5)


@nnx.jit
def run_model(model, mel):
  recon, aux = model(mel)
  latents, _ = model.encode(mel)
  return recon, aux['codes'], latents, model.decode_codes(aux['codes']), model.decode(latents)


def make_model(dtype):
  return vqvae.VQVAE(num_mels=13, widths=(7, 11, 5), strides=(2, 2), num_res_blocks=1,
                     codebook_size=17, codebook_dim=3, ema_decay=0.99, cosine_codebook=False,
                     usage_window_steps=4, restart_every_steps=4, rngs=nnx.Rngs(0), dtype=dtype)


def test_vqvae_shapes_and_dtypes():
  mel = jax.random.normal(jax.random.key(0), (2, 44, 13))
  for dtype in (jnp.float32, jnp.bfloat16):
    model = make_model(dtype)
    recon, codes, latents, from_codes, from_latents = run_model(model, mel)
    assert recon.shape == mel.shape and recon.dtype == jnp.float32
    assert jnp.all(jnp.isfinite(recon))
    assert codes.shape == (2, 11) and codes.dtype == jnp.int32
    assert latents.shape == (2, 11, 3)
    np.testing.assert_allclose(from_codes, from_latents, atol=1e-5)
    params = nnx.state(model, nnx.Param)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
