"""The fast record writer agrees with the TFDS schema it advertises."""
import numpy as np
import tensorflow as tf

from melodygan_jax.audio import contract
from melodygan_jax.data import records


def test_serialize_segment_decodes_with_tfds_features():
  rng = np.random.default_rng(0)
  mel = rng.standard_normal((13, contract.NUM_MELS)).astype(np.float32)
  mfcc = rng.standard_normal((13, 20)).astype(np.float32)
  serialized = records.serialize_segment(mel, mfcc, 'album/song.mp3', 2.5, 'vocals')
  features = records.features_dict(13)
  decoded = features.deserialize_example(serialized)
  np.testing.assert_array_equal(decoded['mel'].numpy(), mel)
  np.testing.assert_array_equal(decoded['mfcc'].numpy(), mfcc)
  assert decoded['source'].numpy() == b'album/song.mp3'
  assert decoded['stem'].numpy() == b'vocals'
  assert decoded['start_s'].numpy() == np.float32(2.5)
  # The same bytes as TFDS's own serializer, once both fix the map order.
  reference = tf.train.Example.FromString(features.serialize_example(
      {'mel': mel, 'mfcc': mfcc, 'source': 'album/song.mp3', 'start_s': 2.5,
       'stem': 'vocals'})).SerializeToString(deterministic=True)
  assert reference == serialized
  parsed = records.parse_segment(tf.constant(serialized), 13)
  np.testing.assert_array_equal(parsed['mel'].numpy(), mel)
  assert records.parse_stem(tf.constant(serialized)).numpy() == b'vocals'
