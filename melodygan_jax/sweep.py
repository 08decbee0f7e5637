"""`python -m melodygan_jax.sweep`: see melodygan_jax/training/sweeps/sweep.py."""
from melodygan_jax.training.sweeps.sweep import run

if __name__ == '__main__':
  run()
