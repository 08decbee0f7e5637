"""Config sections shared by every experiment."""
import ml_collections


def data_config() -> ml_collections.ConfigDict:
  """The `data` section: which prepared data set, and how examples are cut."""
  data = ml_collections.ConfigDict()
  data.dataset_dir = ''  # A data_prep.prepare --output_dir (holds stats.json and tfds/).
  data.crop_frames = 128  # Random crop of each stored segment; 128 frames = 1.49 s.
  data.shuffle_buffer = 2048  # Records; with shuffled shard order, enough to mix songs.
  data.stems = ('mix',)  # Stem kinds to train on: mix, vocals, instrumental.
  return data
