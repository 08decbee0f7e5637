"""prepare as an Apache Beam pipeline: the same per-file work, on many machines.

  python -m data_prep.prepare --input_dir=raw/ --output_dir=data/ --runner=direct
  python -m data_prep.prepare ... --runner=dataflow --beam_options="--project=P --region=R ..."

The graph: the listed input files -> prepare each file (decode, clean,
separate, featurize: `song.process_song`, in a single-threaded-BLAS child
process as on the local path, so a file that crashes its decoder is skipped,
not retried into a failed job) -> the split of every used song by the hash
of its path -> each segment to the shard its identity hashes to (a song's
segment numbers of one shard travel as one element) -> one writer per shard,
reading those rows from the songs' archives, records sorted by source, stem
and start -> TFDS metadata,
stats.json (train-split sums through a CombineFn) and report.json. Every
choice is the local path's (`shards.shard_of`, `shards.assign_splits`, the
same record bytes), so both write the same data set.

Its settings are prepare's config (configs/prepare.py; --runner and
--beam_options are its run.runner and run.beam_options), checked and written
to OUT/prepare_config.json by `prepare.prepare` before the pipeline starts.
Files finished by an earlier run (their `work/` outcome matches) are reused,
as locally. Input and output folders must be storage every worker sees at
the same path.
"""
import concurrent.futures
import concurrent.futures.process
import os
import shlex
import shutil
import time

import apache_beam as beam
from apache_beam.options import pipeline_options as beam_pipeline_options
import numpy as np

from data_prep import features
from data_prep import report as report_lib
from data_prep import shards
from data_prep import song as song_lib
from data_prep import workers
from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax.audio import contract
from melodygan_jax.data import records

# prepare's --runner names (prepare.BEAM_RUNNERS) -> Beam's.
RUNNERS = {'direct': 'DirectRunner', 'dataflow': 'DataflowRunner', 'flink': 'FlinkRunner',
           'spark': 'SparkRunner'}


def pipeline_options(runner: str, beam_options: str) -> beam_pipeline_options.PipelineOptions:
  """Beam's options from --runner and the --beam_options string.

  Raises:
    ValueError: an unknown runner or unparsable options; one line each.
  """
  if runner not in RUNNERS:
    raise errors.ConfigError(f'--runner={runner}: choose one of {", ".join(RUNNERS)}')
  try:
    flags = shlex.split(beam_options)
  except ValueError as e:
    raise errors.ConfigError(f'--beam_options={beam_options!r}: {e}') from e
  return beam_pipeline_options.PipelineOptions([f'--runner={RUNNERS[runner]}', *flags])


class PrepareFile(beam.DoFn):
  """One task -> its outcome, computed in a child process like the local pool's."""

  def __init__(self):
    super().__init__()
    self._executor = None

  def setup(self):
    self._executor = workers.make_executor(1)

  def process(self, task: song_lib.SongTask):
    finished = song_lib.load_finished(task)
    if finished is not None:
      yield {**finished, report_lib.REUSED_KEY: True}
      return
    try:
      yield self._executor.submit(song_lib.process_song, task).result()
    except concurrent.futures.process.BrokenProcessPool:
      self._executor = workers.make_executor(1)
      yield song_lib.load_finished(task) or workers.crash_outcome(task)

  def teardown(self):
    if self._executor is not None:
      self._executor.shutdown()


def _song_shards(outcome: dict, cache_paths: dict, split_of: dict, num_shards: dict):
  """A used song's segments, one element per (stem, shard) they hash to.

  Yields:
    ((split, shard), (source, stem, indices [n])): only which segments go
    where travels through the shuffle; the shard's writer reads those rows
    from the song's segment archive (storage every worker sees). Arrays in
    the shuffle took ~90x their size in memory on the DirectRunner.
  """
  split = split_of[outcome['source']]
  archive = cache_paths[outcome['source']] + '.npz'
  for stem in outcome['stems']:
    count = features.num_segments(archive, f'{stem}/mel')
    shard_of = np.array([shards.shard_of(outcome['source'], stem, index, num_shards[split])
                         for index in range(count)], np.int64)
    for shard in np.unique(shard_of):
      yield (split, int(shard)), (outcome['source'], stem, np.flatnonzero(shard_of == shard))


