"""The train split in device memory: the same crops as the host pipeline, the same training."""
import logging
import time

import jax
import numpy as np
import pytest

from configs import common
from configs import gan_tiny
from configs import vocoder_tiny
from melodygan_jax.data import audio_crops
from melodygan_jax.data import input_pipeline
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import device_data
from melodygan_jax.training import gan_trainer
from melodygan_jax.training import loop
from melodygan_jax.training import parallel
from melodygan_jax.training import vocoder_trainer
from melodygan_jax.training import vqvae_trainer
import gan_test
import vqvae_trainer_test


def crops_of(table, positions, crop_frames):
  return np.stack([table.mel[row, start:start + crop_frames]
                   for row, start in zip(positions['row'], positions['start'])])


def data_config(dataset_dir, stems=('mix',)):
  data = common.data_config()
  data.dataset_dir, data.crop_frames, data.shuffle_buffer = str(dataset_dir), 48, 64
  data.stems = stems
  return data


def assert_same_crops(data, steps=12, batch=7, **kwargs):
  meta = input_pipeline.load_dataset_meta(data.dataset_dir)
  table = input_pipeline.load_train_table(data, meta)
  assert table.mel.shape[0] == meta.num_records('train', data.stems)
  host = input_pipeline.train_batches(data, meta, batch, seed=3, **kwargs)
  where = input_pipeline.train_positions(data, meta, table, batch, seed=3, **kwargs)
  for _ in range(steps):
    expected, positions = next(host), next(where)
    np.testing.assert_array_equal(crops_of(table, positions, data.crop_frames), expected['mel'])
    np.testing.assert_array_equal(positions['stem'], expected['stem'])


@pytest.mark.parametrize('kwargs', [{}, {'start_step': 9},
                                    {'start_step': 2, 'process_index': 1, 'process_count': 2}])
def test_positions_cut_the_host_pipelines_crops(prepared_dir, kwargs):
  """Across epochs (an epoch is ~3 batches here), from a resumed step, and as host 2 of 2."""
  assert_same_crops(data_config(prepared_dir), **kwargs)


def test_device_crops_of_the_sharded_split_are_the_host_crops(prepared_dir):
  assert jax.device_count() == 2
  data = data_config(prepared_dir)
  meta = input_pipeline.load_dataset_meta(data.dataset_dir)
  table = input_pipeline.load_train_table(data, meta)
  mesh = parallel.make_mesh()
  on_devices = device_data.put_rows(table.mel, mesh)
  assert on_devices.shape[0] % 2 == 0 and len(on_devices.sharding.device_set) == 2
  positions = next(input_pipeline.train_positions(data, meta, table, 8, seed=0))
  batch = parallel.global_batch(positions, mesh)
  crops = jax.jit(device_data.crop_rows, static_argnums=3)(
      on_devices, batch['row'], batch['start'], data.crop_frames)
  expected = next(input_pipeline.train_batches(data, meta, 8, seed=0))['mel']
  np.testing.assert_array_equal(np.asarray(crops), expected)


def test_auto_placement_goes_by_size_and_says_so(caplog):
  caplog.set_level(logging.INFO)
  mesh = parallel.make_mesh()  # 2 devices: each holds half the split.
  on_gpu = lambda size: device_data.on_device('auto', size, 'the split', mesh,
                                              memory_bytes=800, platform='gpu')
  assert on_gpu(400) and not on_gpu(401 + 400)
  fallback = [r.getMessage() for r in caplog.records if 'host pipeline' in r.getMessage()]
  assert len(fallback) == 1 and 'the split' in fallback[0]
  assert not device_data.on_device('auto', 1, 'the split', mesh)  # These are CPU devices.
  assert device_data.on_device('device', 10**15, 'the split', mesh, memory_bytes=800)
  assert not device_data.on_device('host', 1, 'the split', mesh, memory_bytes=800)
  assert device_data.device_memory_bytes() > 0


