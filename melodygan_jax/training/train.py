r"""Train a model: the one entry point for every trainer.

  python -m melodygan_jax.train --config=configs/vqvae.py --workdir=runs/vqvae \
      --config.data.dataset_dir=data/ [--config.train.num_steps=N]
  python -m melodygan_jax.train --config=configs/gan.py --workdir=runs/gan \
      --config.vqvae_workdir=runs/vqvae

Any config field can be overridden with --config.SECTION.FIELD=VALUE. Running
again with the same --workdir resumes from its latest checkpoint. On a
multi-host TPU pod, pass --jax_distributed on every host.
"""
import importlib
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

TRAINERS = {'vqvae': 'melodygan_jax.training.vqvae_trainer',
            'gan': 'melodygan_jax.training.gan_trainer'}


def load_trainer(config):
  """The trainer module named by config.trainer."""
  if config.get('trainer') not in TRAINERS:
    raise ValueError(f'config.trainer={config.get("trainer")!r}: choose one of '
                     f'{", ".join(TRAINERS)}')
  return importlib.import_module(TRAINERS[config.trainer])


def main(argv):
  if len(argv) > 1:
    sys.exit(f'train: unexpected arguments: {" ".join(argv[1:])}')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import jax  # pylint: disable=g-import-not-at-top
  if flags.FLAGS.jax_distributed:
    jax.distributed.initialize()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')  # tf.data only; the accelerators are JAX's.
  config = flags.FLAGS.config
  workdir = flags.FLAGS.workdir
  from melodygan_jax.training import run_files  # pylint: disable=g-import-not-at-top
  try:
    trainer_module = load_trainer(config)
    run_files.absolute_paths(config)
    checked = trainer_module.check_config(config)
    run_files.absolute_paths(config)
    os.makedirs(workdir, exist_ok=True)
    run_files.write_or_check_config(config, workdir)
  except ValueError as e:  # ConfigError, DatasetError: one line, before any compile.
    sys.exit(f'train: {e}')
  logging.info('%d process(es), %d device(s): %s', jax.process_count(), jax.device_count(),
               jax.devices()[0].device_kind)
  from melodygan_jax.data import latent_cache  # pylint: disable=g-import-not-at-top
  from melodygan_jax.training import loop  # pylint: disable=g-import-not-at-top
  try:
    trainer_module.train_and_evaluate(config, workdir, checked)
  except (loop.NonFiniteLossError, latent_cache.LatentCacheError) as e:
    sys.exit(f'train: {e}')


def run():
  config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'Checkpoints, summaries and config.json go here.')
  flags.DEFINE_bool('jax_distributed', False,
                    'Call jax.distributed.initialize() (multi-host TPU/GPU).')
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)


if __name__ == '__main__':
  run()
