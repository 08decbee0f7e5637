"""The studio: its HTTP API in-process and on a localhost port, and its page in headless Chromium."""
import concurrent.futures
import io
import json
import os
import pathlib
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
import soundfile

starlette = pytest.importorskip('starlette', reason='the studio extra is not installed')
uvicorn = pytest.importorskip('uvicorn', reason='the studio extra is not installed')
import httpx  # pylint: disable=g-import-not-at-top,wrong-import-position
from starlette.responses import HTMLResponse  # pylint: disable=wrong-import-position
from starlette.responses import JSONResponse  # pylint: disable=wrong-import-position
from starlette.routing import Route  # pylint: disable=wrong-import-position
from starlette.testclient import TestClient  # pylint: disable=wrong-import-position

from melodygan_jax.audio import audio_io  # pylint: disable=wrong-import-position
from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.generation import sampling  # pylint: disable=wrong-import-position
from melodygan_jax.generation import studio  # pylint: disable=wrong-import-position

MAX_UPLOAD_MB = 1.0  # Small, so the too-big upload is cheap to send.


@pytest.fixture(scope='module')
def model(trained_gan):
  return sampling.load(str(trained_gan[0]))


@pytest.fixture(scope='module')
def app(model):
  # The stream runs at most half a second ahead, so a steer shows within a few units.
  return studio.create_app(model, max_upload_mb=MAX_UPLOAD_MB, stream_lead_seconds=0.5)


@pytest.fixture(scope='module')
def client(app):
  with TestClient(app) as test_client:
    yield test_client


@pytest.fixture(scope='module')
def song(corpus_dir):
  """1.5 s of a corpus song as WAV bytes: a continuation's prompt and a style's clip alike
  (one length, so the style fit compiles once for both)."""
  samples, rate = soundfile.read(corpus_dir / 'songs' / 'song_01.wav', dtype='float32')
  buffer = io.BytesIO()
  soundfile.write(buffer, samples[:int(1.5 * rate)], rate, format='WAV', subtype='FLOAT')
  return buffer.getvalue()


def decoded(response) -> np.ndarray:
  assert response.status_code == 200, response.text
  assert response.headers['content-type'] == 'audio/wav'
  samples, rate = soundfile.read(io.BytesIO(response.content), dtype='int16')
  assert rate == contract.SAMPLE_RATE_HZ
  return samples


def studio_folders() -> set[str]:
  return {name for name in os.listdir(tempfile.gettempdir())
          if name.startswith('melodygan-studio-')}


def test_generate_is_the_sampler_s_piece_byte_for_byte(client, model, tmp_path):
  response = client.post('/api/generate', json={'seconds': 2, 'seed': 3})
  assert len(decoded(response)) == 2 * contract.SAMPLE_RATE_HZ
  assert json.loads(response.headers['x-settings']) == {'seconds': 2.0, 'seed': 3, 'loop': False}
  again = client.post('/api/generate', json=json.loads(response.headers['x-settings']))
  assert again.content == response.content
  piece, = sampling.free(model, 3, [0], 2.0)
  audio_io.write_wav(tmp_path / 'piece.wav', piece.audio)
  assert (tmp_path / 'piece.wav').read_bytes() == response.content
  listed = client.get('/api/results').json()
  entry = next(item for item in listed if item['id'] == response.headers['x-result-id'])
  assert client.get(entry['wav']).content == response.content
  assert client.get(entry['png']).content.startswith(b'\x89PNG')
  figure = client.get(entry['figure']).text
  assert f'src="{entry["wav"]}"' in figure and 'class="cursor"' in figure


def test_loops_and_morphs(client, model):
  loop = decoded(client.post('/api/generate', json={'seconds': 3, 'seed': 1, 'loop': True}))
  assert len(loop) == sampling.loop_steps(model, 3) * model.code_samples
  # The wrap is like any other step: no jump from the last sample to the first.
  steps = np.abs(np.diff(loop.astype(np.float64)))
  assert abs(float(loop[0]) - float(loop[-1])) < np.quantile(steps, 0.999) + 1
  morph = client.post('/api/generate', json={'seconds': 2, 'seed': 1, 'style_seed': 4,
                                             'morph_to_seed': 5})
  plain = client.post('/api/generate', json={'seconds': 2, 'seed': 1})
  assert len(decoded(morph)) == len(decoded(plain)) and morph.content != plain.content


