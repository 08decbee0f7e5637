"""`python -m melodygan_jax.evaluate`: see melodygan_jax/evaluation/evaluate.py."""
from melodygan_jax.evaluation.evaluate import run

if __name__ == '__main__':
  run()
