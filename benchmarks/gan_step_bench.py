"""Cost of one GAN train step: the long-context default against the short-context one.

  python benchmarks/gan_step_bench.py [--steps=3] [--batch_size=64]

Long context: configs/gan.py as it is (224-code crops, 10.4 s; generator
receptive field 285 codes; discriminator at 4 scales). Short context: the same
config with the settings it replaced (32-code crops, 1.5 s; dilations
(1, 2, 4, 8) twice, receptive field 61; one discriminator scale). Both train
on random codes of the default VQ-VAE's shape ([8 levels, 1,024 codes, 64
dims]): the cost does not depend on what the codes are. Steps are timed after
a compiling warm-up, in the compute dtype this machine resolves to ('auto').
"""
import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # pylint: disable=wrong-import-position

from configs import gan as gan_config  # pylint: disable=wrong-import-position
from configs import vqvae as vqvae_config  # pylint: disable=wrong-import-position
from melodygan_jax.training import calibration  # pylint: disable=wrong-import-position


def short_context_config():
  config = gan_config.get_config()
  config.data.crop_steps = 32
  config.model.generator_dilations = (1, 2, 4, 8, 1, 2, 4, 8)
  config.model.discriminator_scales = 1
  return config


def seconds_per_step(config, batch_size: int, steps: int) -> float:
  """After a compiling step, on random codes of the default VQ-VAE's shape."""
  config.train.batch_size = batch_size
  config.train.num_eval_samples = 8
  return calibration.gan_seconds_per_step(config, vqvae_config.get_config(), steps)['step_s']


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--batch_size', type=int, default=64)
  args = parser.parse_args()
  long_config, short_config = gan_config.get_config(), short_context_config()
  long_s = seconds_per_step(long_config, args.batch_size, args.steps)
  short_s = seconds_per_step(short_config, args.batch_size, args.steps)
  seconds_per_code = 4 * 256 / 22050
  device = jax.devices()[0]
  print(f'GAN train step, batch {args.batch_size}, {long_config.model.dtype}, on '
        f'{jax.device_count()} x {device.platform} ({device.device_kind}):')
  print(f'{"":14s} {"crop":>16s} {"s/step":>8s} {"audio s/s":>10s}')
  for name, config, cost in (('long context', long_config, long_s),
                             ('short context', short_config, short_s)):
    crop = config.data.crop_steps
    print(f'{name:14s} {crop:4d} codes {crop * seconds_per_code:5.1f} s {cost:8.2f} '
          f'{args.batch_size * crop * seconds_per_code / cost:10.1f}')
  print(json.dumps({'long_context_s_per_step': long_s, 'short_context_s_per_step': short_s,
                    'long_context_crop_steps': long_config.data.crop_steps,
                    'batch_size': args.batch_size,
                    'speedup_vs_short_context': short_s / long_s}))


if __name__ == '__main__':
  main()
