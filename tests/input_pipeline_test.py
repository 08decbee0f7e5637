"""The tf.data reader: shapes, normalization, determinism and each host's rows."""
import ml_collections
import numpy as np
import pytest

from configs import common
from melodygan_jax.audio import contract
from melodygan_jax.data import input_pipeline


@pytest.fixture(scope='module')
def data(prepared_dir):
  config = common.data_config()
  config.dataset_dir = str(prepared_dir)
  config.crop_frames = 48
  config.shuffle_buffer = 64
  return config


@pytest.fixture(scope='module')
def meta(data):
  meta = input_pipeline.load_dataset_meta(data.dataset_dir)
  input_pipeline.check_data_config(data, meta)
  return meta


def take(iterator, count):
  return [next(iterator) for _ in range(count)]


def test_train_batches_shape_and_normalization(data, meta):
  batches = take(input_pipeline.train_batches(data, meta, local_batch_size=7, seed=0), 12)
  assert batches[0]['mel'].shape == (7, 48, contract.NUM_MELS) and batches[0]['mel'].dtype == np.float32
  assert batches[0]['stem'].tolist() == [0] * 7
  mels = np.concatenate([b['mel'] for b in batches])
  assert abs(mels.mean()) < 0.15 and 0.8 < mels.std() < 1.2
  assert np.isfinite(mels).all()


def test_train_batches_are_a_function_of_seed_and_step(data, meta):
  run = take(input_pipeline.train_batches(data, meta, 7, seed=3), 30)
  again = take(input_pipeline.train_batches(data, meta, 7, seed=3), 30)
  for a, b in zip(run, again):
    np.testing.assert_array_equal(a['mel'], b['mel'])
  # Resuming mid-epoch and across an epoch boundary (epochs are ~5 batches).
  for step in (4, 17):
    resumed = take(input_pipeline.train_batches(data, meta, 7, seed=3, start_step=step), 3)
    for offset in range(3):
      np.testing.assert_array_equal(resumed[offset]['mel'], run[step + offset]['mel'])
  other_seed = next(input_pipeline.train_batches(data, meta, 7, seed=4))
  assert not np.array_equal(other_seed['mel'], run[0]['mel'])


def test_each_epoch_sees_every_record_once(data, meta):
  full = ml_collections.ConfigDict(data.to_dict())
  full.crop_frames = meta.segment_frames  # No crop: whole segments identify records.
  num_records = meta.num_records('train', data.stems)
  batches = take(input_pipeline.train_batches(full, meta, 1, seed=0), 2 * num_records)
  first, second = ([b['mel'][0].tobytes() for b in batches[i::1][:num_records]]
                   for i in (0, num_records))
  assert len(set(first)) == num_records
  assert set(first) == set(second) and first != second  # Same records, new order.


@pytest.mark.parametrize('process_count', [2, 3])
def test_hosts_take_their_rows_of_the_one_process_batches(data, meta, process_count):
  """The global batch of a step is the same whatever the number of hosts."""
  one_host = take(input_pipeline.train_batches(data, meta, 6, seed=0, start_step=2), 4)
  local = 6 // process_count
  hosts = [take(input_pipeline.train_batches(data, meta, local, seed=0, start_step=2,
                                             process_index=host, process_count=process_count), 4)
           for host in range(process_count)]
  for step, batch in enumerate(one_host):
    for name in ('mel', 'stem'):
      np.testing.assert_array_equal(
          np.concatenate([host[step][name] for host in hosts]), batch[name])
  # Each host parses only its own rows: disjoint crops.
  rows = [{example.tobytes() for b in host for example in b['mel']} for host in hosts]
  assert all(len(r) == 4 * local for r in rows) and not rows[0] & rows[1]


def test_validation_batches_are_deterministic_and_padded(data, meta):
  batches = list(input_pipeline.sequential_batches(data, meta, 'validation', 5))
  again = list(input_pipeline.sequential_batches(data, meta, 'validation', 5))
  for a, b in zip(batches, again):
    np.testing.assert_array_equal(a['mel'], b['mel'])
  crops = meta.num_records('validation', data.stems) * (meta.segment_frames // 48)
  assert sum(b['weight'].sum() for b in batches) == crops
  assert len(batches) == -(-crops // 5)
  assert batches[-1]['mel'][batches[-1]['weight'] == 0].sum() == 0
  # Every host yields the same number of batches, padding where it has fewer.
  per_host = [list(input_pipeline.sequential_batches(data, meta, 'validation', 3,
                                                     process_index=i, process_count=3))
              for i in range(3)]
  assert len({len(b) for b in per_host}) == 1
  assert sum(b['weight'].sum() for host in per_host for b in host) == crops


def test_config_errors_name_the_field(data, meta, tmp_path):
  too_long = ml_collections.ConfigDict(data.to_dict())
  too_long.crop_frames = 65
  with pytest.raises(input_pipeline.DatasetError, match='data.crop_frames=65'):
    input_pipeline.check_data_config(too_long, meta)
  vocals = ml_collections.ConfigDict(data.to_dict())
  vocals.stems = ('vocals',)
  with pytest.raises(input_pipeline.DatasetError, match='data.stems: vocals'):
    input_pipeline.check_data_config(vocals, meta)
  with pytest.raises(input_pipeline.DatasetError, match='does not exist'):
    input_pipeline.load_dataset_meta(tmp_path / 'nowhere')
  with pytest.raises(input_pipeline.DatasetError, match='holds no prepared data set'):
    input_pipeline.load_dataset_meta(tmp_path)
