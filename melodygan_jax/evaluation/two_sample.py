"""Classifier two-sample test: can a small network tell a set from real music?

A small convolutional classifier (Flax NNX, optax, one jit-compiled step)
learns real (reference half A) against a set on log-mel patches of one part
of the clips, and scores the other part. The AUC of its per-clip scores
(mean patch logit) is the figure: 0.5 = it cannot tell them apart, 1 = it
always can; a bootstrap over test songs (clips where no song is known) gives
its interval, and the real
floor (half B against half A) shows what two samples of real music score.
Clips are split whole, and grouped by source file where the source is known,
so no training patch comes from a test clip (or a test song).
"""
import dataclasses
import math

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from melodygan_jax.evaluation import distances

PATCH_FRAMES = 64  # 0.74 s: a few notes or beats.
PATCH_MELS = 64    # The contract's 128 bands averaged in pairs.


@dataclasses.dataclass(frozen=True)
class TwoSampleOptions:
  patches_per_clip: int = 8
  channels: tuple[int, ...] = (16, 32, 32)  # Stride-2 3x3 convolutions.
  num_steps: int = 300
  # Steps stop sooner when a side's training patches are few: past this many passes over
  # them the classifier only learns those patches by heart (one training clip a side: 25
  # steps; 12 or more keep all 300).
  max_epochs: float = 100.0
  batch_size: int = 64
  learning_rate: float = 2e-3
  test_fraction: float = 0.5
  num_resamples: int = 200
  seed: int = 0
  # Subtract each patch's own mean spectrum: the classifier then judges how the
  # sound moves (onsets, held notes, phrasing), not which song's timbre it has,
  # which differs between any two sets of songs and is what KAD already sees.
  remove_patch_mean: bool = True


