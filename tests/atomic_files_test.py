"""Run and data-set files go through etils.epath: URLs stay URLs, local paths become absolute."""
import os

import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax.data import records
from melodygan_jax.runs import workdir as workdir_lib


def test_urls_are_kept_and_local_paths_made_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert os.fspath(atomic_files.as_path('gs://bucket/runs/v')) == 'gs://bucket/runs/v'
  assert os.fspath(records.dataset_path('gs://bucket/data')) == (
      'gs://bucket/data/tfds/melodygan_segments/1.0.0')  # pathlib would drop a slash.
  assert os.fspath(atomic_files.as_path('runs/v')) == str(tmp_path / 'runs' / 'v')
  from configs import gan_tiny  # pylint: disable=g-import-not-at-top
  config = gan_tiny.get_config()
  config.vqvae_workdir, config.data.dataset_dir = 'gs://bucket/vqvae', 'data'
  workdir_lib.absolute_paths(config)
  assert (config.vqvae_workdir, config.data.dataset_dir) == ('gs://bucket/vqvae',
                                                             str(tmp_path / 'data'))


def test_npz_and_folder_copies_round_trip(tmp_path):
  arrays = {'codes': np.arange(12, dtype=np.int32).reshape(3, 4), 'table': np.eye(3)}
  atomic_files.write_npz(tmp_path / 'a' / 'latents.npz', **arrays)
  assert sorted(os.listdir(tmp_path / 'a')) == ['latents.npz']  # No temporary file left.
  loaded = atomic_files.read_npz(tmp_path / 'a' / 'latents.npz')
  assert loaded.keys() == arrays.keys()
  for name, value in arrays.items():
    np.testing.assert_array_equal(loaded[name], value)
  (tmp_path / 'a' / 'sub').mkdir()
  (tmp_path / 'a' / 'sub' / 'x.json').write_text('{}')
  atomic_files.copy_tree(tmp_path / 'a', tmp_path / 'b')
  assert (tmp_path / 'b' / 'sub' / 'x.json').read_text() == '{}'
  assert (tmp_path / 'b' / 'latents.npz').read_bytes() == (
      tmp_path / 'a' / 'latents.npz').read_bytes()
