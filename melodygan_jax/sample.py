"""`python -m melodygan_jax.sample`: see melodygan_jax/generation/sample.py."""
from melodygan_jax.generation.sample import run

if __name__ == '__main__':
  run()
