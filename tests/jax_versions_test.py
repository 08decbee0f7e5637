"""Known-bad JAX/flax/plugin pairs: the check on version strings, doctor's and train's lines."""
import pytest

from melodygan_jax import doctor
from melodygan_jax import errors
from melodygan_jax import jax_versions
from melodygan_jax.training import train


def test_release_reads_the_numbers_of_a_version():
  assert jax_versions.release('0.12.10') == (0, 12, 10)
  assert jax_versions.release('0.12.0.1') == (0, 12, 0, 1)
  assert jax_versions.release('0.5.0rc1') == (0, 5, 0)
  assert jax_versions.release('0.4.1+cuda12') == (0, 4, 1)
  assert jax_versions.release('0.12.10') > jax_versions.release('0.12.9')


@pytest.mark.parametrize('flax, jax, bad', [
    ('0.12.8', '0.11.2', True),     # Seen failing: flax's first import.
    ('0.12.9', '0.11.0', True),
    ('0.12.10', '0.11.2', False),   # Seen working.
    ('0.12.8', '0.10.2', False),    # This project's tested pair.
    ('0.12.8', None, False),        # Not installed: nothing to pair.
])
def test_flax_older_than_0_12_10_with_jax_0_11_is_named(flax, jax, bad):
  lines = jax_versions.incompatibilities({'flax': flax, 'jax': jax, 'jaxlib': jax})
  assert bool(lines) == bad
  if bad:
    (line,) = lines
    assert line.startswith(f'flax {flax} does not work with jax {jax}')
    assert "'flax>=0.12.10,<0.13'" in line and "'.[cuda12]'" in line
    assert '\n' not in line


def test_a_plugin_of_another_version_than_jaxlib_is_named():
  versions = {'jax': '0.10.2', 'jaxlib': '0.10.2', 'jax-cuda12-plugin': '0.11.2',
              'jax-cuda12-pjrt': '0.10.2'}
  (line,) = jax_versions.incompatibilities(versions)
  assert line.startswith('jax-cuda12-plugin 0.11.2 does not match jaxlib 0.10.2')
  versions['jax-cuda12-plugin'] = '0.10.2'
  versions['jax-cuda12-pjrt'] = '0.10.2.1'  # A post-release of the same JAX.
  assert not jax_versions.incompatibilities(versions)


def test_check_installed_raises_one_user_error_line():
  with pytest.raises(errors.UserError, match=r'^flax 0\.12\.8 does not work with jax 0\.11\.2'):
    jax_versions.check_installed({'jax': '0.11.2', 'jaxlib': '0.11.2', 'flax': '0.12.8'})
  jax_versions.check_installed()  # This environment's own releases work together.


def test_doctor_names_versions_backend_and_a_bad_pair(tmp_path):
  facts, problems = doctor.find_problems(str(tmp_path))
  text = '\n'.join(facts)
  for name in ('jax', 'jaxlib', 'flax'):
    assert f'\n{name} ' in f'\n{text}'
  assert 'JAX backend            cpu' in text
  assert 'accelerator plugin     none' in text
  assert 'no known-bad pair' in text
  assert not [p for p in problems if 'does not' in p]

  versions = doctor.package_versions() | {'jax': '0.11.2', 'jaxlib': '0.11.2',
                                           'jax-cuda12-plugin': '0.11.2'}
  facts, problems = doctor.find_problems(str(tmp_path), versions)
  assert 'jax-cuda12-plugin      0.11.2' in facts
  assert [p for p in problems if p.startswith('flax 0.12.8 does not work with jax 0.11.2')]


def test_train_refuses_a_bad_pair_before_any_compute(monkeypatch, capsys):
  """train's main exits with the one line, before it reads its config or imports flax."""
  real = jax_versions.installed_versions
  monkeypatch.setattr(jax_versions, 'installed_versions',
                      lambda: real() | {'jax': '0.11.2', 'jaxlib': '0.11.2', 'flax': '0.12.8'})
  with pytest.raises(SystemExit) as exit_info:
    train.main(['train'])
  assert str(exit_info.value).startswith('train: flax 0.12.8 does not work with jax 0.11.2')
