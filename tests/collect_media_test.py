"""data_prep.collect through yt-dlp, against a local site: pages, playlists, feeds."""
import http.server
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile

from data_prep import collect
from data_prep import media_sites
from melodygan_jax.audio import audio_io

TONE_SECONDS = 2.0


def make_tone(folder) -> bytes:
  samples = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(22050 * TONE_SECONDS)) / 22050)
  soundfile.write(folder / 'tone.ogg', samples.astype(np.float32), 22050, format='OGG',
                  subtype='VORBIS')
  return (folder / 'tone.ogg').read_bytes()


def site_pages(base: str) -> dict[str, tuple[str, str]]:
  """Path -> (content type, body) of the pages yt-dlp's generic extractor reads."""
  track_metadata = {'@context': 'https://schema.org', '@type': 'AudioObject', 'name': 'Tone',
                    'author': {'@type': 'Person', 'name': 'Ann'}, 'duration': 'PT2S',
                    'contentUrl': f'{base}/stream/track', 'encodingFormat': 'audio/ogg'}
  feed_items = ''.join(
      f'<item><title>{title}</title><guid>{guid}</guid><itunes:duration>{duration}'
      f'</itunes:duration><enclosure url="{base}/stream/{guid}" type="audio/ogg"/></item>'
      for title, guid, duration in (('Short one', 'ep1', '00:00:02'),
                                    ('Long one', 'ep2', '01:00:00')))
  return {
      # A track page that states its metadata (schema.org JSON-LD).
      '/track': ('text/html', '<html><head><title>Track</title><script type="application/'
                 f'ld+json">{json.dumps(track_metadata)}</script></head><body></body></html>'),
      # A page with two players: a playlist of two items, no durations stated.
      '/album': ('text/html', '<html><head><title>Album</title></head><body>'
                 '<audio src="/stream/a1"></audio><audio src="/stream/a2"></audio></body></html>'),
      # A podcast feed: a playlist whose items state their durations.
      '/feed.xml': ('application/rss+xml', '<?xml version="1.0"?><rss version="2.0" xmlns:'
                    'itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel><title>Show'
                    f'</title>{feed_items}</channel></rss>'),
  }


class SiteHandler(http.server.BaseHTTPRequestHandler):
  """The pages above; /stream/* and /direct.ogg serve the tone; 404 elsewhere."""

  def do_GET(self):  # pylint: disable=invalid-name
    self.server.requests.append(self.path)
    base = f'http://127.0.0.1:{self.server.server_address[1]}'
    pages = site_pages(base)
    if self.path.startswith('/stream/') or self.path == '/direct.ogg':
      content_type, body = 'audio/ogg', self.server.tone
    elif self.path in pages:
      content_type, body = pages[self.path][0], pages[self.path][1].encode()
    else:
      self.send_error(404)
      return
    self.send_response(200)
    self.send_header('Content-Type', content_type)
    self.send_header('Content-Length', str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    pass


@pytest.fixture(scope='module')
def site(tmp_path_factory):
  httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), SiteHandler)
  httpd.requests = []
  httpd.tone = make_tone(tmp_path_factory.mktemp('tone'))
  httpd.base = f'http://127.0.0.1:{httpd.server_address[1]}'
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd
  httpd.shutdown()


@pytest.fixture(scope='module')
def collected(site, tmp_path_factory):
  """One run over every kind of URL, with --max_duration=60."""
  output = tmp_path_factory.mktemp('raw')
  urls = [f'{site.base}/{path}' for path in ('track', 'album', 'feed.xml', 'direct.ogg', 'missing')]
  messages = []
  result = collect.collect(urls, str(output), retries=1, log=messages.append, max_duration_s=60)
  return result, messages, output


def test_pages_playlists_and_feeds_are_collected_with_their_metadata(site, collected):
  result, _, output = collected
  manifest = json.loads((output / collect.MANIFEST).read_text())
  assert manifest == result['collected']
  track = manifest[f'{site.base}/track']
  assert (track['title'], track['uploader'], track['duration_s']) == ('Tone', 'Ann', 2.0)
  assert track['source_url'] == f'{site.base}/track' and track['license'] is None
  # Two items of one page: both kept, told apart by id.
  album = [manifest[f'{site.base}/album'], manifest[f'{site.base}/album#album-2']]
  assert [item['listed_url'] for item in album] == [f'{site.base}/album'] * 2
  assert all(item['duration_s'] == pytest.approx(TONE_SECONDS, abs=0.1) for item in album)
  episode = manifest[f'{site.base}/stream/ep1']
  assert (episode['title'], episode['listed_url']) == ('Short one', f'{site.base}/feed.xml')
  # A link to an audio file keeps the direct downloader (and its plain name).
  assert manifest[f'{site.base}/direct.ogg']['file'] == 'direct.ogg'
  assert 'title' not in manifest[f'{site.base}/direct.ogg']
  for entry in manifest.values():
    assert (output / entry['file']).stat().st_size == entry['bytes'] == len(site.tone)
  samples, rate = audio_io.read_audio(output / track['file'])
  assert len(samples) / rate == pytest.approx(TONE_SECONDS, abs=0.05)


