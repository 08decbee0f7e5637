"""The style strength: measured once per run and step, applied to every piece's global noise."""
import dataclasses
import pathlib
import shutil
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from melodygan_jax import atomic_files
from melodygan_jax.generation import sampling
from melodygan_jax.generation import stream
from melodygan_jax.runs import style_strength
from melodygan_jax.runs import latent_cache
from melodygan_jax.runs import loading


def test_change_rate_counts_steps_within_runs_only():
  codes = np.array([[1, 0], [1, 5], [2, 5], [3, 0], [3, 0]])  # Level 0: 1 1 2 3 3.
  assert style_strength.change_rate(codes) == pytest.approx(2 / 4)
  # Runs of 3 and 2: the change from step 2 to 3 crosses a run's end.
  assert style_strength.change_rate(codes, lengths=[3, 2]) == pytest.approx(1 / 3)
  assert style_strength.change_rate(codes[None]) == pytest.approx(2 / 4)


@pytest.fixture
def gan_copy(trained_gan, tmp_path):
  """The trained tiny GAN in a folder of its own, so writing its calibration touches no
  other test's run."""
  workdir = tmp_path / 'gan'
  shutil.copytree(trained_gan[0], workdir)
  (workdir / style_strength.STRENGTH_FILENAME).unlink(missing_ok=True)
  return str(workdir)


def test_the_calibrated_strength_brings_the_code_changes_to_the_songs_rate(gan_copy):
  generator = loading.load_generator(gan_copy)
  calibration = style_strength.calibrated(generator)
  train = latent_cache.load_latents(gan_copy).train
  target = style_strength.change_rate(train.codes, train.lengths)
  assert calibration.training_change_rate == pytest.approx(target, abs=1e-4)
  low, high = style_strength.STRENGTH_RANGE
  assert low <= calibration.strength <= high
  assert calibration.strength != 1.0
  measured = style_strength.generated_change_rate(generator, calibration.strength)
  assert calibration.generated_change_rate == pytest.approx(measured, abs=1e-4)
  as_trained = style_strength.generated_change_rate(generator, 1.0)
  assert calibration.as_trained_change_rate == pytest.approx(as_trained, abs=1e-4)
  assert abs(measured - target) < abs(as_trained - target)
  if low < calibration.strength < high:  # Inside the range the bisection meets the target.
    assert measured == pytest.approx(target, abs=0.03)


def test_the_calibration_is_written_once_per_step_and_read_after(gan_copy):
  generator = loading.load_generator(gan_copy)
  first = style_strength.calibrated(generator)
  path = f'{gan_copy}/{style_strength.STRENGTH_FILENAME}'
  assert atomic_files.read_json(path) == dataclasses.asdict(first)
  # What the file says for this step is what is used, without measuring again...
  atomic_files.write_json(path, dict(dataclasses.asdict(first), strength=3.5))
  assert style_strength.calibrated(generator).strength == 3.5
  # ...and a file of another step is measured again and replaced.
  atomic_files.write_json(path, dict(dataclasses.asdict(first), step=first.step + 1,
                                     strength=3.5))
  assert style_strength.calibrated(generator) == first
  assert atomic_files.read_json(path) == dataclasses.asdict(first)
  # So is a file that is not a calibration (cut short, or of another layout).
  for text in ('{"step": 1', '{"step": %d, "scale": 2.0}' % first.step):
    with open(path, 'w') as f:
      f.write(text)
    assert style_strength.calibrated(generator) == first


def test_a_run_whose_folder_cannot_take_the_file_samples_at_the_measured_strength(gan_copy):
  (pathlib.Path(gan_copy) / style_strength.STRENGTH_FILENAME).mkdir()  # Unwritable there.
  generator = loading.load_generator(gan_copy)
  calibration = style_strength.calibrated(generator)
  assert calibration.strength != 1.0 and calibration.step == generator.step
  assert sampling.load(gan_copy).generator.style_strength == calibration.strength


def test_the_studio_styles_of_a_seed_are_its_pieces_noise_at_the_strength():
  config = types.SimpleNamespace(model=types.SimpleNamespace(noise_dim=5))
  strong = types.SimpleNamespace(config=config, style_strength=2.0)
  as_trained = types.SimpleNamespace(config=config, style_strength=1.0)
  np.testing.assert_allclose(stream.style_of_seed(strong, 3),
                             2.0 * stream.style_of_seed(as_trained, 3), rtol=1e-6)
  np.testing.assert_array_equal(stream.style_of_seed(strong, 3),
                                sampling.keys_and_noise(strong, 3, [0])[1][0])


def test_the_strength_scales_each_piece_global_noise_and_nothing_else(gan_copy):
  model = sampling.load(gan_copy)
  assert model.generator.style_strength == style_strength.calibrated(model.generator).strength
  as_trained = sampling.load(gan_copy, style_strength=1.0).generator
  doubled = sampling.load(gan_copy, style_strength=2.0).generator
  keys_1, noise_1 = sampling.keys_and_noise(as_trained, 3, range(4))
  keys_2, noise_2 = sampling.keys_and_noise(doubled, 3, range(4))
  np.testing.assert_array_equal(jax.random.key_data(keys_1), jax.random.key_data(keys_2))
  np.testing.assert_allclose(noise_2, 2.0 * noise_1, rtol=1e-6)
  _, morph = sampling.keys_and_noise(doubled, 3, range(3), interpolate=(1, 2))
  _, morph_1 = sampling.keys_and_noise(as_trained, 3, range(3), interpolate=(1, 2))
  np.testing.assert_allclose(morph, 2.0 * morph_1, rtol=1e-6)
  with pytest.raises(ValueError, match='--style_strength=0'):
    style_strength.with_strength(as_trained, 0.0)


def test_sample_and_evaluate_refuse_a_strength_that_is_not_positive(gan_copy, tmp_path):
  for command in (['melodygan_jax.sample', f'--workdir={gan_copy}',
                   f'--output_dir={tmp_path / "out"}'],
                  ['melodygan_jax.evaluate', f'--vqvae_workdir={gan_copy}/vqvae',
                   f'--gan_workdir={gan_copy}', f'--data_dir={tmp_path}']):
    result = subprocess.run([sys.executable, '-m', *command, '--style_strength=-1'],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if '--style_strength' in line]
    assert lines and 'must be > 0' in lines[-1], result.stderr[-2000:]
    assert not (tmp_path / 'out').exists()
