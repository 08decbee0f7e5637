r"""Preparing a folder of songs as a data set: how each song is cleaned, separated and cut.

  python -m data_prep.prepare --input_dir=raw/ --output_dir=data/
  python -m data_prep.prepare --config=configs/prepare.py --input_dir=raw/ --output_dir=data/ \
      --config.cleaning.target_lufs=-16 --config.dataset.segment_frames=128
  python -m data_prep.prepare --input_dir=raw/ --output_dir=data/ \
      --config.separation.backend=dsp --config.separation.stems=mix,vocals,instrumental
  python -m data_prep.prepare --input_dir=raw/ --output_dir=data/ --config.run.runner=direct \
      --config.run.beam_options="--direct_num_workers=2"

Every older flag still works and sets one field here (--segment_frames is
dataset.segment_frames, --separation is separation.backend, --dsp_hpss is
separation.dsp.hpss: data_prep/prepare_config.py's FLAG_FIELDS); a flag given
on the command line wins over this file. prepare writes the resolved settings
to OUT/prepare_config.json; a later run into the same OUT must keep every field
of `dataset`, `cleaning` and `separation` (they change what is written), while
the folders and the `run` section may differ.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.input_dir = ''  # Audio files, read recursively (--input_dir).
  config.output_dir = ''  # The data set: clean/, tfds/, stats.json, report.json (--output_dir).

  config.dataset = ml_collections.ConfigDict()
  config.dataset.segment_frames = 256  # STFT frames per record; 256 hops of 256 = 2.97 s.
  config.dataset.validation_fraction = 0.1  # Share of songs held out, by a hash of their path.
  config.dataset.shard_size_mb = 128.0  # Target size of one TFRecord shard.

  # Steps in order; each is off when its switch is False (--no<flag> on the command line).
  config.cleaning = ml_collections.ConfigDict()
  # DC offset and sub-sonic rumble go first: no mel band holds them, yet they
  # leak into the lowest band and eat headroom under the true-peak ceiling. 0: off.
  config.cleaning.highpass_hz = 20.0
  config.cleaning.remove_silence = True  # Leading, trailing and long inner silences.
  config.cleaning.silence_threshold_db = 60.0  # Frames this far below the loudest are silent.
  config.cleaning.min_silence_s = 1.0  # Shorter pauses are music, not silence.
  config.cleaning.normalize_loudness = True  # Integrated loudness, BS.1770.
  config.cleaning.target_lufs = -18.0
  config.cleaning.true_peak_ceiling_dbtp = -1.0  # The gain is lowered to stay below it.
  config.cleaning.reduce_noise = False  # Stationary spectral gating (noisereduce).
  config.cleaning.noise_reduction = 0.8  # Share of the estimated noise removed, 0-1.

  config.separation = ml_collections.ConfigDict()
  # none | dsp (built in) | stems (pre-separated files) | uvr (UVR5 models, audio-separator).
  config.separation.backend = 'none'
  # Stems in the data set: mix, vocals, instrumental (on the command line a
  # comma list, as --stems takes: --config.separation.stems=mix,vocals).
  config.separation.stems = ('mix',)
  config.separation.stems_dir = ''  # 'stems': their folder ('' = the input folder).
  # 'uvr': model folder ('' = ~/.cache/melodygan_jax/uvr_models); a model not
  # there is downloaded into it on first use, which needs network.
  config.separation.uvr_model_dir = ''
  config.separation.uvr_model = 'UVR-MDX-NET-Inst_HQ_3.onnx'
  # The built-in separator's soft masks ('dsp').
  config.separation.dsp = ml_collections.ConfigDict()
  config.separation.dsp.stereo = True  # A stereo file is separated from both channels.
  config.separation.dsp.centre_power = 2.0  # Stereo: higher keeps only the most centred sound.
  # Outside this band is instrumental: below 80 Hz is bass and kick; the top stays
  # open, as a voice's sibilance and air reach past 10 kHz.
  config.separation.dsp.vocal_low_hz = 80.0
  config.separation.dsp.vocal_high_hz = 11025.0
  config.separation.dsp.hpss = True  # Percussion goes straight to the instrumental.
  config.separation.dsp.hpss_kernel = 17  # HPSS median filter length (frames and bins).
  config.separation.dsp.repet = True  # What repeats (REPET-SIM) is accompaniment.
  config.separation.dsp.similarity_width_s = 2.0  # Repeated frames are this far apart at least.
  config.separation.dsp.vocal_margin = 1.0  # Soft-mask margin: higher, fewer leaks.
  config.separation.dsp.window_s = 30.0  # Repetition is searched within windows this long.

  # How the work runs: never changes what is written.
  config.run = ml_collections.ConfigDict()
  config.run.num_workers = 0  # Worker processes; 0: one per core.
  config.run.runner = ''  # '' = the local process pool; direct|dataflow|flink|spark: Apache Beam.
  config.run.beam_options = ''  # With a runner: further Beam flags, one string.
  config.run.show_progress = True  # A progress bar on the terminal.
  # Locked: an override that names a field that does not exist fails at once.
  return config.lock()