def test_a_vqvae_trains_the_same_from_either_placement(prepared_dir):
  results = {}
  for placement in ('device', 'host'):
    config = vqvae_trainer_test.tiny_config(prepared_dir)
    config.data.placement = placement
    trainer = vqvae_trainer.VQVAETrainer(config)
    assert (trainer.table is not None) == (placement == 'device')
    state = trainer.fresh_start(trainer.create_state())
    batches = trainer.train_batches(0)
    losses = []
    for _ in range(3):
      state, metrics = trainer.jit_train_step(state, next(batches))
      losses.append(float(metrics['train/loss']))
    results[placement] = losses, parallel.host_values(state.params)
  np.testing.assert_allclose(results['device'][0], results['host'][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(results['device'][1]), jax.tree.leaves(results['host'][1])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_gan_trains_the_same_from_either_placement():
  data = gan_test.synthetic_latent_data()
  results = {}
  for placement in ('device', 'host'):
    config = gan_tiny.get_config()
    config.data.crop_steps = 12
    config.data.placement = placement
    trainer = gan_trainer.GANTrainer(config, data)
    assert (trainer.device_tables is not None) == (placement == 'device')
    state = trainer.create_state()
    batches = trainer.train_batches(5)
    losses = []
    for _ in range(3):
      state, metrics = trainer.jit_train_step(state, next(batches))
      losses.append(float(metrics['train/loss']))
    results[placement] = losses
  np.testing.assert_allclose(results['device'], results['host'], rtol=1e-5)


def test_a_run_logs_its_input_wait(trained_vqvae):
  workdir, _, _ = trained_vqvae
  rows = [row for row in workdir_lib.read_metrics(str(workdir)) if 'train/loss' in row]
  shares = [row['train/input_wait_share'] for row in rows]
  assert shares and all(0.0 <= share <= 1.0 for share in shares)
  # What it measures: the share of the interval spent in next(batches), whatever the steps.
  progress = loop._Progress(num_steps=8, last_step=0)  # pylint: disable=protected-access
  slow = (time.sleep(0.05) for _ in range(4))  # Input that keeps the loop waiting.
  for _ in range(4):
    progress.next_batch(slow)
  assert progress.update(4)[2] > 0.8
  time.sleep(0.2)  # A step's compute, its batch already there.
  progress.next_batch(iter([None]))
  assert progress.update(5)[2] < 0.2


def test_songs_in_memory_give_the_vocoders_crops(prepared_dir):
  audio = audio_crops.split_audio(str(prepared_dir), 'train', 2_048)
  samples = audio_crops.load_split_samples(audio)
  assert samples.samples.dtype == np.int16  # The cleaned WAVs' own PCM: half of float32.
  for kwargs in ({}, {'start_step': 3, 'process_index': 1, 'process_count': 2}):
    host = audio_crops.train_batches(audio, 2_048, 3, seed=5, **kwargs)
    starts = audio_crops.train_crop_starts(audio, samples, 2_048, 3, seed=5, **kwargs)
    for _ in range(3):
      expected, first = next(host)['audio'], next(starts)
      cut = samples.samples[first[:, None] + np.arange(2_048)].astype(np.float32) * samples.scale
      np.testing.assert_array_equal(cut, expected)


def test_a_vocoder_trains_the_same_from_either_placement(prepared_dir):
  losses = {}
  for placement in ('device', 'host'):
    config = vocoder_tiny.get_config()
    config.data.dataset_dir = str(prepared_dir)
    config.data.placement = placement
    trainer = vocoder_trainer.VocoderTrainer(config)
    assert (trainer.device_samples is not None) == (placement == 'device')
    state, batches = trainer.create_state(), trainer.train_batches(0)
    losses[placement] = []
    for _ in range(2):
      state, metrics = trainer.jit_train_step(state, next(batches))
      losses[placement].append(float(metrics['train/loss']))
  np.testing.assert_allclose(losses['device'], losses['host'], rtol=1e-5)
