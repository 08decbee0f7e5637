r"""Train a model: the one entry point for every trainer.

  python -m melodygan_jax.train --config=configs/vqvae.py --workdir=runs/vqvae \
      --config.data.dataset_dir=data/ [--config.train.num_steps=N]
  python -m melodygan_jax.train --config=configs/gan.py --workdir=runs/gan \
      --config.vqvae_workdir=runs/vqvae
  python -m melodygan_jax.train --config=configs/vocoder.py --workdir=runs/vocoder \
      --config.data.dataset_dir=data/

Any config field can be overridden with --config.SECTION.FIELD=VALUE. Running
again with the same --workdir resumes from its latest checkpoint. Compiled
steps are cached on disk (~/.cache/melodygan_jax/jax_cache; MELODYGAN_JAX_CACHE
names another folder, or `off`), so a restart does not compile them again.

Several processes (hosts): on a TPU VM pod or under SLURM pass --jax_distributed
on every host (JAX finds the others); elsewhere start one process per host
with

  --coordinator_address=HOST:PORT --num_processes=N --process_id=I

(process 0 runs the coordinator at HOST:PORT). The workdir must be storage
every process sees at the same path.
"""
import importlib
import os

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from melodygan_jax import atomic_files
from melodygan_jax import compilation_cache
from melodygan_jax import errors
from melodygan_jax import jax_versions
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import parallel

TRAINERS = {'vqvae': 'melodygan_jax.training.vqvae_trainer',
            'gan': 'melodygan_jax.training.gan_trainer',
            'vocoder': 'melodygan_jax.training.vocoder_trainer'}


def load_trainer(config):
  """The trainer module named by config.trainer."""
  if config.get('trainer') not in TRAINERS:
    raise errors.ConfigError(f'config.trainer={config.get("trainer")!r}: choose one of '
                             f'{", ".join(TRAINERS)}')
  return importlib.import_module(TRAINERS[config.trainer])


def distributed_arguments(flag_values) -> dict | None:
  """`jax.distributed.initialize` arguments from the flags; None: one process.

  Raises:
    errors.UserError: an incomplete or inconsistent set of flags (one line).
  """
  explicit = {'coordinator_address': flag_values.coordinator_address,
              'num_processes': flag_values.num_processes,
              'process_id': flag_values.process_id}
  given = [name for name, value in explicit.items() if value is not None]
  if not given:
    return {} if flag_values.jax_distributed else None
  if len(given) < len(explicit):
    missing = ', '.join(f'--{name}' for name in explicit if name not in given)
    raise errors.UserError(f'--{given[0]} needs {missing} too (or none of them, with '
                           '--jax_distributed, to detect a TPU VM or SLURM cluster)')
  if ':' not in explicit['coordinator_address']:
    raise errors.UserError(f'--coordinator_address={explicit["coordinator_address"]!r}: '
                           'expected HOST:PORT')
  if explicit['num_processes'] < 1 or not 0 <= explicit['process_id'] < explicit['num_processes']:
    raise errors.UserError(f'--process_id={explicit["process_id"]}: must be in '
                           f'[0, --num_processes={explicit["num_processes"]})')
  return explicit


def main(argv):
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  with errors.exit_on_user_error('train'):
    if len(argv) > 1:
      raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    jax_versions.check_installed()  # Before flax is imported: a bad pair fails there.
    compilation_cache.enable()  # A restart or resume reads its compiled steps from disk.
    distributed = distributed_arguments(flags.FLAGS)
    if distributed is not None:
      parallel.initialize_distributed(**distributed)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.set_visible_devices([], 'GPU')  # tf.data only; the accelerators are JAX's.
    config = flags.FLAGS.config
    workdir = flags.FLAGS.workdir
    # Every check that needs no compile runs before the first one.
    trainer_module = load_trainer(config)
    workdir_lib.absolute_paths(config)
    checked = trainer_module.check_config(config)
    workdir_lib.absolute_paths(config)
    atomic_files.as_path(workdir).mkdir(parents=True, exist_ok=True)
    workdir_lib.write_or_check_config(config, workdir)
    logging.info('%d process(es), %d device(s): %s', jax.process_count(), jax.device_count(),
                 jax.devices()[0].device_kind)
    trainer_module.train_and_evaluate(config, workdir, checked)


def run():
  config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'Checkpoints, summaries and config.json go here.')
  flags.DEFINE_bool('jax_distributed', False,
                    'Call jax.distributed.initialize(), which detects TPU VM pods and SLURM.')
  flags.DEFINE_string('coordinator_address', None,
                      'HOST:PORT of process 0, for several processes without a scheduler.')
  flags.DEFINE_integer('num_processes', None, 'Processes in the run (with --coordinator_address).')
  flags.DEFINE_integer('process_id', None, "This process's index, 0 to --num_processes - 1.")
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)


if __name__ == '__main__':
  run()
