"""The latent GAN: codebook outputs, learning structure, exact resume, sharding, errors."""
import json
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import gan_tiny
import conftest
from melodygan_jax.training import checkpoints
from melodygan_jax.data import latent_cache
from melodygan_jax.evaluation import latent_metrics
from melodygan_jax.training import metric_writer
from melodygan_jax.training import parallel
from melodygan_jax.generation import pretrained
from melodygan_jax.models import gan as gan_models
from melodygan_jax.training import gan_trainer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
OVERRIDES = conftest.GAN_OVERRIDES


@pytest.mark.parametrize('output', ['gumbel', 'snap'])
def test_generated_latents_are_residual_codebook_sums_of_any_length(output):
  codebooks = jax.random.normal(jax.random.key(0), (2, 13, 7)) * jnp.array([1.0, 0.3])[:, None, None]
  generator = gan_models.Generator(noise_dim=5, noise_channels=3, width=11, dilations=(1, 2),
                                   num_levels=2, codebook_size=13, codebook_dim=7,
                                   output=output, rngs=nnx.Rngs(0))

  @nnx.jit(static_argnums=(2,))
  def generate(generator, rng, steps):
    global_noise, step_noise = generator.sample_noise(rng, 3, steps)
    return generator(global_noise, step_noise, codebooks, rng)

  for steps in (1, 8, 50):
    latents, codes, probs = generate(generator, jax.random.key(steps), steps)
    assert latents.shape == (3, steps, 7) and codes.shape == (3, steps, 2)
    np.testing.assert_allclose(latents, codebooks[0][codes[..., 0]] + codebooks[1][codes[..., 1]],
                               atol=1e-5)
    assert probs.shape == (3, steps, 2, 13)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)



def synthetic_codes(rng, count, length, patterns):
  """[count, length, 2]: level 1 repeats one of a few patterns from a random phase;
  level 2 is a fixed function of level 1."""
  rows = []
  for _ in range(count):
    pattern = patterns[rng.integers(len(patterns))]
    start = rng.integers(len(pattern))
    rows.append([pattern[(start + i) % len(pattern)] for i in range(length)])
  first = np.asarray(rows, np.int32)
  return np.stack([first, (7 * first + 3) % 16], axis=-1)


def test_gan_learns_the_structure_of_synthetic_latents():
  rng = np.random.default_rng(0)
  patterns = [[1, 5, 9, 2], [3, 3, 7, 7, 11], [0, 4, 8, 12, 14, 6]]
  data = latent_cache.LatentData(
      train_codes=synthetic_codes(rng, 300, 24, patterns),
      validation_codes=synthetic_codes(rng, 60, 24, patterns),
      codebooks=(rng.standard_normal((2, 16, 8)) * np.array([1.0, 0.3])[:, None, None]
                 ).astype(np.float32))
  config = gan_tiny.get_config()
  config.data.crop_steps = 12
  config.loss.code_usage_weight = 1.0  # A lighter pull on code use learns order faster.
  config.train.num_eval_samples = 128
  trainer = gan_trainer.GANTrainer(config, data)
  state = trainer.create_state()
  before = trainer.evaluate(state, _NullWriter(), 0)
  batches = trainer.train_batches(0)
  metrics = None
  for _ in range(600):
    previous = metrics
    state, metrics = trainer.jit_train_step(state, next(batches))
    jax.block_until_ready(previous)  # One step in flight, as the training loop keeps it.
  after = trainer.evaluate(state, _NullWriter(), 600)
  assert np.isfinite(float(metrics['train/loss']))
  real_hist = latent_metrics.code_histogram(data.validation_codes, 16)
  generated = trainer.generated_codes(state, 128)
  uniform_js = np.mean([latent_metrics.jensen_shannon_distance(level, np.full(16, 1 / 16))
                        for level in real_hist])
  assert after['eval/code_js_distance'] < 0.6 * before['eval/code_js_distance']
  assert after['eval/code_js_distance'] < 0.6 * uniform_js
  assert after['eval/bigram_js_distance'] < after['baseline_iid/bigram_js_distance'] - 0.15
  assert after['eval/latent_frechet'] < after['baseline_uniform/latent_frechet']
  assert after['eval/distinct_share'] > 0.05  # Not one collapsed sequence.
  assert set(np.unique(generated)) <= set(range(16))


class _NullWriter:
  active = False

  def write_images(self, *args):
    pass