def _stem_sums(outcome: dict, cache_paths: dict, split_of: dict):
  """A train song's per-stem statistics, as the local path adds them (whole songs)."""
  if split_of[outcome['source']] != records.TRAIN_SPLIT:
    return
  archive = cache_paths[outcome['source']] + '.npz'
  for stem in outcome['stems']:
    stats = shards.StemStats()
    for _, mel, mfcc in features.segment_chunks(archive, stem):
      stats.add(mel, mfcc)
    yield stem, stats


def _shard_counts(outcomes: list[dict], split_of: dict, segment_frames: int,
                  shard_size_mb: float) -> dict:
  """split -> number of shards, from the segment counts as the local path sizes them."""
  totals = {}
  for outcome in outcomes:
    split = split_of[outcome['source']]
    totals[split] = totals.get(split, 0) + outcome['num_segments'] * len(outcome['stems'])
  return {split: shards.num_shards_for(total, segment_frames, shard_size_mb)
          for split, total in totals.items() if total}


def _write_shard(keyed_groups, work_dir: str, num_shards: dict, cache_paths: dict,
                 segment_frames: int) -> dict:
  """Writes one shard, its records in the local path's order; returns what it holds."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  (split, shard), groups = keyed_groups
  path = os.path.join(work_dir, records.shard_filename(split, shard, num_shards[split]))
  counts = dict.fromkeys(contract.STEM_KINDS, 0)
  with tf.io.TFRecordWriter(path) as writer:
    # Sorted by source and stem; a song's indices are ascending: sorted by start.
    for source, stem, indices in sorted(groups, key=lambda group: group[:2]):
      archive = cache_paths[source] + '.npz'
      mel = features.read_segment_rows(archive, f'{stem}/mel', indices)
      mfcc = features.read_segment_rows(archive, f'{stem}/mfcc', indices)
      for index, segment_mel, segment_mfcc in zip(indices, mel, mfcc):
        writer.write(records.serialize_segment(
            segment_mel, segment_mfcc, source,
            shards.segment_start_s(int(index), segment_frames), stem))
      counts[stem] += len(indices)
  return {'split': split, 'shard': shard, 'counts': counts}


class StatsCombineFn(beam.CombineFn):
  """Per-stem StemStats of the train split, merged."""

  def create_accumulator(self):
    return shards.StemStats()

  def add_input(self, accumulator, stats):
    return accumulator.merge(stats)

  def merge_accumulators(self, accumulators):
    merged = shards.StemStats()
    for accumulator in accumulators:
      merged.merge(accumulator)
    return merged

  def extract_output(self, accumulator):
    return accumulator


def _finish(shard_infos: list[dict], outcomes: list[dict], split_of: dict, stem_stats: list,
            num_shards: dict, output_dir: str, segment_frames: int, input_dir: str,
            started: float, runner: str, clean_wavs: dict | None = None) -> None:
  """Empty shards, TFDS metadata, the folder swap, stats.json and report.json."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  work_dir = shards.staging_dir(output_dir)
  stats = None
  if num_shards:
    counts = {split: [dict.fromkeys(contract.STEM_KINDS, 0) for _ in range(n)]
              for split, n in num_shards.items()}
    for info in shard_infos:
      counts[info['split']][info['shard']] = info['counts']
    split_infos = []
    for split in (records.TRAIN_SPLIT, records.VALIDATION_SPLIT):
      if split not in num_shards:
        continue
      paths = [work_dir / records.shard_filename(split, i, num_shards[split])
               for i in range(num_shards[split])]
      for path in paths:  # A shard no segment hashed to is still written, empty.
        path.touch()
      split_infos.append(tfds.core.SplitInfo(
          name=split, shard_lengths=[sum(c.values()) for c in counts[split]],
          num_bytes=sum(path.stat().st_size for path in paths)))
    shards.finish_dataset(work_dir, records.dataset_path(output_dir), split_infos,
                          segment_frames)
    stats = shards.stats_json(dict(stem_stats), split_of, counts, segment_frames)
    atomic_files.write_json(os.path.join(output_dir, records.STATS_FILENAME), stats)
  report = report_lib.build_report(input_dir, outcomes, stats, time.time() - started,
                                   runner=runner, clean_wavs=clean_wavs)
  report_lib.write_report(output_dir, report)


