r"""How long a config's train step takes on this machine, measured on synthetic batches.

  python -m melodygan_jax.training.calibration --vqvae_config=configs/vqvae.py \
      --gan_config=configs/gan_tiny.py [--vocoder_config=configs/vocoder.py] [--steps=3]

Prints one JSON line: seconds per step of each config given (the VQ-VAE's and
the vocoder's warm-up and adversarial phases apart), the backend, the compile
seconds, and `evaluate_probe_s`, the seconds a 10 s clip of evaluate's heaviest
work takes (its log-mel, Griffin-Lim inversion and music profile).
A step's cost does not depend on what the data are, so random log-mel crops,
audio crops and codes of the configs' shapes stand in for the data set; the VQ-VAE
the GAN trains on is assumed to be configs/vqvae.py's shape (levels, codebook
size and dimension from --vqvae_config). `create` plans its budget from these
figures before any other work.
"""
import functools
import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

from melodygan_jax.audio import contract
from melodygan_jax.audio import music_structure
from melodygan_jax.audio import synthesis
from melodygan_jax.runs import latent_cache
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import config_checks
from melodygan_jax.training import gan_trainer
from melodygan_jax.training import step_budget
from melodygan_jax.training import vocoder_trainer
from melodygan_jax.training import vqvae_trainer


def _time(step, state, batches, steps: int) -> tuple[float, float]:
  """(compile seconds, seconds per step after it) of `step(state, batch)`."""
  start = time.perf_counter()
  state, metrics = step(state, batches[0])
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for index in range(steps):
    state, metrics = step(state, batches[(index + 1) % len(batches)])
  jax.block_until_ready(metrics)
  return compile_s, (time.perf_counter() - start) / steps


def _time_phases(step_of_phase, state, batches, steps: int, phases=(False, True)) -> dict:
  """{'compile_s', 'warmup_s', 'adversarial_s'} of a two-phase trainer (loop.PhasedStep):
  `step_of_phase(adversarial)` is its compiled `step(state, batch)`. A phase not in
  `phases` costs what the warm-up does."""
  figures = {'compile_s': 0.0}
  for adversarial in phases:
    compile_s, step_s = _time(step_of_phase(adversarial), state, batches, steps)
    figures['compile_s'] += compile_s
    figures['adversarial_s' if adversarial else 'warmup_s'] = step_s
  figures.setdefault('adversarial_s', figures['warmup_s'])
  return figures


def vqvae_seconds_per_step(config, steps: int = 3) -> dict:
  """{'warmup_s', 'adversarial_s', 'compile_s', 'adversarial_start_step', 'warmup_steps'}:
  the codec's two phases (loop.PhasedStep) and where they start."""
  config_checks.check_train_section(config.train)
  (graphdef, disc_graphdef), state, optimizers, schedule = vqvae_trainer.init_state(config)
  rng = np.random.default_rng(0)
  shape = (config.train.batch_size, config.data.crop_frames, contract.NUM_MELS)
  batches = [{'mel': jnp.asarray(rng.standard_normal(shape, np.float32)),
              'stem': jnp.zeros(shape[0], jnp.int32)} for _ in range(2)]

  def step_of_phase(adversarial):
    step = jax.jit(functools.partial(
        vqvae_trainer.train_step, graphdef, disc_graphdef, *optimizers, schedule, config,
        adversarial, vqvae_trainer.unit_log_mel_stats()))
    return lambda state, batch: step(state, batch, jax.random.key(0))

  return {**_time_phases(step_of_phase, state, batches, steps),
          'adversarial_start_step': int(config.loss.adversarial_start_step),
          'warmup_steps': int(config.train.warmup_steps)}


def vocoder_seconds_per_step(config, steps: int = 3) -> dict:
  """{'warmup_s', 'adversarial_s', 'compile_s', 'adversarial_start_step', 'warmup_steps'}
  of a vocoder config's two phases, on random audio crops (true mels: no codec round
  trip)."""
  config_checks.check_train_section(config.train)
  (graphdef, disc_graphdef), state, optimizers, schedule = vocoder_trainer.init_state(config)
  rng = np.random.default_rng(0)
  shape = (config.train.batch_size, config.data.crop_samples)
  batches = [{'audio': jnp.asarray(0.1 * rng.standard_normal(shape, np.float32))}
             for _ in range(2)]
  adversarial_start = int(config.loss.adversarial_start_step)

  def step_of_phase(adversarial):
    step = jax.jit(functools.partial(
        vocoder_trainer.train_step, graphdef, disc_graphdef, *optimizers, schedule, config,
        vocoder_trainer.true_log_mel, adversarial))
    return lambda state, batch: step(state, batch, None)

  # A run of fewer steps than its adversarial start never pays for the discriminators'
  # step: the warm-up cost stands in for it (and their compile is not spent here).
  phases = (False, True) if adversarial_start < config.train.num_steps else (False,)
  return {**_time_phases(step_of_phase, state, batches, steps, phases),
          'adversarial_start_step': adversarial_start,
          'warmup_steps': int(config.train.warmup_steps)}


