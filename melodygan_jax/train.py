"""`python -m melodygan_jax.train`: see melodygan_jax/training/train.py."""
from melodygan_jax.training.train import run

if __name__ == '__main__':
  run()
