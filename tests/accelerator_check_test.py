"""benchmarks/accelerator_check.py --quick: the table's figures, from two fresh starts."""
import json
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.end_to_end
def test_quick_check_reports_step_costs_and_a_cached_second_start():
  # One tiny config keeps this under a minute on a 2-core CPU; --quick alone runs all three.
  result = subprocess.run(
      [sys.executable, str(REPO_ROOT / 'benchmarks' / 'accelerator_check.py'), '--quick',
       '--configs=vqvae_tiny', '--steps=1'],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True)
  lines = result.stdout.strip().splitlines()
  assert lines[1].split()[:3] == ['config', 'compile', 's']
  figures = json.loads(lines[-1])
  assert figures['platform'] == 'cpu'
  assert figures['vqvae_tiny_second_start_cache_hits'] >= 1
  assert (figures['vqvae_tiny_compile_s_second_start']
          < figures['vqvae_tiny_compile_s_first_start'])
  assert figures['vqvae_tiny_model_gflop_per_step'] > 0.1
  assert 0 < figures['vqvae_tiny_mfu'] <= 1  # Of the measured peak: never above it.
  assert figures['vqvae_tiny_examples_per_s'] > 0 and figures['vqvae_tiny_peak_memory_mib'] > 0
  # The VQ-VAE's step part runs without TensorFlow, librosa or soundfile.
  assert figures['vqvae_tiny_step_imports'] == ['ml_collections']