def test_continue_starts_with_the_clip(trained_context_gan, song):
  """A context-conditioned run continues without fitting (the unconditional path, by
  projection, is the sampler's and is tested with it)."""
  folders = studio_folders()
  application = studio.create_app(sampling.load(str(trained_context_gan[0])))
  with TestClient(application) as context_client:
    response = context_client.post('/api/continue',
                                   files={'file': ('song.wav', song, 'audio/wav')},
                                   data={'prompt_seconds': '1.5', 'seconds': '2', 'seed': '0'})
    audio = decoded(response)
    settings = json.loads(response.headers['x-settings'])
    again = context_client.post('/api/continue', files={'file': ('other name.wav', song)},
                                data={'prompt_seconds': '1.5', 'seconds': '2', 'seed': '0'})
  assert again.content == response.content
  assert settings['file'] == 'song.wav' and settings['prompt_seconds'] == 1.5
  prompt_samples = int(1.5 * contract.SAMPLE_RATE_HZ)
  assert len(audio) == prompt_samples + 2 * contract.SAMPLE_RATE_HZ
  clip = soundfile.read(io.BytesIO(song), dtype='float32')[0]  # The corpus is 22 050 Hz mono.
  expected = np.clip(np.floor(clip * 32768.0), -32768, 32767)
  np.testing.assert_array_equal(audio[:prompt_samples], expected)
  assert studio_folders() == folders  # Every upload's temporary folder is gone.


def test_style_from_an_uploaded_clip(client, song):
  style = client.post('/api/style', files={'file': ('song.wav', song)}, data={'seed': '0'})
  assert style.status_code == 200, style.text
  entry = style.json()
  assert entry['name'] == 'song.wav' and entry['style_id'].startswith('s')
  styled = client.post('/api/generate', json={'seconds': 1, 'seed': 0,
                                              'style_id': entry['style_id']})
  plain = client.post('/api/generate', json={'seconds': 1, 'seed': 0})
  assert len(decoded(styled)) == contract.SAMPLE_RATE_HZ and styled.content != plain.content
  morph_request = {'seconds': 1, 'seed': 0, 'style_seed': 2,
                   'morph_to_style_id': entry['style_id']}
  morph = client.post('/api/generate', json=morph_request)
  assert len(decoded(morph)) == contract.SAMPLE_RATE_HZ
  # A morph towards the clip's style: neither end alone, and made again byte for byte.
  start = client.post('/api/generate', json={'seconds': 1, 'seed': 0, 'style_seed': 2})
  assert morph.content not in (start.content, styled.content)
  assert client.post('/api/generate', json=morph_request).content == morph.content


@pytest.mark.parametrize('case', ['not_audio', 'empty', 'too_big', 'too_long', 'traversal',
                                  'no_file', 'bad_seconds'])
def test_bad_requests_get_one_line_and_the_server_goes_on(client, app, song, case):
  folders = studio_folders()
  before = set(os.listdir('/etc'))
  files = {'file': ('clip.mp3', song)}
  data = {'seconds': '2', 'seed': '0'}
  expected_status = {'not_audio': 415, 'empty': 400, 'too_big': 413, 'too_long': 413,
                     'traversal': 415, 'no_file': 415, 'bad_seconds': 400}[case]
  if case == 'not_audio':
    files = {'file': ('notes.wav', b'this is not audio at all' * 100)}
  elif case == 'empty':
    files = {'file': ('empty.wav', b'')}
  elif case == 'too_big':
    files = {'file': ('big.wav', b'\0' * int(1.5 * MAX_UPLOAD_MB * 2**20))}
  elif case == 'traversal':
    files = {'file': ('../../etc/passwd', b'root:x:0:0:root:/root:/bin/bash\n')}
  elif case == 'no_file':
    files = None
  elif case == 'bad_seconds':
    data = {'seconds': 'ten', 'seed': '0'}
  if case == 'too_long':
    app.state.studio.max_upload_seconds = 1.0
  try:
    response = client.post('/api/continue', files=files, data=data)
  finally:
    app.state.studio.max_upload_seconds = studio.MAX_UPLOAD_SECONDS
  assert response.status_code == expected_status, response.text
  message = response.json()['error']
  assert message and '\n' not in message and 'Traceback' not in message
  assert '/tmp' not in message  # Temporary paths stay inside.
  assert set(os.listdir('/etc')) == before and studio_folders() == folders
  assert len(decoded(client.post('/api/generate', json={'seconds': 1, 'seed': 0}))) > 0