def tiny_config(vqvae_workdir):
  config = gan_tiny.get_config()
  config.vqvae_workdir = str(vqvae_workdir)
  for field, value in OVERRIDES.items():
    section, name = field.split('.')
    config[section][name] = value
  return config


def cli(*flags):
  return subprocess.Popen([sys.executable, '-m', 'melodygan_jax.train', *flags], cwd=REPO_ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_and_resume_equals_uninterrupted(trained_vqvae, trained_gan, tmp_path):
  vqvae_workdir = trained_vqvae[0]
  config = tiny_config(vqvae_workdir)
  whole_workdir, uninterrupted = trained_gan
  rows = metric_writer.read_metrics(str(whole_workdir))
  final_eval = [row for row in rows if 'eval/latent_frechet' in row][-1]
  assert final_eval['step'] == 300 and 'baseline_iid/latent_frechet' in final_eval

  workdir = tmp_path / 'killed'
  flags = [f'--config={REPO_ROOT / "configs" / "gan_tiny.py"}', f'--workdir={workdir}',
           f'--config.vqvae_workdir={vqvae_workdir}',
           *[f'--config.{field}={value}' for field, value in OVERRIDES.items()]]
  process = cli(*flags)
  deadline = time.time() + 240
  while pretrained.latest_step(workdir) is None and time.time() < deadline:
    assert process.poll() is None, process.communicate()[1][-2000:]
    time.sleep(0.01)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = pretrained.latest_step(workdir)
  assert killed_at is not None and killed_at < 300
  process = cli(*flags)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr[-2000:]
  assert f'resuming from the checkpoint of step {killed_at}' in stderr
  trainer_state = gan_trainer.init_state(config, 3, 64, 16)[2]
  resumed, step = checkpoints.restore_step(str(workdir), trainer_state)
  assert step == 300
  for a, b in zip(jax.tree.leaves(parallel.host_values(resumed)),
                  jax.tree.leaves(uninterrupted)):
    np.testing.assert_array_equal(a, b)
  source = json.loads((workdir / 'latents.json').read_text())
  assert source['vqvae_step'] == 240


def test_step_on_4_devices_matches_1_device(trained_vqvae, tmp_path):
  config = tiny_config(trained_vqvae[0])
  vqvae = gan_trainer.check_config(config)
  data = gan_trainer.load_or_encode_latents(config, str(tmp_path), vqvae, parallel.make_mesh())
  assert data.train_codes.shape[1:] == (16, 3)  # 64-frame segments / stride 4; 3 levels.
  assert data.codebooks.shape == (3, 64, 16)
  results = []
  for devices in (jax.devices(), jax.devices()[:1]):
    trainer = gan_trainer.GANTrainer(config, data, vqvae, mesh=parallel.make_mesh(devices))
    state, metrics = trainer.jit_train_step(trainer.create_state(), next(trainer.train_batches(0)))
    results.append(parallel.host_values(state))
  for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_missing_or_mismatched_vqvae_workdir_is_one_line(trained_vqvae, tmp_path):
  config = tiny_config(tmp_path / 'nothing')
  with pytest.raises(pretrained.WorkdirError, match='is not a vqvae workdir') as error:
    gan_trainer.check_config(config)
  assert '\n' not in str(error.value)
  gan_workdir = tmp_path / 'gan'
  gan_workdir.mkdir()
  (gan_workdir / 'config.json').write_text(json.dumps({'trainer': 'gan'}))
  with pytest.raises(pretrained.WorkdirError, match="holds a 'gan' run"):
    gan_trainer.check_config(tiny_config(gan_workdir))
  # Resuming a GAN whose cached codes came from another VQ-VAE.
  config = tiny_config(trained_vqvae[0])
  vqvae = gan_trainer.check_config(config)
  (tmp_path / 'run').mkdir()
  np.savez(tmp_path / 'run' / 'latents.npz', train_codes=np.zeros((1, 16, 3)),
           validation_codes=np.zeros((1, 16, 3)), codebooks=np.zeros((3, 64, 16)))
  (tmp_path / 'run' / 'latents.json').write_text(json.dumps(
      {'vqvae_workdir': '/elsewhere', 'vqvae_step': 7, 'dataset_dir': '', 'stems': []}))
  with pytest.raises(latent_cache.LatentCacheError, match='use a new --workdir'):
    gan_trainer.load_or_encode_latents(config, str(tmp_path / 'run'), vqvae,
                                       parallel.make_mesh())