def log_mel_patches(log_mel: np.ndarray, patches_per_clip: int) -> np.ndarray:
  """[frames, 128] log-mel -> [patches_per_clip, PATCH_FRAMES, PATCH_MELS] float16.

  Patches evenly spaced over the clip (no randomness: the same clip gives the
  same patches), mel bands averaged in pairs; float16 keeps a set's patches
  at 64 KB per clip.
  """
  frames, mels = log_mel.shape
  pooled = log_mel.reshape(frames, PATCH_MELS, mels // PATCH_MELS).mean(axis=-1)
  if frames < PATCH_FRAMES:
    pooled = np.pad(pooled, ((0, PATCH_FRAMES - frames), (0, 0)), mode='edge')
    frames = PATCH_FRAMES
  starts = np.linspace(0, frames - PATCH_FRAMES, patches_per_clip).round().astype(int)
  return np.stack([pooled[start:start + PATCH_FRAMES] for start in starts]).astype(np.float16)


class PatchClassifier(nnx.Module):
  """[batch, PATCH_FRAMES, PATCH_MELS] normalized log-mel -> [batch] logits (1 = the set)."""

  def __init__(self, channels: tuple[int, ...], rngs: nnx.Rngs):
    widths = (1,) + tuple(channels)
    self.convs = nnx.List([nnx.Conv(widths[i], widths[i + 1], kernel_size=(3, 3),
                                    strides=(2, 2), rngs=rngs)
                           for i in range(len(channels))])
    self.head = nnx.Linear(widths[-1], 1, rngs=rngs)

  def __call__(self, patches: jax.Array) -> jax.Array:
    hidden = patches[..., None]
    for conv in self.convs:
      hidden = nnx.leaky_relu(conv(hidden), 0.2)
    return self.head(hidden.mean(axis=(1, 2)))[:, 0]


def split_by_group(groups: np.ndarray, test_fraction: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Clip indices (train, test): whole groups to one side, about `test_fraction` of clips tested.

  Groups are shuffled (seeded) and given to the test side until it holds
  its share; at least one group goes to each side.

  Raises:
    ValueError: fewer than two groups.
  """
  groups = np.asarray(groups)
  labels = np.unique(groups)
  if len(labels) < 2:
    raise ValueError(f'cannot split {len(labels)} group(s) into train and test clips')
  order = np.random.default_rng(seed).permutation(labels)
  sizes = {label: int(np.sum(groups == label)) for label in labels}
  test_labels, test_count = [], 0
  for label in order[:-1]:  # The last group always trains.
    if test_labels and test_count >= test_fraction * len(groups):
      break
    test_labels.append(label)
    test_count += sizes[label]
  is_test = np.isin(groups, test_labels)
  return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def splittable_groups(groups: np.ndarray | None, num_clips: int) -> np.ndarray:
  """The groups to split by: `groups` where there are two or more, else one per clip."""
  if groups is None or len(np.unique(groups)) < 2:
    return np.arange(num_clips)
  return np.asarray(groups)


def auc(scores_negative: np.ndarray, scores_positive: np.ndarray) -> float:
  """Area under the ROC curve: P(positive score > negative score), ties counting half."""
  negative = np.asarray(scores_negative, np.float64)
  positive = np.asarray(scores_positive, np.float64)
  greater = (positive[:, None] > negative[None, :]).mean()
  ties = (positive[:, None] == negative[None, :]).mean()
  return float(greater + 0.5 * ties)


def auc_interval(scores_negative: np.ndarray, scores_positive: np.ndarray,
                 num_resamples: int, seed: int, confidence: float = 0.95,
                 groups_negative: np.ndarray | None = None,
                 groups_positive: np.ndarray | None = None) -> distances.Interval:
  """AUC and its percentile bootstrap interval.

  Each side's test clips are resampled by group (whole songs, when groups
  are given) within the side: clips of one song move the AUC together, so
  the songs, not the clips, are the independent draws.
  """
  rng = np.random.default_rng(seed)
  sides = []
  for scores, groups in ((scores_negative, groups_negative), (scores_positive, groups_positive)):
    groups = np.arange(len(scores)) if groups is None else np.asarray(groups)
    labels = np.unique(groups)
    sides.append((np.asarray(scores), [np.flatnonzero(groups == label) for label in labels]))

  def resample(scores, members):
    picks = rng.integers(0, len(members), len(members))
    return scores[np.concatenate([members[pick] for pick in picks])]

  draws = [auc(resample(*sides[0]), resample(*sides[1])) for _ in range(num_resamples)]
  tail = 50.0 * (1.0 - confidence)
  low, high = np.percentile(draws, [tail, 100.0 - tail])
  return distances.Interval(auc(scores_negative, scores_positive), float(low), float(high),
                            confidence, num_resamples)


@dataclasses.dataclass
class TwoSampleResult:
  """One test: the AUC with its interval, and the per-clip test scores."""
  auc: distances.Interval
  reference_scores: np.ndarray  # [test clips of the reference] mean logits.
  set_scores: np.ndarray        # [test clips of the set].

  def entry(self) -> dict:
    return {'value': self.auc.value, 'low': self.auc.low, 'high': self.auc.high}


def _make_train_step(graphdef, optimizer: optax.GradientTransformation):
  def loss_fn(params, patches, labels):
    logits = nnx.merge(graphdef, params)(patches)
    return optax.sigmoid_binary_cross_entropy(logits, labels).mean()

  def train_step(params, opt_state, patches, labels):
    loss, grads = jax.value_and_grad(loss_fn)(params, patches, labels)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return jax.jit(train_step, donate_argnums=(0, 1))


class TwoSampleTester:
  """Trains and scores one classifier per set against a fixed real reference.

  The reference's train/test split, the patch normalization and the
  compiled step are shared by every set, so every set faces the same test.
  """

  def __init__(self, reference_patches: np.ndarray, reference_groups: np.ndarray,
               options: TwoSampleOptions = TwoSampleOptions()):
    """Args:
      reference_patches: [clips, patches, PATCH_FRAMES, PATCH_MELS] real clips' patches.
      reference_groups: [clips] source label per clip (clips of a label stay together;
        a single source is split by clip).
      options: sizes, steps and seed.
    """
    self.options = options
    self.reference = np.asarray(reference_patches, np.float32)
    self.reference_groups = splittable_groups(reference_groups, len(self.reference))
    self.reference_train, self.reference_test = split_by_group(
        self.reference_groups, options.test_fraction, options.seed)
    train = self.reference[self.reference_train]
    # One affine map for every input (less each patch's mean with remove_patch_mean).
    self.band_mean = train.mean(axis=(0, 1, 2))
    deviations = train - (train.mean(axis=-2, keepdims=True) if options.remove_patch_mean
                          else self.band_mean)
    self.scale = float(deviations.std()) + 1e-6
    model = PatchClassifier(options.channels, nnx.Rngs(options.seed))
    self.graphdef, self.initial_params = nnx.split(model)
    self.optimizer = optax.adam(options.learning_rate)
    self.jit_train_step = _make_train_step(self.graphdef, self.optimizer)
    self.jit_logits = jax.jit(lambda params, patches: nnx.merge(self.graphdef, params)(patches))

  def num_steps(self, smaller_side_patches: int) -> int:
    """Training steps: `num_steps`, or fewer where `max_epochs` passes come sooner."""
    half = self.options.batch_size // 2
    epoch_steps = math.ceil(self.options.max_epochs * smaller_side_patches / half)
    return max(1, min(self.options.num_steps, epoch_steps))

  def _normalize(self, patches: np.ndarray) -> np.ndarray:
    patches = np.asarray(patches, np.float32)
    if self.options.remove_patch_mean:
      return ((patches - patches.mean(axis=-2, keepdims=True)) / self.scale).astype(np.float32)
    return ((patches - self.band_mean) / self.scale).astype(np.float32)

  def _clip_scores(self, params, patches: np.ndarray) -> np.ndarray:
    """[clips, patches, ...] -> [clips] mean logit, in fixed-size batches (one compile)."""
    clips, per_clip = patches.shape[:2]
    flat = self._normalize(patches.reshape(clips * per_clip, *patches.shape[2:]))
    batch = self.options.batch_size
    logits = []
    for first in range(0, len(flat), batch):
      chunk = flat[first:first + batch]
      padded = np.concatenate([chunk, np.zeros((batch - len(chunk),) + chunk.shape[1:],
                                               np.float32)])
      logits.append(np.asarray(self.jit_logits(params, padded))[:len(chunk)])
    return np.concatenate(logits).reshape(clips, per_clip).mean(axis=1)

  def test(self, set_patches: np.ndarray, set_groups: np.ndarray | None = None,
           seed_offset: int = 0) -> TwoSampleResult:
    """Reference half A against one set.

    Args:
      set_patches: [clips, patches, PATCH_FRAMES, PATCH_MELS] the set's patches.
      set_groups: [clips] source labels (real sets); None or a single source: every
        clip its own group.
      seed_offset: added to the seed for the set's split and batch order.

    Returns:
      The AUC (with its interval) of the classifier on the held-out clips.
    """
    options = self.options
    seed = options.seed + seed_offset
    set_patches = np.asarray(set_patches, np.float32)
    set_groups = splittable_groups(set_groups, len(set_patches))
    set_train, set_test = split_by_group(set_groups, options.test_fraction, seed)
    patch_shape = set_patches.shape[2:]
    train_patches = np.concatenate([
        self.reference[self.reference_train].reshape(-1, *patch_shape),
        set_patches[set_train].reshape(-1, *patch_shape)])
    train_labels = np.concatenate([
        np.zeros(len(self.reference_train) * self.reference.shape[1], np.float32),
        np.ones(len(set_train) * set_patches.shape[1], np.float32)])
    train_patches = self._normalize(train_patches)
    # Balanced batches: half reference, half set, whatever the counts.
    reference_rows = np.flatnonzero(train_labels == 0)
    set_rows = np.flatnonzero(train_labels == 1)
    rng = np.random.default_rng(seed)
    params = jax.tree.map(jnp.copy, self.initial_params)
    opt_state = self.optimizer.init(params)
    half = options.batch_size // 2
    for _ in range(self.num_steps(min(len(reference_rows), len(set_rows)))):
      rows = np.concatenate([rng.choice(reference_rows, half), rng.choice(set_rows, half)])
      params, opt_state, _ = self.jit_train_step(params, opt_state, train_patches[rows],
                                                 train_labels[rows])
    reference_scores = self._clip_scores(params, self.reference[self.reference_test])
    set_scores = self._clip_scores(params, set_patches[set_test])
    interval = auc_interval(reference_scores, set_scores, options.num_resamples, seed,
                            groups_negative=self.reference_groups[self.reference_test],
                            groups_positive=set_groups[set_test])
    return TwoSampleResult(interval, reference_scores, set_scores)

