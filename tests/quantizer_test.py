"""The vector quantizer's contract: nearest codes, straight-through, EMA, restarts, k-means."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from melodygan_jax.models import quantizer as quantizer_lib
from melodygan_jax.models import residual_quantizer
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
                     num_levels=3, codebook_size=17, codebook_dim=3, ema_decay=0.99,
                     usage_window_steps=4, restart_every_steps=4, rngs=nnx.Rngs(0), dtype=dtype)


def test_vqvae_shapes_and_dtypes():
  mel = jax.random.normal(jax.random.key(0), (2, 44, 13))
  for dtype in (jnp.float32, jnp.bfloat16):
    model = make_model(dtype)
    recon, codes, latents, from_codes, from_latents = run_model(model, mel)
    assert recon.shape == mel.shape and recon.dtype == jnp.float32
    assert jnp.all(jnp.isfinite(recon))
    assert codes.shape == (2, 11, 3) and codes.dtype == jnp.int32
    assert latents.shape == (2, 11, 3)
    np.testing.assert_allclose(from_codes, from_latents, atol=1e-5)
    params = nnx.state(model, nnx.Param)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))


def make_residual_quantizer(num_levels=4, decay=0.99):
  return residual_quantizer.ResidualVectorQuantizer(
      num_levels, 16, 5, decay=decay, usage_window_steps=3, restart_every_steps=3,
      rngs=nnx.Rngs(1))


def test_each_residual_level_quantizes_what_the_levels_before_left():
  z = jax.random.normal(jax.random.key(4), (6, 40, 5))
  quantizer = make_residual_quantizer()
  quantizer.kmeans_init(z, jax.random.key(5))
  latents, aux = quantizer(z)
  codes = aux['codes']
  assert codes.shape == (6, 40, 4) and aux['residuals'].shape == (4, 6, 40, 5)
  np.testing.assert_allclose(latents, quantizer.codes_to_latents(codes), atol=1e-5)
  np.testing.assert_array_equal(codes, quantizer.nearest_codes(z))
  # The GAN snaps with the plain-array lookup: the same codes.
  np.testing.assert_array_equal(codes, residual_quantizer.residual_codes(z, quantizer.codebooks()))
  errors = [float(jnp.mean(jnp.square(z - quantizer.codes_to_latents(codes[..., :n]))))
            for n in range(1, 5)]
  assert all(later < 0.9 * earlier for earlier, later in zip(errors, errors[1:])), errors
  # Level 2 saw the residual of level 1, not z itself.
  np.testing.assert_allclose(aux['residuals'][1],
                             z - quantizer.levels[0].codes_to_latents(codes[..., 0]), atol=1e-5)


def test_quantizer_dropout_keeps_only_the_first_levels_of_each_example():
  z = jax.random.normal(jax.random.key(6), (3, 8, 5))
  quantizer = make_residual_quantizer()
  quantizer.kmeans_init(z, jax.random.key(7))
  latents, aux = quantizer(z, active_levels=jnp.array([1, 2, 4]))
  for example, kept in enumerate((1, 2, 4)):
    np.testing.assert_allclose(
        latents[example], quantizer.codes_to_latents(aux['codes'][example, :, :kept]), atol=1e-5)
  counts = residual_quantizer.sample_active_levels(jax.random.key(0), 4000, 4, 0.5)
  assert int(counts.min()) == 1 and int(counts.max()) == 4
  assert 0.55 < float(jnp.mean(counts == 4)) < 0.7  # Half kept all, a quarter of the rest too.
  assert bool(jnp.all(residual_quantizer.sample_active_levels(jax.random.key(0), 50, 4, 0.0) == 4))


def test_every_level_moves_its_own_codebook_and_counts_its_own_use():
  z = jax.random.normal(jax.random.key(8), (4, 30, 5))
  quantizer = make_residual_quantizer(num_levels=2, decay=0.5)
  quantizer.kmeans_init(z, jax.random.key(9))
  before = quantizer.codebooks()
  shifted = z + 0.5
  for step in range(3):
    _, aux = quantizer(shifted)
    quantizer.update_codebook(aux['residuals'], aux['codes'], jnp.int32(step),
                              jax.random.key(step))
  after = quantizer.codebooks()
  assert float(jnp.max(jnp.abs(after[0] - before[0]))) > 0.2
  assert float(jnp.max(jnp.abs(after[1] - before[1]))) > 0.01
  usage = quantizer.usage_share()
  assert usage.shape == (2,) and bool(jnp.all(usage > 0))


def test_factorized_lookup_finds_codes_by_cosine_and_trains_both_projections():
  z = jax.random.normal(jax.random.key(10), (4, 30, 5))
  quantizer = residual_quantizer.ResidualVectorQuantizer(
      3, 16, 5, lookup_dim=2, usage_window_steps=3, restart_every_steps=3, rngs=nnx.Rngs(2))
  quantizer.kmeans_init(z, jax.random.key(11))
  latents, aux = quantizer(z)
  codes = aux['codes']
  assert quantizer.codebooks().shape == (3, 16, 5)  # Latents of codes: the GAN's contract.
  np.testing.assert_allclose(latents, quantizer.codes_to_latents(codes), atol=1e-5)
  np.testing.assert_array_equal(codes, quantizer.nearest_codes(z))
  # Level 1 picks the code of largest cosine to the projected input.
  projected = quantizer.in_projections[0](z)
  cosines = (quantizer_lib.l2_normalize(projected)
             @ quantizer_lib.l2_normalize(quantizer.levels[0].codebook[...]).T)
  np.testing.assert_array_equal(codes[..., 0], jnp.argmax(cosines, -1))
  np.testing.assert_allclose(jnp.linalg.norm(aux['residuals'], axis=-1), 1.0, atol=1e-5)
  assert len(np.unique(np.asarray(codes[..., 0]))) > 8  # k-means spread the unit codes.

  graphdef, params, rest = nnx.split(quantizer, nnx.Param, ...)

  def loss(params):
    latents, _ = nnx.merge(graphdef, params, rest)(z)
    return jnp.mean(jnp.square(latents - 1.0))

  grads = jax.grad(loss)(params)
  for name in ('in_projections', 'out_projections'):
    norms = [float(jnp.linalg.norm(grads[name][index]['kernel'][...])) for index in range(3)]
    assert all(norm > 0 for norm in norms), (name, norms)
