"""The persistent compilation cache: where it goes, how it is turned off, a second start hits it."""
import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest

from melodygan_jax import compilation_cache

# A fresh process compiles one small step, with the cache where MELODYGAN_JAX_CACHE says.
START = textwrap.dedent('''
    import json, time
    import jax, jax.numpy as jnp
    from melodygan_jax import compilation_cache
    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kwargs: hits.append(event) if event.endswith('cache_hits') else None)
    cache_dir = compilation_cache.enable(min_compile_time_s=0)

    def step(w, x):
      for _ in range(8):
        x = jnp.tanh(jax.lax.conv_general_dilated(x, w, (1,), 'SAME'))
      return x.sum()

    start = time.perf_counter()
    jax.jit(jax.grad(step)).lower(jnp.ones((8, 8, 5)), jnp.ones((4, 8, 64))).compile()
    print(json.dumps({'cache_dir': cache_dir, 'compile_s': time.perf_counter() - start,
                      'hits': len(hits)}))
''')


def start_process(env_value: str) -> dict:
  env = {**os.environ, compilation_cache.ENVIRONMENT_VARIABLE: env_value, 'JAX_PLATFORMS': 'cpu'}
  result = subprocess.run([sys.executable, '-c', START], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.multiprocess
def test_a_second_start_reads_the_compiled_step_from_the_cache(tmp_path):
  cache_dir = tmp_path / 'jax_cache'
  first = start_process(str(cache_dir))
  entries = sorted(os.listdir(cache_dir))
  assert first['cache_dir'] == str(cache_dir) and first['hits'] == 0 and entries
  second = start_process(str(cache_dir))
  assert second['hits'] >= 1  # The step (and the arrays' small programs).
  assert sorted(os.listdir(cache_dir)) == entries  # Read, nothing new written.
  assert second['compile_s'] < first['compile_s']


def test_the_environment_turns_it_off_or_moves_it(monkeypatch, tmp_path):
  monkeypatch.setenv(compilation_cache.ENVIRONMENT_VARIABLE, 'off')
  assert compilation_cache.cache_dir_from_environment() is None
  assert compilation_cache.enable() is None
  monkeypatch.setenv(compilation_cache.ENVIRONMENT_VARIABLE, str(tmp_path / 'c'))
  assert compilation_cache.cache_dir_from_environment() == str(tmp_path / 'c')
  settings = ('jax_compilation_cache_dir', 'jax_persistent_cache_min_compile_time_secs',
              'jax_persistent_cache_min_entry_size_bytes')
  before = {name: getattr(jax.config, name) for name in settings}
  try:  # enable() puts JAX's cache in the folder the environment names, and creates it.
    assert compilation_cache.enable() == str(tmp_path / 'c')
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / 'c')
    assert (tmp_path / 'c').is_dir()
  finally:
    for name, value in before.items():
      jax.config.update(name, value)
  monkeypatch.delenv(compilation_cache.ENVIRONMENT_VARIABLE)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  assert compilation_cache.default_cache_dir() == tmp_path / 'melodygan_jax' / 'jax_cache'