def test_bad_generate_settings_are_refused_with_one_line(client):
  for body, field in (({'seconds': 0.5}, 'seconds'), ({'seconds': 601}, 'seconds'),
                      ({'seconds': 2, 'seed': -1}, 'seed'), ({'seconds': 2, 'tempo': 1}, 'tempo'),
                      ({'seconds': 2, 'style_id': 'nope'}, 'style_id')):
    response = client.post('/api/generate', json=body)
    assert 400 <= response.status_code < 500 and field in response.json()['error']
  response = client.post('/api/generate', content=b'{not json')
  assert response.status_code == 400 and 'JSON' in response.json()['error']
  assert client.get('/no/such/page').json() == {'error': 'Not Found'}


def test_stream_is_seamless_reproducible_and_steerable(client):
  def receive(steer=None, units=5):
    with client.websocket_connect('/api/stream?seed=7') as websocket:
      header = websocket.receive_json()
      chunks = []
      for index in range(units):
        if index == 1 and steer:
          websocket.send_json(steer)
        chunks.append(np.frombuffer(websocket.receive_bytes(), '<i2'))
      return header, chunks

  header, chunks = receive()
  assert header['sample_rate_hz'] == contract.SAMPLE_RATE_HZ
  assert all(len(chunk) == header['unit_samples'] for chunk in chunks)
  _, again = receive()
  assert all(np.array_equal(a, b) for a, b in zip(chunks, again))
  # Units join as any two samples do: no step at a join beyond what the audio has anyway.
  audio = np.concatenate(chunks).astype(np.float64)
  steps = np.abs(np.diff(audio))
  joins = [header['unit_samples'] * k - 1 for k in range(1, len(chunks))]
  assert max(steps[joins]) <= np.quantile(steps, 0.999) + 1
  # Steering changes the music from a later window on, not before (the stream runs at most
  # half a second, a unit, ahead).
  _, steered = receive({'morph_to_seed': 8, 'morph': 1.0})
  assert np.array_equal(steered[0], chunks[0])
  assert not np.array_equal(steered[-1], chunks[-1])


def test_memory_does_not_grow_over_100_requests(client):
  def resident_mb() -> float:
    with open('/proc/self/statm') as f:
      return int(f.read().split()[1]) * resource.getpagesize() / 2**20

  for seed in range(10):  # Caches and allocators settle first.
    decoded(client.post('/api/generate', json={'seconds': 1, 'seed': seed}))
  before = resident_mb()
  for seed in range(100):
    decoded(client.post('/api/generate', json={'seconds': 1, 'seed': seed}))
  assert resident_mb() - before < 60


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    return probe.getsockname()[1]


class LiveServer:
  """The app served by uvicorn on a localhost port, in a thread."""

  def __init__(self, application):
    self.port = free_port()
    self.server = uvicorn.Server(uvicorn.Config(application, host='127.0.0.1', port=self.port,
                                                log_level='warning'))
    self.thread = threading.Thread(target=self.server.run, daemon=True)

  def __enter__(self):
    self.thread.start()
    deadline = time.monotonic() + 30
    while not self.server.started:
      assert time.monotonic() < deadline, 'the server did not start'
      time.sleep(0.05)
    return f'http://127.0.0.1:{self.port}'

  def __exit__(self, *exc):
    self.server.should_exit = True
    self.thread.join(30)


@pytest.fixture(scope='module')
def live_app(model):
  """A second app over the same model, with a test harness page and a place for its result."""
  application = studio.create_app(model, max_upload_mb=MAX_UPLOAD_MB)
  found, done = {}, threading.Event()

  async def harness(request):
    return HTMLResponse(HARNESS)

  async def result(request):
    found.update(await request.json())
    done.set()
    return JSONResponse({})

  application.router.routes.append(Route('/test/harness', harness))
  application.router.routes.append(Route('/test/result', result, methods=['POST']))
  with LiveServer(application) as url:
    yield url, found, done


