"""`python -m melodygan_jax.reconstruct`: see melodygan_jax/generation/reconstruct.py."""
from melodygan_jax.generation.reconstruct import run

if __name__ == '__main__':
  run()
