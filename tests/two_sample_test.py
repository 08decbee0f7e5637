"""two_sample: the classifier test at chance on one distribution, near 1 on two."""
import dataclasses

import numpy as np
import pytest

from melodygan_jax.evaluation import two_sample

OPTIONS = two_sample.TwoSampleOptions(patches_per_clip=4, channels=(8, 16), num_steps=40,
                                     batch_size=32, num_resamples=100)


def log_mels(num_clips: int, seed: int, beats: bool = False) -> np.ndarray:
  """[clips, patches, frames, mels] patches of noisy log-mels with a spectral tilt.

  With `beats`, every 16th frame is loud: a difference in how the sound moves,
  which the classifier sees through each patch's own mean spectrum.
  """
  rng = np.random.default_rng(seed)
  clips = []
  for _ in range(num_clips):
    log_mel = 0.5 * rng.standard_normal((150, 128)) + np.linspace(0.0, -3.0, 128)
    if beats:
      log_mel[::16] += 2.0
    clips.append(two_sample.log_mel_patches(log_mel.astype(np.float32),
                                            OPTIONS.patches_per_clip))
  return np.stack(clips)


@pytest.fixture(scope='module')
def tester():
  return two_sample.TwoSampleTester(log_mels(60, seed=0), np.arange(60), OPTIONS)


def test_two_halves_of_one_distribution_are_indistinguishable(tester):
  other = log_mels(60, seed=1)
  result = tester.test(other)
  assert 0.3 < result.auc.value < 0.7
  assert result.auc.low < 0.5 < result.auc.high
  assert tester.test(other).entry() == result.entry()  # Deterministic given the seed.


def test_clearly_different_sets_are_told_apart(tester):
  result = tester.test(log_mels(60, seed=2, beats=True))
  assert result.auc.value > 0.95 and result.auc.low > 0.9


def test_a_constant_spectral_difference_is_seen_only_with_the_patch_mean(tester):
  louder_band = log_mels(60, seed=2) + np.eye(1, two_sample.PATCH_MELS, 20, dtype=np.float16)
  assert tester.test(louder_band).auc.value < 0.75  # Each patch's mean removed: unseen.
  keeping = two_sample.TwoSampleTester(
      log_mels(60, seed=0), np.arange(60),
      dataclasses.replace(OPTIONS, remove_patch_mean=False))
  assert keeping.test(louder_band).auc.value > 0.95


def test_splits_keep_groups_whole():
  groups = np.repeat(np.arange(6), [5, 3, 4, 2, 6, 4])
  train, test = two_sample.split_by_group(groups, test_fraction=0.5, seed=3)
  assert set(groups[train]).isdisjoint(groups[test])
  assert len(train) + len(test) == len(groups) and len(test) > 0 and len(train) > 0
  with pytest.raises(ValueError, match='1 group'):
    two_sample.split_by_group(np.zeros(5), 0.5, 0)


def test_patches_are_evenly_spaced_and_pooled():
  log_mel = np.tile(np.arange(200, dtype=np.float32)[:, None], (1, 128))
  patches = two_sample.log_mel_patches(log_mel, 3)
  assert patches.shape == (3, two_sample.PATCH_FRAMES, two_sample.PATCH_MELS)
  assert [patch[0, 0] for patch in patches] == [0.0, 68.0, 136.0]
  short = two_sample.log_mel_patches(log_mel[:10], 2)  # Shorter than a patch: edge-padded.
  assert short.shape == (2, two_sample.PATCH_FRAMES, two_sample.PATCH_MELS)
  assert two_sample.auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0


def test_the_interval_resamples_whole_songs():
  rng = np.random.default_rng(0)
  # Two songs a side, each song's clips alike: 4 independent draws, not 40.
  negative = np.repeat([0.0, 2.0], 20) + 0.01 * rng.standard_normal(40)
  positive = np.repeat([1.0, 3.0], 20) + 0.01 * rng.standard_normal(40)
  by_clip = two_sample.auc_interval(negative, positive, 200, seed=0)
  by_song = two_sample.auc_interval(negative, positive, 200, seed=0,
                                    groups_negative=np.repeat([0, 1], 20),
                                    groups_positive=np.repeat([0, 1], 20))
  assert by_song.value == by_clip.value == pytest.approx(0.75)
  assert by_song.high - by_song.low > 2 * (by_clip.high - by_clip.low)


def test_few_training_clips_stop_the_classifier_after_max_epochs(tester):
  # 30 training clips of 4 patches a side: 100 passes are 750 steps of 16 a side, past 40.
  assert tester.num_steps(120) == OPTIONS.num_steps
  assert tester.num_steps(4) == 25  # 100 passes over one clip's 4 patches, 16 a step.
  assert tester.num_steps(0) == 1
  # A set of 4 clips (8 training patches) still trains long enough to hear the beats.
  few = tester.test(log_mels(4, seed=2, beats=True), seed_offset=1)
  assert len(few.set_scores) == 2 and few.auc.value > 0.95
