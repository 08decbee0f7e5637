"""Shared fixtures: a small synthetic corpus, its prepared data set and tiny trained runs.

Two simulated CPU devices make the sharded (data-parallel) path run on any
machine (two, not more: each is a thread, and a 2-core machine runs the tiny
training steps of two a third faster than of four); this must happen before
JAX initializes its backend.

With pytest-xdist (`make test`, `make test-fast`) the session fixtures are built
once per run, by the first worker that asks, into a folder all workers share;
the others wait for it.
"""
import collections
import contextlib
import fcntl
import os
import pickle
import shutil

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# Compile time dominates tiny models: trade run-time speed for faster compiles (tests
# marked `optimized` turn it back). An environment variable, so the training runs tests
# start inherit it.
os.environ['JAX_DISABLE_MOST_OPTIMIZATIONS'] = 'true'
# Runs that tests start write no compilation cache into the user's home
# (compilation_cache_test.py checks the cache in a folder of its own);
# `make test-fast` names a folder in the checkout, so a second run of the fast
# tier reads its compiled programs instead of compiling them again.
os.environ.setdefault('MELODYGAN_JAX_CACHE', 'off')
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=2').strip()

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


def _run_root(tmp_path_factory):
  """A folder of this test run: shared by all xdist workers, else the session's own."""
  root = tmp_path_factory.getbasetemp()
  return root.parent if os.environ.get('PYTEST_XDIST_WORKER') else root


@contextlib.contextmanager
def _flock(path):
  with open(path, 'a') as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


def built_once(tmp_path_factory, name: str, build):
  """`build(folder)`'s value, built once per test run whichever worker asks first.

  The value is pickled beside what `build` wrote into `folder`; a worker that
  died mid-build leaves no pickle, and the next one builds into a fresh folder.
  """
  root = _run_root(tmp_path_factory)
  done = root / f'{name}.pickle'
  with _flock(root / f'{name}.lock'):
    if done.exists():
      return pickle.loads(done.read_bytes())
    folder = root / name
    if folder.exists():
      shutil.rmtree(folder)
    folder.mkdir()
    value = build(folder)
    done.with_suffix('.tmp').write_bytes(pickle.dumps(value))
    done.with_suffix('.tmp').rename(done)
    return value


# The longest files, started first under xdist so that none is left running alone at the
# end (2 cores, programs cached: create's run 11 min, the sweeps 10, the multi-process 6).
LONGEST_FILES = ('create_test.py', 'sweep_test.py', 'multiprocess_test.py')


def pytest_collection_modifyitems(items):
  """The longest files first, then the rest by their number of tests (xdist's own order,
  which `--no-loadscope-reorder` in the Makefile hands over to this one)."""
  counts = collections.Counter(item.path for item in items)

  def rank(item):
    name = item.path.name
    longest = LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)
    return longest, -counts[item.path], str(item.path)

  items.sort(key=rank)  # Stable: each file's tests keep their order.


@pytest.fixture(autouse=True)
def _optimized_programs(request):
  """A test marked `optimized` compiles with XLA's optimizations: its time is in running
  long loops (hundreds of train steps, a scan of fits), not in compiling. Its programs are
  dropped after it: a test after it that compiles the same operation (a parameter's
  initializer, say) gets the unoptimized program, whose rounding the training runs it
  starts in other processes share (bit-equal resumes are compared)."""
  if request.node.get_closest_marker('optimized') is None:
    yield
    return
  jax.config.update('jax_disable_most_optimizations', False)
  try:
    yield
  finally:
    jax.config.update('jax_disable_most_optimizations', True)
    jax.clear_caches()


@pytest.fixture(scope='session')
def corpus_dir(tmp_path_factory):
  """4 songs of 9 s with their true stems (see data_prep.demo_corpus)."""
  def build(path):
    demo_corpus.build_corpus(path, num_songs=NUM_SONGS, seconds=SONG_SECONDS, seed=1)
    return path
  return built_once(tmp_path_factory, 'corpus', build)


@pytest.fixture(scope='session')
def prepared_dir(corpus_dir, tmp_path_factory):
  """The corpus prepared with default cleaning and 64-frame segments."""
  def build(path):
    options = prepare.PrepareOptions(
        input_dir=str(corpus_dir / 'songs'), output_dir=str(path),
        song=prepare.song_lib.SongOptions(segment_frames=64),
        validation_fraction=0.25, num_workers=1, show_progress=False)
    report = prepare.prepare(options)
    assert report['num_used'] == NUM_SONGS
    return path
  return built_once(tmp_path_factory, 'prepared', build)


@pytest.fixture(scope='session')
def trained_vqvae(prepared_dir, tmp_path_factory):
  """An uninterrupted in-process tiny VQ-VAE run: (workdir, metrics before, final state's
  leaves as NumPy arrays)."""
  return built_once(tmp_path_factory, 'vqvae', lambda workdir: train_vqvae(prepared_dir,
                                                                         workdir))


def train_vqvae(prepared_dir, workdir):
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
  workdir_lib.absolute_paths(config)
  workdir_lib.write_or_check_config(config, str(workdir))
  workdir_lib.write_normalization(str(workdir), trainer.meta.normalization)
  initial = trainer.fresh_start(trainer.create_state())
  before = trainer.evaluate(initial, metric_writer.MetricWriter(str(workdir / 'before')), 0)
  final = loop.train_and_evaluate(trainer, config.train, str(workdir))
  return workdir, before, jax.tree.leaves(parallel.host_values(final))


GAN_OVERRIDES = {'data.crop_steps': 8, 'train.num_steps': 300,
                 'train.checkpoint_every_steps': 50, 'train.eval_every_steps': 150,
                 'train.log_every_steps': 50}


@pytest.fixture(scope='session')
def trained_gan(trained_vqvae, tmp_path_factory):
  """An uninterrupted in-process tiny GAN run on `trained_vqvae`: (workdir, final state's
  leaves)."""
  return built_once(tmp_path_factory, 'gan',
                    lambda workdir: train_gan(trained_vqvae, workdir, GAN_OVERRIDES))


@pytest.fixture(scope='session')
def trained_context_gan(trained_vqvae, tmp_path_factory):
  """A short tiny GAN run trained with random context masking: (workdir, final state's
  leaves)."""
  overrides = dict(GAN_OVERRIDES, **{'model.context_probability': 0.5, 'train.num_steps': 50})
  return built_once(tmp_path_factory, 'context_gan',
                    lambda workdir: train_gan(trained_vqvae, workdir, overrides))


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
  return workdir, jax.tree.leaves(parallel.host_values(final))
