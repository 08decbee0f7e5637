"""Shared fixtures: a small synthetic corpus and its prepared data set.

Four simulated CPU devices make the sharded (data-parallel) path run on any
machine; this must happen before JAX initializes its backend.
"""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# Compile time dominates tiny models: trade run-time speed for faster compiles.
# (An environment variable, so the training runs tests start inherit it.)
os.environ['JAX_DISABLE_MOST_OPTIMIZATIONS'] = 'true'
# Runs that tests start write no compilation cache into the user's home
# (compilation_cache_test.py checks the cache in a folder of its own);
# `make test-fast` names a folder in the checkout, so a second run of the fast
# tier reads its compiled programs instead of compiling them again.
os.environ.setdefault('MELODYGAN_JAX_CACHE', 'off')
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=4').strip()

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update('jax_platforms', 'cpu')

from melodygan_jax import compilation_cache  # pylint: disable=g-import-not-at-top,wrong-import-position

# Every program, however quick to compile: tests compile hundreds of small ones.
compilation_cache.enable(min_compile_time_s=0.0)  # None (off) unless the variable names a folder.

from data_prep import demo_corpus  # pylint: disable=g-import-not-at-top,wrong-import-position
from data_prep import prepare  # pylint: disable=g-import-not-at-top,wrong-import-position

NUM_SONGS = 4
VQVAE_OVERRIDES = {'train.num_steps': 240, 'train.checkpoint_every_steps': 40,
                   'train.eval_every_steps': 120, 'train.log_every_steps': 40}
SONG_SECONDS = 9.0
VQVAE_ADVERSARIAL_START_STEP = 100  # configs/vqvae_tiny.py's warm-up.


@pytest.fixture
def current_normalization():
  """Statistics of this code's feature version, as a run writes into its workdir."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from melodygan_jax.audio import contract  # pylint: disable=g-import-not-at-top
  from melodygan_jax.data import normalization  # pylint: disable=g-import-not-at-top
  return normalization.Normalization(
      mean={'mix': np.zeros(contract.NUM_MELS, np.float32)},
      std={'mix': np.ones(contract.NUM_MELS, np.float32)},
      feature_version=contract.FEATURE_VERSION)


@pytest.fixture(scope='session')
def corpus_dir(tmp_path_factory):
  """4 songs of 9 s with their true stems (see data_prep.demo_corpus)."""
  path = tmp_path_factory.mktemp('corpus')
  demo_corpus.build_corpus(path, num_songs=NUM_SONGS, seconds=SONG_SECONDS, seed=1)
  return path


@pytest.fixture(scope='session')
def prepared_dir(corpus_dir, tmp_path_factory):
  """The corpus prepared with default cleaning and 64-frame segments."""
  path = tmp_path_factory.mktemp('prepared')
  options = prepare.PrepareOptions(
      input_dir=str(corpus_dir / 'songs'), output_dir=str(path),
      song=prepare.song_lib.SongOptions(segment_frames=64),
      validation_fraction=0.25, num_workers=1, show_progress=False)
  report = prepare.prepare(options)
  assert report['num_used'] == NUM_SONGS
  return path


@pytest.fixture(scope='session')
def trained_vqvae(prepared_dir, tmp_path_factory):
  """An uninterrupted in-process tiny VQ-VAE run: (workdir, metrics before, final state)."""
  from configs import vqvae_tiny  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import metric_writer  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import parallel  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import loop  # pylint: disable=g-import-not-at-top
  from melodygan_jax.runs import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import vqvae_trainer  # pylint: disable=g-import-not-at-top
  config = vqvae_tiny.get_config()
  config.data.dataset_dir = str(prepared_dir)
  for field, value in VQVAE_OVERRIDES.items():
    section, name = field.split('.')
    config[section][name] = value
  trainer = vqvae_trainer.VQVAETrainer(config)
  workdir = tmp_path_factory.mktemp('vqvae')
  workdir_lib.absolute_paths(config)
  workdir_lib.write_or_check_config(config, str(workdir))
  workdir_lib.write_normalization(str(workdir), trainer.meta.normalization)
  initial = trainer.fresh_start(trainer.create_state())
  before = trainer.evaluate(initial, metric_writer.MetricWriter(str(workdir / 'before')), 0)
  final = loop.train_and_evaluate(trainer, config.train, str(workdir))
  return workdir, before, parallel.host_values(final)


GAN_OVERRIDES = {'data.crop_steps': 8, 'train.num_steps': 300,
                 'train.checkpoint_every_steps': 50, 'train.eval_every_steps': 150,
                 'train.log_every_steps': 50}


@pytest.fixture(scope='session')
def trained_gan(trained_vqvae, tmp_path_factory):
  """An uninterrupted in-process tiny GAN run on `trained_vqvae`: (workdir, final state)."""
  return train_gan(trained_vqvae, tmp_path_factory.mktemp('gan'), GAN_OVERRIDES)


@pytest.fixture(scope='session')
def trained_context_gan(trained_vqvae, tmp_path_factory):
  """A short tiny GAN run trained with random context masking: (workdir, final state)."""
  overrides = dict(GAN_OVERRIDES, **{'model.context_probability': 0.5, 'train.num_steps': 50})
  return train_gan(trained_vqvae, tmp_path_factory.mktemp('context_gan'), overrides)


def train_gan(trained_vqvae, workdir, overrides):
  from configs import gan_tiny  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import gan_trainer  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import parallel  # pylint: disable=g-import-not-at-top
  from melodygan_jax.runs import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  config = gan_tiny.get_config()
  config.vqvae_workdir = str(trained_vqvae[0])
  for field, value in overrides.items():
    section, name = field.split('.')
    config[section][name] = value
  vqvae = gan_trainer.check_config(config)
  workdir_lib.absolute_paths(config)
  workdir_lib.write_or_check_config(config, str(workdir))
  final = gan_trainer.train_and_evaluate(config, str(workdir), vqvae)
  return workdir, parallel.host_values(final)