@pytest.mark.end_to_end
def test_four_concurrent_clients_are_queued_and_never_mixed(live_app):
  url, _, _ = live_app
  seeds = [11, 12, 11, 12, 13, 14, 13, 14]
  with httpx.Client(base_url=url, timeout=120) as http:
    alone = {seed: http.post('/api/generate', json={'seconds': 1, 'seed': seed}).content
             for seed in set(seeds)}

  def ask(seed):
    with httpx.Client(base_url=url, timeout=120) as http:
      return seed, http.post('/api/generate', json={'seconds': 1, 'seed': seed}).content

  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    answers = list(pool.map(ask, seeds))
  assert all(content == alone[seed] for seed, content in answers)
  assert len(set(alone.values())) == len(alone)


def chromium():
  for name in ('chromium', 'chromium-browser', 'google-chrome'):
    if shutil.which(name):
      return shutil.which(name)
  pytest.skip('headless Chromium is not installed (make test installs it with apt-get)')


# Opens the studio in a frame, clicks Generate for 2 s and waits for the player's duration,
# then presses Play on the stream and waits until it has played past its first window.
HARNESS = '''<!doctype html><html><body><iframe id="page" src="/" width="1200" height="900">
</iframe><script>
const report = result => fetch('/test/result', {method: 'POST', body: JSON.stringify(result)});
const until = (test, seconds) => new Promise((done, fail) => {
  const start = Date.now();
  const poll = () => { if (test()) return done();
    if (Date.now() - start > seconds * 1000) return fail(new Error('timed out'));
    setTimeout(poll, 50); };
  poll(); });
document.getElementById('page').onload = async () => { try {
  const page = document.getElementById('page').contentWindow;
  const $ = id => page.document.getElementById(id);
  await until(() => page.studio, 10);
  $('gen-seconds').value = '2';
  $('gen-seed').value = '21';
  $('generate').click();
  await until(() => $('status').textContent.startsWith('generate: done'), 60);
  const id = $('status').textContent.match(/[(](r[0-9]+)[)]/)[1];
  const box = $('results').querySelector('[data-id="' + id + '"]');
  const audio = box.querySelector('audio');
  await until(() => audio.readyState >= 1, 30);
  const duration = audio.duration;
  const settings = box.querySelector('.settings').textContent;
  const cursor = box.querySelector('.cursor') !== null;
  $('stream-seed').value = '5';
  $('stream-play').click();
  await until(() => page.studio.chunks >= 3, 60);
  $('stream-morph').value = '1';
  $('stream-morph').dispatchEvent(new page.Event('input'));
  await until(() => page.studio.chunks >= 5, 60);
  const chunks = page.studio.chunks, title = page.document.title;
  await until(() => page.studio.playedSeconds > 1.0, 30).catch(() => {});
  report({duration, settings, cursor, chunks, title, played: page.studio.playedSeconds});
} catch (error) { report({error: String(error)}); } };
</script></body></html>'''


@pytest.mark.browser
def test_page_in_headless_chromium_generates_and_streams(live_app, tmp_path):
  browser = chromium()
  url, found, done = live_app
  process = subprocess.Popen(
      [browser, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
       '--disable-background-networking', '--disable-component-update', '--disable-sync',
       '--autoplay-policy=no-user-gesture-required', f'--user-data-dir={tmp_path / "profile"}',
       '--remote-debugging-port=0', f'{url}/test/harness'],
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    assert done.wait(120), 'the page did not report'
  finally:
    process.terminate()
    try:
      process.wait(20)
    except subprocess.TimeoutExpired:
      process.kill()
  assert 'error' not in found, found
  assert found['duration'] == pytest.approx(2.0, abs=0.01)
  assert '"seconds":2' in found['settings'] and '"seed":21' in found['settings']
  assert found['cursor']
  assert found['chunks'] >= 5 and f'{found["chunks"]} chunks' in found['title']
  assert found['played'] > 1.0  # Past the first unit (0.56 s with this run's windows).


def test_the_command_refuses_a_bad_run_with_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'melodygan_jax.studio', f'--workdir={tmp_path / "missing"}'],
      capture_output=True, text=True, timeout=120, check=False,
      cwd=pathlib.Path(__file__).resolve().parents[1])
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('studio: ') and 'missing' in last and 'Traceback' not in result.stderr
