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
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from melodygan_jax import atomic_files

TRAINERS = {'vqvae': 'melodygan_jax.trainers.vqvae', 'gan': 'melodygan_jax.trainers.gan'}


def write_config(config, workdir: str) -> None:
  """WORKDIR/config.json: the resolved config of this run (process 0 writes)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() == 0:
    atomic_files.write_json(os.path.join(workdir, 'config.json'), json.loads(config.to_json()))


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
  try:
    trainer_module = load_trainer(config)
    checked = trainer_module.check_config(config)
  except ValueError as e:  # ConfigError, DatasetError: one line, before any compile.
    sys.exit(f'train: {e}')
  os.makedirs(workdir, exist_ok=True)
  write_config(config, workdir)
  logging.info('%d process(es), %d device(s): %s', jax.process_count(), jax.device_count(),
               jax.devices()[0].device_kind)
  try:
    trainer_module.train_and_evaluate(config, workdir, checked)
  except RuntimeError as e:
    if type(e).__name__ == 'NonFiniteLossError':
      sys.exit(f'train: {e}')
    raise


def run():
  config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'Checkpoints, summaries and config.json go here.')
  flags.DEFINE_bool('jax_distributed', False,
                    'Call jax.distributed.initialize() (multi-host TPU/GPU).')
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)


if __name__ == '__main__':
  run()
