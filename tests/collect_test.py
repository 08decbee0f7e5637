"""data_prep.collect against a local HTTP server: downloads, resumes, reports failures."""
import http.server
import json
import threading

import pytest

from data_prep import collect

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB.


class RangeHandler(http.server.BaseHTTPRequestHandler):
  """Serves PAYLOAD at /song.ogg with Range support, 404 elsewhere."""

  def do_GET(self):  # pylint: disable=invalid-name
    if self.path != '/song.ogg':
      self.send_error(404)
      return
    start = 0
    if self.headers.get('Range'):
      start = int(self.headers['Range'].split('=')[1].split('-')[0])
      self.send_response(206)
      self.send_header('Content-Range', f'bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}')
    else:
      self.send_response(200)
    self.send_header('Content-Length', str(len(PAYLOAD) - start))
    self.end_headers()
    self.wfile.write(PAYLOAD[start:])
    self.server.requests.append(self.headers.get('Range'))

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
  assert server.requests == ['bytes=1000-']  # Resumed, not downloaded again.
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