def run(tasks: list[song_lib.SongTask], options, runner: str, beam_options: str = '') -> dict:
  """Prepares `tasks` with Beam; returns the report (also in report.json).

  Args:
    tasks: one per input file (`prepare.make_tasks`).
    options: the checked `prepare.PrepareOptions`.
    runner: a key of RUNNERS.
    beam_options: further Beam flags, one string (`--project=P --region=R`).

  Returns:
    The report, as the local path's: files, counts, hours, and the run's
    throughput and peak worker memory.
  """
  pipeline_flags = pipeline_options(runner, beam_options)
  started = time.time()
  output_dir = str(options.output_dir)
  segment_frames = options.song.segment_frames
  work_dir = shards.staging_dir(output_dir)
  shutil.rmtree(work_dir, ignore_errors=True)
  work_dir.mkdir(parents=True)
  cache_paths = {task.source: task.cache_path for task in tasks}
  # Longest first, so no worker is left with one long song at the end.
  tasks = sorted(tasks, key=lambda task: -_size(task.input_path))

  with beam.Pipeline(options=pipeline_flags) as pipeline:
    outcomes = (pipeline
                | 'ListInputs' >> beam.Create(tasks, reshuffle=True)
                | 'PrepareFiles' >> beam.ParDo(PrepareFile()))
    all_outcomes = outcomes | 'AllOutcomes' >> beam.combiners.ToList()
    used = outcomes | 'Used' >> beam.Filter(lambda outcome: outcome['status'] == 'used')
    used_list = used | 'UsedList' >> beam.combiners.ToList()
    split_of = used_list | 'AssignSplits' >> beam.Map(
        lambda used: shards.assign_splits(sorted(o['source'] for o in used),
                                          options.validation_fraction))
    num_shards = used_list | 'CountShards' >> beam.Map(
        _shard_counts, split_of=beam.pvalue.AsSingleton(split_of),
        segment_frames=segment_frames, shard_size_mb=options.shard_size_mb)
    shard_infos = (
        used
        | 'SongShards' >> beam.FlatMap(_song_shards, cache_paths=cache_paths,
                                       split_of=beam.pvalue.AsSingleton(split_of),
                                       num_shards=beam.pvalue.AsSingleton(num_shards))
        | 'GroupShards' >> beam.GroupByKey()
        | 'WriteShards' >> beam.Map(_write_shard, work_dir=str(work_dir),
                                    num_shards=beam.pvalue.AsSingleton(num_shards),
                                    cache_paths=cache_paths, segment_frames=segment_frames)
        | 'ShardInfos' >> beam.combiners.ToList())
    stem_stats = (
        used
        | 'TrainSums' >> beam.FlatMap(_stem_sums, cache_paths=cache_paths,
                                      split_of=beam.pvalue.AsSingleton(split_of))
        | 'Statistics' >> beam.CombinePerKey(StatsCombineFn())
        | 'StatsList' >> beam.combiners.ToList())
    _ = shard_infos | 'Finish' >> beam.Map(
        _finish, outcomes=beam.pvalue.AsSingleton(all_outcomes),
        split_of=beam.pvalue.AsSingleton(split_of),
        stem_stats=beam.pvalue.AsSingleton(stem_stats),
        num_shards=beam.pvalue.AsSingleton(num_shards), output_dir=output_dir,
        segment_frames=segment_frames, input_dir=str(options.input_dir), started=started,
        runner=RUNNERS[runner],
        clean_wavs=report_lib.clean_wav_paths(tasks, output_dir))
  return atomic_files.read_json(os.path.join(output_dir, records.REPORT_FILENAME))


def _size(path: str) -> int:
  try:
    return os.path.getsize(path)
  except OSError:  # A broken link: processing reports it.
    return 0
