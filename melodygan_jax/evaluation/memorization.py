"""Copies: each generated clip's nearest training clip, against the real floor.

Embedding rows [num_clips, dim] (e.g. `embeddings.Embedder.embed`): a generated
clip nearer to a training clip than almost all held-out real music gets is
flagged as too close.
"""
import dataclasses

import numpy as np

from melodygan_jax.evaluation import distances


def nearest_neighbours(queries: np.ndarray, candidates: np.ndarray,
                       chunk_rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """For each query row, the nearest candidate row (Euclidean).

  Args:
    queries: [q, dim]. candidates: [c, dim] (10^5 rows is fine: memory is chunk_rows x c).
    chunk_rows: queries per distance block.

  Returns:
    (indices [q] int64 into candidates, distances [q] float64).
  """
  queries = np.asarray(queries, np.float64)
  candidates = np.asarray(candidates, np.float64)
  indices = np.empty(len(queries), np.int64)
  nearest_distances = np.empty(len(queries), np.float64)
  for start in range(0, len(queries), chunk_rows):
    block = distances.squared_distances(queries[start:start + chunk_rows], candidates)
    nearest = np.argmin(block, axis=1)
    indices[start:start + len(block)] = nearest
    nearest_distances[start:start + len(block)] = np.sqrt(block[np.arange(len(block)), nearest])
  return indices, nearest_distances


@dataclasses.dataclass(frozen=True)
class Memorization:
  """Generated clips' nearest training clips, against the held-out real floor."""
  nearest_training_index: np.ndarray   # [num_generated] int64.
  nearest_training_distance: np.ndarray  # [num_generated].
  held_out_distance: np.ndarray        # [num_held_out]: held-out real to nearest training.
  threshold: float                     # The floor's `percentile`-th percentile.
  too_close: np.ndarray                # [num_generated] bool: closer than the threshold.

  @property
  def too_close_share(self) -> float:
    return float(self.too_close.mean()) if len(self.too_close) else 0.0


def memorization(generated: np.ndarray, training: np.ndarray, held_out: np.ndarray,
                 percentile: float = 5.0) -> Memorization:
  """Flags generated clips nearer to a training clip than real unseen music gets.

  Held-out real clips are never copies, so the `percentile`-th percentile of
  their distances to the nearest training clip is the floor: a generated clip
  below it is closer to training than 95% (for 5) of new real music.

  Args:
    generated: [g, dim]. training: [t, dim]. held_out: [h, dim] real clips not in training.
    percentile: of the held-out distances, the threshold.

  Returns:
    `Memorization`; expect about percentile% flagged for a model that copies nothing.
  """
  index, distance = nearest_neighbours(generated, training)
  _, held_out_distance = nearest_neighbours(held_out, training)
  threshold = float(np.percentile(held_out_distance, percentile))
  return Memorization(nearest_training_index=index, nearest_training_distance=distance,
                      held_out_distance=held_out_distance, threshold=threshold,
                      too_close=distance < threshold)
