"""launch/demo.sh with a stand-in `python`: its exit status follows the stages'."""
import os
import pathlib
import subprocess

import pytest

DEMO_SCRIPT = pathlib.Path(__file__).resolve().parents[1] / 'launch' / 'demo.sh'

# Prints nothing a stage filter keeps (or only what it drops), then exits with
# the status named for its module in $FAKE_STATUS (`module=status,...`).
FAKE_PYTHON = r'''#!/usr/bin/env bash
module="$2"
echo '{"metric": 1.0}'
echo "I0000 noise from $module"
status=0
IFS=',' read -ra pairs <<< "${FAKE_STATUS:-}"
for pair in "${pairs[@]}"; do
  if [ "${pair%%=*}" = "$module" ]; then status="${pair#*=}"; fi
done
if [ "$status" != 0 ]; then echo "Error: $module failed" >&2; fi
exit "$status"
'''


@pytest.fixture(scope='module')
def fake_bin(tmp_path_factory):
  folder = tmp_path_factory.mktemp('bin')
  python = folder / 'python'
  python.write_text(FAKE_PYTHON)
  python.chmod(0o755)
  return folder


def run_demo(fake_bin, tmp_path, fake_status=''):
  env = {**os.environ, 'PATH': f'{fake_bin}:{os.environ["PATH"]}', 'FAKE_STATUS': fake_status}
  return subprocess.run(['bash', str(DEMO_SCRIPT), str(tmp_path / 'demo')], env=env,
                        capture_output=True, text=True, timeout=60, check=False)


def test_quiet_successful_stages_do_not_fail_the_demo(fake_bin, tmp_path):
  result = run_demo(fake_bin, tmp_path)
  assert result.returncode == 0, result.stdout + result.stderr
  assert '== 6/6 sample' in result.stdout


@pytest.mark.parametrize('module, next_stage', [
    ('data_prep.prepare', '== 3/6'), ('melodygan_jax.train', '== 4/6'),
    ('melodygan_jax.evaluate', '== 6/6'), ('melodygan_jax.sample', None)])
def test_a_failing_stage_fails_the_demo(fake_bin, tmp_path, module, next_stage):
  result = run_demo(fake_bin, tmp_path, f'{module}=3')
  assert result.returncode == 3, result.stdout + result.stderr  # The stage's own status.
  assert f'Error: {module} failed' in result.stdout  # Its message passes the filters.
  assert next_stage is None or next_stage not in result.stdout  # Nothing runs after it.
