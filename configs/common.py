"""Config sections shared by every experiment."""
import ml_collections


def data_config() -> ml_collections.ConfigDict:
  """The `data` section: which prepared data set, and how examples are cut."""
  data = ml_collections.ConfigDict()
  data.dataset_dir = ''  # A data_prep.prepare --output_dir (holds stats.json and tfds/).
  data.crop_frames = 128  # Random crop of each stored segment; 128 frames = 1.49 s.
  data.shuffle_buffer = 2048  # Records; with shuffled shard order, enough to mix songs.
  data.stems = ('mix',)  # Stem kinds to train on: mix, vocals, instrumental.
  # Where the train split lives while training: 'device' (whole, sharded over the
  # devices, cropped inside the step: no input wait), 'host' (read and cropped by
  # the host each step) or 'auto' (on a GPU or TPU, device when it takes at most
  # a quarter of each device's memory; on a CPU, host).
  data.placement = 'auto'
  return data


def train_config() -> ml_collections.ConfigDict:
  """The `train` section fields every trainer reads; trainers add their own."""
  train = ml_collections.ConfigDict()
  train.num_steps = 200_000
  train.batch_size = 32  # Global: split over every device of every host.
  # When positive, replaces batch_size with this times the device count (weak scaling).
  train.per_device_batch_size = 0
  train.log_every_steps = 100
  train.eval_every_steps = 2_000
  train.checkpoint_every_steps = 2_000
  train.keep_checkpoints = 3  # Older checkpoints are deleted.
  train.num_summary_examples = 4  # Spectrograms (and audio) shown in TensorBoard.
  return train


def sweep_config(metric: str, pruner: str = 'median') -> ml_collections.ConfigDict:
  """The `sweep` section `python -m melodygan_jax.sweep` reads; configs add `space`.

  Args:
    metric: the validation metric a trial is scored by (lower is better).
    pruner: 'median', 'hyperband' or 'none'.
  """
  sweep = ml_collections.ConfigDict()
  sweep.metric = metric
  sweep.pruner = pruner  # Stops a trial whose validation curve trails the others.
  sweep.pruner_startup_trials = 3  # 'median': trials that finish before any is pruned.
  sweep.pruner_warmup_steps = 0  # 'median': train steps before a trial may be pruned.
  sweep.heartbeat_interval_s = 60  # A running trial proves its worker alive this often...
  sweep.grace_period_s = 300  # ...and is failed and re-queued after this long without.
  sweep.max_retries = 3  # Times a dead worker's trial is re-queued.
  # > 0: every trial trains for this many seconds of this machine instead of
  # train.num_steps (its steps measured for its own sampled config before it starts,
  # training/calibration.py), so a bigger or slower config is judged at equal time.
  sweep.train_seconds = 0.0
  # Dotted config field -> distribution, nested like the config itself
  # (melodygan_jax/training/sweeps/search_space.py lists the distributions).
  sweep.space = ml_collections.ConfigDict()
  return sweep
