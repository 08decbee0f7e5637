"""Checks melodygan_jax.evaluation.embeddings against musicnn's own TF1 graph.

  TF_USE_LEGACY_KERAS=1 python benchmarks/musicnn_reference_check.py

Needs `tf-keras` (the reference graph uses tf.compat.v1.layers); the library
does not. Builds musicnn's graph in its own tf.Graph, restores the MSD
checkpoint with a Saver, feeds both implementations the same patches (a tone,
noise and a chirp) and prints the largest difference of the 200-d penultimate
layer and of the 50 tag logits, then one JSON line.
"""
import json
import os
import sys

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=wrong-import-position

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from melodygan_jax.evaluation import embeddings  # pylint: disable=wrong-import-position


def test_clips(sample_rate_hz: int = 22_050, seconds: float = 6.5) -> list[np.ndarray]:
  t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
  rng = np.random.default_rng(0)
  return [0.5 * np.sin(2 * np.pi * 440 * t),
          0.3 * rng.standard_normal(len(t)),
          0.5 * np.sin(2 * np.pi * (100 + 400 * t) * t)]


def reference_outputs(patches: np.ndarray) -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from musicnn import models  # pylint: disable=g-import-not-at-top
  graph = tf.Graph()
  with graph.as_default():
    with tf.name_scope('model'):
      x = tf.compat.v1.placeholder(tf.float32, [None, embeddings.PATCH_FRAMES,
                                                embeddings.MUSICNN_NUM_MELS])
      is_training = tf.compat.v1.placeholder(tf.bool)
      outputs = models.define_model(x, is_training, 'MSD_musicnn', 50)
    session = tf.compat.v1.Session(graph=graph)
    tf.compat.v1.train.Saver().restore(session, embeddings.musicnn_checkpoint_prefix())
    logits, penultimate = session.run([outputs[0], outputs[-1]],
                                      {x: patches, is_training: False})
  return {'logits': logits, 'penultimate': penultimate}


def main():
  patches = np.concatenate([embeddings.log_mel_patches(clip, 22_050) for clip in test_clips()])
  reference = reference_outputs(patches)
  import jax  # pylint: disable=g-import-not-at-top
  params = jax.tree.map(jax.numpy.asarray, embeddings.load_musicnn_params(
      embeddings.musicnn_checkpoint_prefix()))
  ours = jax.jit(embeddings.musicnn_forward)(params, patches)
  result = {'num_patches': len(patches)}
  for name in ('penultimate', 'logits'):
    difference = np.abs(np.asarray(ours[name]) - reference[name])
    scale = np.abs(reference[name]).max()
    result[f'{name}_max_abs_difference'] = float(difference.max())
    result[f'{name}_max_abs_reference'] = float(scale)
    print(f'{name}: max |ours - musicnn| = {difference.max():.2e} (max |musicnn| {scale:.3g})')
  result['mean_clip_embedding_first_values'] = {
      kind: [round(float(v), 4) for v in reference['penultimate'][i * 2:i * 2 + 2].mean(0)[:4]]
      for i, kind in enumerate(('tone', 'noise', 'chirp'))}
  print(json.dumps(result))


if __name__ == '__main__':
  main()