def test_items_longer_than_max_duration_are_skipped_before_download(site, collected):
  result, messages, output = collected
  assert result['skipped'] == [
      f'{site.base}/feed.xml: skipped Long one: 3600 s, longer than --max_duration=60']
  assert f'collect: {result["skipped"][0]}' in messages
  assert not list(output.glob('Long one*'))


def test_a_failing_page_is_one_line_naming_it(site, collected):
  result, messages, _ = collected
  url = f'{site.base}/missing'
  assert list(result['failed']) == [url]
  assert 'HTTP Error 404' in result['failed'][url] and '\n' not in result['failed'][url]
  assert f'collect: {url}: {result["failed"][url]}' in messages


def test_a_rerun_downloads_nothing_again(site, collected):
  result, _, output = collected
  modified = {path.name: path.stat().st_mtime_ns for path in output.iterdir()}
  messages = []
  again = collect.collect([f'{site.base}/album', f'{site.base}/feed.xml'], str(output),
                          retries=1, log=messages.append, max_duration_s=60)
  assert again['collected'] == result['collected']
  assert messages == [f'collect: {again["skipped"][0]}']  # Only the long item, again.
  assert {path.name: path.stat().st_mtime_ns for path in output.iterdir()} == modified


def test_durations_the_site_does_not_state_are_checked_after_download(site, tmp_path):
  result = collect.collect([f'{site.base}/album'], str(tmp_path), retries=1,
                           log=lambda message: None, max_duration_s=1)
  assert result['collected'] == {} and len(result['skipped']) == 2
  assert 'longer than --max_duration=1' in result['skipped'][0]
  assert sorted(path.name for path in tmp_path.iterdir()) == [media_sites.ARCHIVE]


@pytest.mark.parametrize('path', ['direct.ogg', 'stream/slow'])
def test_the_rate_limit_holds_for_both_downloaders(site, tmp_path, path):
  started = time.monotonic()
  result = collect.collect([f'{site.base}/{path}'], str(tmp_path), retries=1,
                           log=lambda message: None, rate_limit_bytes_s=4096)
  elapsed_s = time.monotonic() - started
  assert len(result['collected']) == 1
  assert elapsed_s > 0.8 * (len(site.tone) - 4096) / 4096  # The first block may come at once.


def test_urls_are_sent_direct_or_to_yt_dlp():
  assert collect.goes_direct('https://example.org/a/Song.MP3?download=1')
  assert collect.goes_direct('file:///music/song')
  assert collect.goes_direct('songs/local.flac')
  assert not collect.goes_direct('https://www.youtube.com/watch?v=abc')
  assert not collect.goes_direct('https://example.org/podcast/feed.xml')
  assert collect.parse_rate('500K') == 500 * 1024 and collect.parse_rate('1.5MiB/s') == 1.5 * 2**20
  assert collect.parse_rate('') is None
  with pytest.raises(ValueError, match=r'^--rate_limit=fast: expected bytes per second'):
    collect.parse_rate('fast')


def test_the_manifest_keeps_a_license_the_site_states():
  info = {'title': 'Song', 'channel': 'Band', 'duration': 181, 'license': 'CC BY 4.0',
          'webpage_url': 'https://video.example/watch?v=abc', 'extractor_key': 'Example',
          'id': 'abc'}
  entry = media_sites.manifest_entry(info, 'https://video.example/list', 'Song [abc].webm', 181)
  assert entry == {'file': 'Song [abc].webm', 'title': 'Song', 'uploader': 'Band',
                   'duration_s': 181.0, 'source_url': 'https://video.example/watch?v=abc',
                   'license': 'CC BY 4.0', 'listed_url': 'https://video.example/list',
                   'extractor': 'Example', 'id': 'abc'}


def test_cli_rejects_a_bad_rate_limit_in_one_line(tmp_path):
  urls = tmp_path / 'urls.txt'
  urls.write_text('https://example.org/song.mp3\n')
  result = subprocess.run(
      [sys.executable, '-m', 'data_prep.collect', f'--urls={urls}',
       f'--output_dir={tmp_path / "raw"}', '--rate_limit=fast'],
      capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      'collect: --rate_limit=fast: expected bytes per second, such as 500K or 2M')
  assert not (tmp_path / 'raw').exists()
