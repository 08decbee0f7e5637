"""Config validation that runs before anything compiles.

Every failure is an `errors.ConfigError` whose message is one line naming the field
(or path) and what is wrong with it.
"""
import jax
import ml_collections

from melodygan_jax import errors


def require(condition: bool, field: str, value, problem: str) -> None:
  if not condition:
    raise errors.ConfigError(f'{field}={value!r}: {problem}')


def check_positive(section: ml_collections.ConfigDict, prefix: str, names) -> None:
  for name in names:
    value = section[name]
    require(isinstance(value, (int, float)) and value > 0, f'{prefix}.{name}', value,
            'must be a positive number')


def check_train_section(train: ml_collections.ConfigDict) -> None:
  """Steps, frequencies and the global batch against this run's devices.

  A positive `train.per_device_batch_size` sets `train.batch_size` (in place)
  to that many examples per device, so config.json records the global size.
  """
  per_device = train.get('per_device_batch_size', 0)
  require(isinstance(per_device, int) and per_device >= 0, 'config.train.per_device_batch_size',
          per_device, 'must be 0 (use batch_size) or a positive number of examples')
  if per_device:
    train.batch_size = per_device * jax.device_count()
  check_positive(train, 'config.train', (
      'num_steps', 'batch_size', 'log_every_steps', 'eval_every_steps',
      'checkpoint_every_steps', 'keep_checkpoints'))
  devices = jax.device_count()
  require(train.batch_size % devices == 0, 'config.train.batch_size', train.batch_size,
          f'must be divisible by the {devices} devices it is split over')
  require(train.batch_size % jax.process_count() == 0, 'config.train.batch_size',
          train.batch_size, f'must be divisible by the {jax.process_count()} hosts')


def check_data_section(data: ml_collections.ConfigDict) -> None:
  require(bool(data.dataset_dir), 'config.data.dataset_dir', data.dataset_dir,
          'required: a data_prep.prepare --output_dir')
  check_positive(data, 'config.data', [name for name in ('crop_frames', 'shuffle_buffer')
                                        if name in data])  # The GAN crops in codes.
  require(len(data.stems) > 0, 'config.data.stems', data.stems, 'name at least one stem')
  check_placement(data)


def check_placement(data: ml_collections.ConfigDict) -> None:
  placement = data.get('placement', 'auto')
  require(placement in ('auto', 'device', 'host'), 'config.data.placement', placement,
          'must be auto, device or host')


def check_dtype(field: str, dtype: str) -> None:
  require(dtype in ('float32', 'bfloat16'), field, dtype, 'must be auto, float32 or bfloat16')


def resolve_dtype(section: ml_collections.ConfigDict, field: str) -> None:
  """Replaces a `dtype='auto'` of `section` (in place) with this machine's choice.

  bfloat16 on GPU and TPU (their matrix units run it at full rate), float32 on
  CPU, where bfloat16 is emulated and slower.
  """
  if section.dtype == 'auto':
    section.dtype = 'bfloat16' if jax.default_backend() in ('gpu', 'tpu') else 'float32'
  check_dtype(field, section.dtype)
