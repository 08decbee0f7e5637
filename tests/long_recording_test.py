"""A long recording prepares in bounded memory: its decoded audio is never held whole."""
import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
MINUTES = 15
SOURCE_RATE_HZ = 48_000


def write_long_stereo_wav(path, minutes: float) -> None:
  """Minutes of 48 kHz stereo 16-bit WAV (chords over noise), written a block at a time."""
  rng = np.random.default_rng(0)
  block_s = 10
  with soundfile.SoundFile(path, 'w', SOURCE_RATE_HZ, 2, subtype='PCM_16') as f:
    for block in range(int(minutes * 60 / block_s)):
      t = np.arange(block_s * SOURCE_RATE_HZ) / SOURCE_RATE_HZ + block * block_s
      chord = sum(np.sin(2 * np.pi * hz * (1 + 0.01 * block) * t) for hz in (220, 277, 330))
      left = 0.2 * chord + 0.05 * rng.standard_normal(len(t))
      f.write(np.stack([left, np.roll(left, 7)], 1).astype(np.float32))


# Runs in a process started from a small shell, so getrusage sees only its own
# peak (an exec'd child's ru_maxrss also counts the memory of the process it was
# forked from, and pytest's holds TensorFlow and JAX).
MEASURE = textwrap.dedent('''
    import json, resource, sys
    from data_prep import song
    warm_up, long_file, out = sys.argv[1:4]
    def task(path, name):
      return song.SongTask(input_path=path, source=name, clean_path=f'{out}/{name}.wav',
                           cache_path=f'{out}/work/{name}', options=song.SongOptions())
    warm_outcome = song.process_song(task(warm_up, 'warm_up'))  # Every lazy import, every cache.
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = song.process_song(task(long_file, 'long'))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Then the main process's part: the shards and statistics, read back from the archive.
    import tensorflow, tensorflow_datasets
    from data_prep import report, shards
    shards.write_dataset(f'{out}/warm_data', [warm_outcome], {'warm_up': f'{out}/work/warm_up'},
                         256, 0.0, 128.0)  # A short song: TensorFlow's own memory.
    with open('/proc/self/clear_refs', 'w') as clear_refs:
      clear_refs.write('5')  # Linux: the peak (VmHWM) starts again from the current size.
    before_shards_mb = report.peak_rss_mb()
    shards.write_dataset(f'{out}/data', [outcome], {'long': f'{out}/work/long'}, 256, 0.0, 128.0)
    print(json.dumps({'baseline_mb': baseline_kb / 1024, 'peak_mb': peak_kb / 1024,
                      'before_shards_mb': before_shards_mb,
                      'shards_peak_mb': report.peak_rss_mb(), 'outcome': outcome}))
''')


@pytest.mark.end_to_end
def test_a_long_recording_prepares_in_bounded_memory(corpus_dir, tmp_path):
  long_file = tmp_path / 'long_mix.wav'
  write_long_stereo_wav(long_file, MINUTES)
  warm_up = corpus_dir / 'songs' / 'song_00.wav'
  result = subprocess.run(
      # Not the shell's last command, so the shell forks it instead of exec'ing it.
      ['/bin/sh', '-c', '"$0" -c "$1" "$2" "$3" "$4"; status=$?; exit $status', sys.executable,
       MEASURE,
       str(warm_up), str(long_file), str(tmp_path / 'out')],
      capture_output=True, text=True, check=True, cwd=REPO_ROOT)
  figures = json.loads(result.stdout.strip().splitlines()[-1])
  outcome = figures['outcome']
  assert outcome['status'] == 'used', outcome
  assert abs(outcome['duration_s'] - MINUTES * 60) < 1e-3
  decoded_stereo_mb = MINUTES * 60 * SOURCE_RATE_HZ * 2 * 4 / 2**20  # float32, as decoders give.
  mono_mb = MINUTES * 60 * 22_050 * 4 / 2**20  # The one copy prepare keeps: 22 050 Hz mono.
  growth_mb = figures['peak_mb'] - figures['baseline_mb']
  # Reading the file whole (the decoded stereo alone is 330 MB) breaks this bound.
  assert growth_mb < min(1.5 * mono_mb + 120, 0.8 * decoded_stereo_mb), figures
  with np.load(tmp_path / 'out' / 'work' / 'long.npz') as arrays:
    assert arrays['mix/mel'].shape[0] == outcome['num_segments'] > 0
    assert np.isfinite(arrays['mix/mfcc'][-1]).all()
  # The main process writes the shards and the statistics a chunk of segments at a
  # time: holding the song's features (and their float64 sums) would add 3x their size.
  features_mb = (tmp_path / 'out' / 'work' / 'long.npz').stat().st_size / 2**20
  shards_growth_mb = figures['shards_peak_mb'] - figures['before_shards_mb']
  assert shards_growth_mb < 0.5 * features_mb, (features_mb, figures)
