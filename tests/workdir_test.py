"""A workdir is self-contained, a resumed run keeps its config, metrics list each step once."""
import json
import shutil

import pytest
import soundfile

from configs import vqvae_tiny
from melodygan_jax import errors
from melodygan_jax.data import normalization as normalization_lib
from melodygan_jax.generation import reconstruct
from melodygan_jax.generation import sample
from melodygan_jax.runs import loading
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import metric_writer


def _move_away(workdir, new_dir, **config_changes):
  """Copies a workdir elsewhere, pointing its config at paths that do not exist."""
  shutil.copytree(workdir, new_dir)
  for path in [new_dir / 'config.json', *new_dir.glob('*/config.json')]:
    config = json.loads(path.read_text())
    config['data']['dataset_dir'] = '/nonexistent/data'
    config.update(config_changes)
    path.write_text(json.dumps(config))
  return new_dir


def test_copied_workdirs_sample_and_reconstruct_without_the_data_set(
    trained_vqvae, trained_gan, corpus_dir, tmp_path):
  gan_dir = _move_away(trained_gan[0], tmp_path / 'elsewhere' / 'gan',
                       vqvae_workdir='/nonexistent/vqvae')
  vqvae_dir = _move_away(trained_vqvae[0], tmp_path / 'elsewhere' / 'vqvae')
  manifest = sample.sample(str(gan_dir), str(tmp_path / 'samples'), num_samples=2,
                           seconds=1.0, show_progress=False)
  original = sample.sample(str(trained_gan[0]), str(tmp_path / 'original'), num_samples=2,
                           seconds=1.0, show_progress=False)
  assert manifest['samples'][0]['codes'] == original['samples'][0]['codes']
  assert manifest['vqvae_workdir'].startswith(str(gan_dir))  # Its own copy of the VQ-VAE.
  song = sorted((corpus_dir / 'songs').glob('*.wav'))[0]
  metrics = reconstruct.reconstruct_file(str(vqvae_dir), str(song), str(tmp_path / 'r.wav'))
  # The copy reconstructs as the original run does, byte for byte, the song's whole length.
  at_home = reconstruct.reconstruct_file(str(trained_vqvae[0]), str(song),
                                         str(tmp_path / 'home.wav'))
  assert (tmp_path / 'r.wav').read_bytes() == (tmp_path / 'home.wav').read_bytes()
  assert metrics['mel_spectral_convergence'] == at_home['mel_spectral_convergence']
  assert soundfile.info(tmp_path / 'r.wav').frames == soundfile.info(song).frames


def test_features_of_another_version_are_refused_in_one_line(trained_vqvae, tmp_path):
  workdir = _move_away(trained_vqvae[0], tmp_path / 'old')
  path = workdir / normalization_lib.NORMALIZATION_FILENAME
  stats = json.loads(path.read_text())
  stats['feature_version'] = 0
  path.write_text(json.dumps(stats))
  with pytest.raises(workdir_lib.WorkdirError, match='re-run python -m data_prep.prepare') as e:
    loading.load_vqvae(str(workdir))
  assert '\n' not in str(e.value)


def _started_run(tmp_path, normalization):
  config = vqvae_tiny.get_config()
  config.data.dataset_dir = str(tmp_path / 'data')
  workdir = tmp_path / 'run'
  (workdir / 'checkpoints' / '40').mkdir(parents=True)  # A run that has saved a step.
  workdir_lib.write_or_check_config(config, str(workdir))
  workdir_lib.write_normalization(str(workdir), normalization)
  return config, workdir


def test_a_resumed_run_refuses_a_changed_experiment(tmp_path, current_normalization):
  config, workdir = _started_run(tmp_path, current_normalization)
  first = (workdir / 'config.json').read_text()
  config.model.widths = (8, 8, 8)
  with pytest.raises(errors.ConfigError,
                     match=r'config.model.widths=\[8, 8, 8\]: this workdir was started with '
                           r'\[32, 48, 64\]') as e:
    workdir_lib.write_or_check_config(config, str(workdir))
  assert '\n' not in str(e.value)
  assert (workdir / 'config.json').read_text() == first


def test_a_run_started_before_the_onset_loss_resumes_only_without_it(tmp_path,
                                                                      current_normalization):
  config, workdir = _started_run(tmp_path, current_normalization)
  started = json.loads((workdir / 'config.json').read_text())
  del started['loss']['onset_envelope_weight']  # As written before the field existed.
  (workdir / 'config.json').write_text(json.dumps(started))
  with pytest.raises(errors.ConfigError,
                     match=r'config.loss.onset_envelope_weight=1.0: this workdir was started '
                           r'with 0.0'):
    workdir_lib.write_or_check_config(config, str(workdir))
  config.loss.onset_envelope_weight = 0.0
  workdir_lib.write_or_check_config(config, str(workdir))  # Trains as it did: resumes.
  assert not list(workdir.glob('config.resumed.*.json'))


def test_a_resumed_run_may_train_longer_and_records_it(tmp_path, capsys, current_normalization):
  config, workdir = _started_run(tmp_path, current_normalization)
  first = (workdir / 'config.json').read_text()
  config.train.num_steps = 6_000
  workdir_lib.write_or_check_config(config, str(workdir))
  assert 'train.num_steps 3000 -> 6000' in capsys.readouterr().out
  assert (workdir / 'config.json').read_text() == first
  resumed = json.loads((workdir / 'config.resumed.1.json').read_text())
  assert resumed['train']['num_steps'] == 6_000


def test_metrics_after_the_restored_step_are_dropped_on_resume(tmp_path):
  writer = metric_writer.MetricWriter(str(tmp_path))
  for step in (10, 20, 30):
    writer.write_scalars(step, {'train/loss': float(step)})
  writer = metric_writer.MetricWriter(str(tmp_path), resumed_step=20)
  writer.write_scalars(30, {'train/loss': 3.0})
  rows = workdir_lib.read_metrics(str(tmp_path))
  assert [row['step'] for row in rows] == [10, 20, 30]
  assert rows[-1]['train/loss'] == 3.0
