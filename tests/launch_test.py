"""The launch scripts: shellcheck-clean, --help, and one line for each missing variable."""
import os
import pathlib
import shutil
import subprocess

import pytest

LAUNCH_DIR = pathlib.Path(__file__).resolve().parents[1] / 'launch'
SCRIPTS = sorted(LAUNCH_DIR.glob('*.sh'))


def run(script, *args, env=None):
  return subprocess.run(['bash', str(LAUNCH_DIR / script), *args], capture_output=True,
                        text=True, timeout=60, env=env, check=False)


@pytest.mark.skipif(shutil.which('shellcheck') is None,
                    reason='shellcheck is not installed (make test installs it)')
def test_shellcheck_passes():
  result = subprocess.run(['shellcheck', '--severity=style', *map(str, SCRIPTS)],
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout


@pytest.mark.parametrize('script, mode', [('tpu_vm.sh', 'supervise'), ('gpu.sh', 'srun')])
def test_help_describes_the_commands(script, mode):
  result = run(script, '--help')
  assert result.returncode == 0
  assert 'WORKDIR' in result.stdout and mode in result.stdout
  assert run(script).returncode == 2  # No command: the usage, and a failure.


def test_each_missing_variable_is_one_line():
  env = {name: value for name, value in os.environ.items()
         if name not in ('TPU_NAME', 'ZONE', 'SLURM_JOB_ID', 'SLURM_NNODES',
                         'COORDINATOR_ADDRESS', 'NUM_PROCESSES', 'PROCESS_ID')}
  result = run('tpu_vm.sh', 'run', 'configs/vqvae.py', 'runs/v', env=env)
  assert result.returncode == 2
  assert result.stderr.splitlines() == [
      "tpu_vm.sh: set TPU_NAME (the TPU VM's name, e.g. TPU_NAME=melody)",
      'tpu_vm.sh: set ZONE (its zone, e.g. ZONE=us-central2-b)']
  result = run('gpu.sh', 'hosts', 'configs/vqvae.py', 'runs/v',
               env={**env, 'NUM_PROCESSES': '2'})
  assert result.returncode == 2
  assert [line.split(' (')[0] for line in result.stderr.splitlines()] == [
      'gpu.sh: set COORDINATOR_ADDRESS', 'gpu.sh: set PROCESS_ID']
  result = run('gpu.sh', 'slurm', 'configs/vqvae.py', 'runs/v', env=env)
  assert result.returncode == 2 and 'SLURM_JOB_ID' in result.stderr