def gan_seconds_per_step(config, vqvae_config, steps: int = 3) -> dict:
  """{'step_s', 'compile_s'} of the GAN's step on random codes of the VQ-VAE's shape."""
  config_checks.check_train_section(config.train)
  config_checks.resolve_dtype(config.model, 'config.model.dtype')
  levels = vqvae_config.model.num_levels
  size, dim = vqvae_config.model.codebook_size, vqvae_config.model.codebook_dim
  rng = np.random.default_rng(0)
  segment = max(config.data.crop_steps, 256)
  runs = lambda count: latent_cache.runs_of_sequences(
      rng.integers(0, size, (count, segment, levels)).astype(np.int32))
  data = latent_cache.LatentData(
      train=runs(16), validation=runs(2),
      codebooks=rng.standard_normal((levels, size, dim)).astype(np.float32))
  trainer = gan_trainer.GANTrainer(config, data)
  batches = trainer.train_batches(0)
  compile_s, step_s = _time(trainer.jit_train_step, trainer.create_state(),
                            [next(batches) for _ in range(2)], steps)
  return {'step_s': step_s, 'compile_s': compile_s}


def evaluate_probe_seconds(clip_seconds: float = 10.0, num_clips: int = 4) -> float:
  """Seconds per clip of evaluate's heaviest work on this machine: a clip's log-mel, its
  Griffin-Lim inversion and the music profile of what comes out, timed on a second batch
  (the first compiles). `create` scales evaluate's planned minutes by it."""
  samples = int(round(clip_seconds * contract.SAMPLE_RATE_HZ))
  rng = np.random.default_rng(0)
  time_s = np.arange(samples) / contract.SAMPLE_RATE_HZ
  # A held tone with noise: the same work as music (the costs do not depend on the sound).
  clips = (0.3 * np.sin(2 * np.pi * 220.0 * time_s)
           + 0.05 * rng.standard_normal((num_clips, samples))).astype(np.float32)

  def analyze():
    log_mel = np.stack([contract.log_mel(clip) for clip in clips]).astype(np.float32)
    music_structure.profiles(synthesis.log_mel_to_audio(log_mel))
  analyze()
  start = time.perf_counter()
  analyze()
  return (time.perf_counter() - start) / num_clips


def steps_within(config, seconds: float) -> int:
  """Train steps of `config` (a codec or GAN config) that take `seconds` on this machine.

  Measured on synthetic batches of its shapes, as `create` plans; a GAN's codes
  are those of the VQ-VAE in `config.vqvae_workdir`.

  Raises:
    errors.ConfigError: a trainer this cannot measure, one line.
  """
  if config.trainer == 'vqvae':
    return max(1, step_budget.phased_steps_within(vqvae_seconds_per_step(config), seconds,
                                                 int(config.loss.adversarial_start_step)))
  config_checks.require(config.trainer == 'gan', 'config.trainer', config.trainer,
                        'a wall-clock budget is measured for vqvae and gan configs only')
  vqvae_config = workdir_lib.read_config(config.vqvae_workdir, 'vqvae')
  return max(1, int(seconds / gan_seconds_per_step(config, vqvae_config)['step_s']))


def main(argv):
  del argv
  vqvae_config, gan_config = flags.FLAGS.vqvae_config, flags.FLAGS.gan_config
  figures = {'backend': jax.default_backend(), 'device_count': jax.device_count()}
  if vqvae_config is not None:
    figures['vqvae'] = vqvae_seconds_per_step(vqvae_config, flags.FLAGS.steps)
  if gan_config is not None:
    if vqvae_config is None:
      raise app.UsageError('--gan_config needs --vqvae_config (the codes\' shape)')
    figures['gan'] = gan_seconds_per_step(gan_config, vqvae_config, flags.FLAGS.steps)
  if flags.FLAGS.vocoder_config is not None:
    figures['vocoder'] = vocoder_seconds_per_step(flags.FLAGS.vocoder_config, flags.FLAGS.steps)
  figures['evaluate_probe_s'] = evaluate_probe_seconds()
  print(json.dumps(figures))


def run():
  config_flags.DEFINE_config_file('vqvae_config', None, 'A configs/vqvae*.py file.')
  config_flags.DEFINE_config_file('gan_config', None, 'A configs/gan*.py file.')
  config_flags.DEFINE_config_file('vocoder_config', None, 'A configs/vocoder*.py file.')
  flags.DEFINE_integer('steps', 3, 'Timed steps after the compiling one.')
  app.run(main)


if __name__ == '__main__':
  run()
