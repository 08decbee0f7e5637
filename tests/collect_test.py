"""data_prep.collect against a local HTTP server: downloads, resumes, reports failures."""
import http.server
import json
import threading

import pytest

from data_prep import collect

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB.


class RangeHandler(http.server.BaseHTTPRequestHandler):
  """Serves PAYLOAD with Range support at /song.ogg; /cut_once.ogg stops halfway
  through its first response, /always_cut.ogg through every one; 404 elsewhere."""

  def do_GET(self):  # pylint: disable=invalid-name
    if self.path not in ('/song.ogg', '/cut_once.ogg', '/always_cut.ogg'):
      self.send_error(404)
      return
    self.server.requests.append((self.path, self.headers.get('Range')))
    start = 0
    if self.headers.get('Range'):
      start = int(self.headers['Range'].split('=')[1].split('-')[0])
      if start >= len(PAYLOAD):
        self.send_response(416)
        self.send_header('Content-Range', f'bytes */{len(PAYLOAD)}')
        self.send_header('Content-Length', '0')
        self.end_headers()
        return
      self.send_response(206)
      self.send_header('Content-Range', f'bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}')
    else:
      self.send_response(200)
    self.send_header('Content-Length', str(len(PAYLOAD) - start))
    self.end_headers()
    body = PAYLOAD[start:]
    num_requests = sum(path == self.path for path, _ in self.server.requests)
    if self.path == '/always_cut.ogg' or (self.path == '/cut_once.ogg' and num_requests == 1):
      body = body[:len(body) // 2]  # The server closes early (HTTP/1.0: the connection ends).
    self.wfile.write(body)

  def log_message(self, *args):
    pass


@pytest.fixture
def server():
  httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), RangeHandler)
  httpd.requests = []
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd
  httpd.shutdown()


def test_collect_downloads_resumes_and_reports(server, tmp_path):
  base = f'http://127.0.0.1:{server.server_address[1]}'
  local = tmp_path / 'local.wav'
  local.write_bytes(b'RIFF local')
  urls = tmp_path / 'urls.txt'
  urls.write_text(f'# my songs\n{base}/song.ogg\n\n{base}/missing.mp3\n{local}\n')
  output = tmp_path / 'raw'
  output.mkdir()
  (output / 'song.ogg.part').write_bytes(PAYLOAD[:1000])  # An interrupted earlier run.
  messages = []
  result = collect.collect(collect.read_url_list(str(urls)), str(output), retries=2,
                           log=messages.append)
  assert (output / 'song.ogg').read_bytes() == PAYLOAD
  assert server.requests == [('/song.ogg', 'bytes=1000-')]  # Resumed, not downloaded again.
  assert (output / 'local.wav').read_bytes() == b'RIFF local'
  assert list(result['failed']) == [f'{base}/missing.mp3']
  assert 'HTTP 404' in result['failed'][f'{base}/missing.mp3']
  assert any('missing.mp3: HTTP 404' in m for m in messages)
  manifest = json.loads((output / 'collect.json').read_text())
  assert manifest[f'{base}/song.ogg']['bytes'] == len(PAYLOAD)
  assert not list(output.glob('*.part'))
  again = collect.collect(collect.read_url_list(str(urls)), str(output), retries=1,
                          log=messages.append)
  assert len(server.requests) == 1  # Finished files are not fetched twice.
  assert set(again['collected']) == set(manifest)


def test_file_names_are_safe():
  assert collect.file_name_for('https://x.org/a/My%20Song.mp3?x=1') == 'My Song.mp3'
  assert collect.file_name_for('https://x.org/dl', {'Content-Disposition':
                                                    'attachment; filename="b/../c.flac"'}) == 'b_.._c.flac'
  assert collect.file_name_for('https://x.org/') == 'download'


def test_a_download_cut_short_is_resumed_not_accepted(server, tmp_path):
  url = f'http://127.0.0.1:{server.server_address[1]}/cut_once.ogg'
  result = collect.collect([url], str(tmp_path), retries=2, log=lambda message: None)
  assert not result['failed']
  assert (tmp_path / 'cut_once.ogg').read_bytes() == PAYLOAD
  assert server.requests == [('/cut_once.ogg', None),
                             ('/cut_once.ogg', f'bytes={len(PAYLOAD) // 2}-')]


def test_a_download_always_cut_short_fails_with_the_sizes(server, tmp_path):
  url = f'http://127.0.0.1:{server.server_address[1]}/always_cut.ogg'
  messages = []
  result = collect.collect([url], str(tmp_path), retries=2, log=messages.append)
  assert 'truncated' in result['failed'][url] and f'of {len(PAYLOAD)} bytes' in result['failed'][url]
  assert messages == [f'collect: {url}: {result["failed"][url]}']
  assert not (tmp_path / 'always_cut.ogg').exists() and not result['collected']


def test_a_complete_partial_file_is_finished_on_416(server, tmp_path):
  (tmp_path / 'song.ogg.part').write_bytes(PAYLOAD)  # Killed after the last byte, before the rename.
  url = f'http://127.0.0.1:{server.server_address[1]}/song.ogg'
  result = collect.collect([url], str(tmp_path), retries=1, log=lambda message: None)
  assert not result['failed']
  assert (tmp_path / 'song.ogg').read_bytes() == PAYLOAD
  assert server.requests == [('/song.ogg', f'bytes={len(PAYLOAD)}-')]
