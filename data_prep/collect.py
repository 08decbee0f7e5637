r"""Collect songs into a folder prepare can read: files, pages, playlists, feeds.

  python -m data_prep.collect --urls=urls.txt --output_dir=raw/ [--retries=3] [--timeout_s=60]
      [--rate_limit=2M] [--max_duration=900]

urls.txt: one URL (or local path) per line; blank lines and lines starting
with # are skipped. Only collect what you hold the rights to.

Local paths, file:// URLs and URLs whose path ends in an audio extension are
fetched as they are: each download goes to NAME.part and is renamed when
complete, that is when it has the size the server announced (a response cut
short is resumed on the next try); an interrupted run resumes partial files
with HTTP Range requests where the server allows it (a partial file the server
answers 416 for, at the file's full size, is complete), and skips finished ones.

Every other URL (a video or track page, a playlist, a channel, a podcast feed,
a page with an <audio> or <video> element) goes through yt-dlp, which takes the
best audio of each item; its download archive (OUTPUT_DIR/.yt-dlp-archive.txt)
makes a re-run fetch only new or unfinished items, and items longer than
--max_duration seconds are skipped.

OUTPUT_DIR/collect.json lists every file with its size and SHA-256, and for
yt-dlp items the title, uploader, duration, source URL and license (where the
site states one). A URL that fails is reported on one line and the others go
on; the exit status is non-zero only when nothing could be collected.
"""
import hashlib
import http.client
import os
import pathlib
import re
import time
import urllib.error
import urllib.parse
import urllib.request

from absl import app
from absl import flags

from data_prep import media_sites
from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax.audio import audio_io

MANIFEST = 'collect.json'
_CHUNK_BYTES = 1 << 20


def read_url_list(path: str) -> list[str]:
  lines = pathlib.Path(path).read_text().splitlines()
  return [line.strip() for line in lines if line.strip() and not line.strip().startswith('#')]


def file_name_for(url: str, headers=None) -> str:
  """A safe file name: Content-Disposition's, else the URL path's last part."""
  disposition = (headers or {}).get('Content-Disposition', '')
  match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', disposition)
  name = urllib.parse.unquote(match[1]) if match else urllib.parse.unquote(
      pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name)
  name = re.sub(r'[^\w.\- ()\[\]]', '_', name).strip(' .') or 'download'
  return name


def _sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(_CHUNK_BYTES), b''):
      digest.update(block)
  return digest.hexdigest()


class IncompleteDownload(OSError):
  """The server ended the response before the size it announced; retried."""


def _download(url: str, part: pathlib.Path, timeout_s: float,
              rate_limit_bytes_s: float | None = None) -> None:
  """Appends the rest of `url` to `part`, resuming where the server allows it.

  Raises:
    IncompleteDownload: fewer bytes arrived than the server announced.
    urllib.error.HTTPError, urllib.error.URLError, OSError: as urlopen.
  """
  offset = part.stat().st_size if part.exists() else 0
  request = urllib.request.Request(url, headers={'User-Agent': 'melodygan-jax-collect'})
  if offset:
    request.add_header('Range', f'bytes={offset}-')
  try:
    response = urllib.request.urlopen(request, timeout=timeout_s)
  except urllib.error.HTTPError as e:
    if e.code != 416 or not offset:
      raise
    if _total_size(e.headers) == offset:
      return  # Nothing left to fetch: the partial file is the whole file.
    part.unlink()  # Longer than the file (it changed on the server): start again.
    _download(url, part, timeout_s, rate_limit_bytes_s)
    return
  with response:
    resumed = offset and response.status == 206
    expected = _expected_size(response.headers, offset if resumed else 0)
    with open(part, 'ab' if resumed else 'wb') as f:
      _copy(response, f, rate_limit_bytes_s)
  size = part.stat().st_size
  # urllib returns what arrived when the connection closes early, without error.
  if expected is not None and size < expected:
    raise IncompleteDownload(f'truncated: the server closed the connection after {size} '
                             f'of {expected} bytes')


def _copy(response, file, rate_limit_bytes_s: float | None) -> None:
  """Copies the body, sleeping as needed to stay under the rate limit on average."""
  chunk_bytes = _CHUNK_BYTES
  if rate_limit_bytes_s:
    chunk_bytes = max(1024, min(_CHUNK_BYTES, int(rate_limit_bytes_s / 8)))  # Smooth pacing.
  started = time.monotonic()
  copied = 0
  while block := response.read(chunk_bytes):
    file.write(block)
    copied += len(block)
    if rate_limit_bytes_s:
      time.sleep(max(0.0, copied / rate_limit_bytes_s - (time.monotonic() - started)))


def parse_rate(text: str) -> float | None:
  """'500K', '2M', '1.5MiB/s' -> bytes per second (K = 1024, as yt-dlp); '' -> None.

  Raises:
    ValueError: one line naming the flag.
  """
  if not text.strip():
    return None
  match = re.fullmatch(r'(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?(?:/s)?', text.strip(), re.IGNORECASE)
  if not match or float(match[1]) <= 0:
    raise errors.ConfigError(f'--rate_limit={text}: expected bytes per second, such as 500K or 2M')
  return float(match[1]) * 1024 ** ' kmg'.index(match[2].lower() or ' ')


def _total_size(headers) -> int | None:
  """The whole file's size from `Content-Range: bytes A-B/TOTAL` (or `*/TOTAL`)."""
  match = re.fullmatch(r'bytes (?:\d+-\d+|\*)/(\d+)', (headers.get('Content-Range') or '').strip())
  return int(match[1]) if match else None


def _expected_size(headers, offset: int) -> int | None:
  """The size the part file will have once the response is complete, if known."""
  total = _total_size(headers)
  if total is not None:
    return total
  length = headers.get('Content-Length')
  return offset + int(length) if length and length.isdigit() else None


def goes_direct(url: str) -> bool:
  """Local files and links to an audio file are fetched as they are; the rest
  (pages, playlists, feeds) go through yt-dlp."""
  parsed = urllib.parse.urlparse(url)
  if '://' not in url or parsed.scheme == 'file':
    return True
  extension = os.path.splitext(urllib.parse.unquote(parsed.path))[1].lower()
  return extension in audio_io.AUDIO_EXTENSIONS


class _Manifest:
  """collect.json: every collected file by the URL it came from, saved after each."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    self.entries = atomic_files.read_json(path) if path.exists() else {}

  def used_names(self) -> set[str]:
    return {entry['file'] for entry in self.entries.values()}

  def add(self, key: str, entry: dict) -> dict:
    file = self.path.parent / entry['file']
    self.entries[key] = {**entry, 'bytes': file.stat().st_size, 'sha256': _sha256(file)}
    atomic_files.write_json(self.path, self.entries)
    return self.entries[key]


def collect(urls: list[str], output_dir: str, retries: int = 3, timeout_s: float = 60.0,
            log=print, *, rate_limit_bytes_s: float | None = None,
            max_duration_s: float | None = None) -> dict:
  """Downloads every URL not yet collected.

  Args:
    urls: direct links and local paths (fetched as they are), or pages,
      playlists and feeds (through yt-dlp); see `goes_direct`.
    output_dir: where the files and collect.json go.
    retries: tries per download (network errors and 5xx only).
    timeout_s: socket timeout per request.
    log: takes one line per file, skip and failure.
    rate_limit_bytes_s: the most bytes per second any download gets.
    max_duration_s: yt-dlp items longer than this are skipped.

  Returns:
    {'collected': the manifest (also saved), 'failed': {url: one-line
    reason}, 'skipped': one line per item skipped as too long}.
  """
  output = pathlib.Path(output_dir)
  output.mkdir(parents=True, exist_ok=True)
  manifest = _Manifest(output / MANIFEST)
  failures, skipped = {}, []
  media_options = media_sites.MediaOptions(retries=retries, timeout_s=timeout_s,
                                           rate_limit_bytes_s=rate_limit_bytes_s,
                                           max_duration_s=max_duration_s)
  for url in urls:
    if goes_direct(url):
      error = _collect_direct(url, manifest, retries, timeout_s, rate_limit_bytes_s, log)
    else:
      error = _collect_media(url, manifest, media_options, skipped, log)
    if error:
      failures[url] = error
  return {'collected': manifest.entries, 'failed': failures, 'skipped': skipped}


def _collect_direct(url, manifest, retries, timeout_s, rate_limit_bytes_s, log) -> str | None:
  """Fetches one file unless collected before; returns a one-line reason on failure."""
  output = manifest.path.parent
  entry = manifest.entries.get(url)
  if entry and (output / entry['file']).exists():
    return None
  listed_url = url
  if '://' not in url:
    url = pathlib.Path(url).resolve().as_uri()
  name = entry['file'] if entry else _unused_name(file_name_for(url), manifest.used_names())
  part = output / f'{name}.part'
  error = _download_with_retries(url, part, retries, timeout_s, rate_limit_bytes_s)
  if error:
    log(f'collect: {listed_url}: {error}')
    return error
  os.replace(part, output / name)
  added = manifest.add(listed_url, {'file': name})
  log(f'collect: {name} ({added["bytes"] / 1e6:.1f} MB)')
  return None


def _unused_name(name: str, used_names: set[str]) -> str:
  """`name`, or `stem_2.ext`, `stem_3.ext`... when another URL has it."""
  stem, suffix = os.path.splitext(name)
  counter = 1
  while name in used_names:
    counter += 1
    name = f'{stem}_{counter}{suffix}'
  return name


def _collect_media(url, manifest, options, skipped, log) -> str | None:
  """Fetches what is new behind a page, playlist or feed; a one-line reason on failure."""

  def add_item(entry: dict) -> None:
    added = manifest.add(_item_key(manifest.entries, entry), entry)
    log(f'collect: {entry["file"]} ({added["bytes"] / 1e6:.1f} MB)')

  outcome = media_sites.download(url, manifest.path.parent, options, add_item)
  for reason in outcome.skipped:
    log(f'collect: {url}: {reason}')
  skipped.extend(f'{url}: {reason}' for reason in outcome.skipped)
  for error in outcome.errors:
    log(f'collect: {url}: {error}')
  if not outcome.errors:
    return None
  more = f' (and {len(outcome.errors) - 1} more errors)' if len(outcome.errors) > 1 else ''
  return outcome.errors[0] + more


def _item_key(entries: dict, entry: dict) -> str:
  """An item's source URL; with its id when items of one page share that URL."""
  key = entry['source_url']
  other = entries.get(key)
  if other and (other.get('extractor'), other.get('id')) != (entry['extractor'], entry['id']):
    key = f'{key}#{entry["id"]}'
  return key


def _download_with_retries(url: str, part: pathlib.Path, retries: int, timeout_s: float,
                           rate_limit_bytes_s: float | None = None) -> str | None:
  """None on success, else a one-line reason. Client errors (4xx) are not retried."""
  error = None
  for attempt in range(retries):
    try:
      _download(url, part, timeout_s, rate_limit_bytes_s)
      return None
    except urllib.error.HTTPError as e:
      error = f'HTTP {e.code} {e.reason}'
      if e.code < 500:
        return error
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
      error = ' '.join(str(getattr(e, 'reason', e)).split())
    if attempt + 1 < retries:
      time.sleep(min(2**attempt, 10))
  return f'failed after {retries} tries: {error}'


def main(argv):
  config = flags.FLAGS
  with errors.exit_on_user_error('collect'):
    if len(argv) > 1:
      raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    if not os.path.isfile(config.urls):
      raise errors.UserError(f'--urls={config.urls}: no such file')
    if config.max_duration is not None and config.max_duration <= 0:
      raise errors.UserError(
          f'--max_duration={config.max_duration:g}: must be positive (seconds)')
    rate_limit_bytes_s = parse_rate(config.rate_limit)
    urls = read_url_list(config.urls)
    result = collect(urls, config.output_dir, config.retries, config.timeout_s,
                     rate_limit_bytes_s=rate_limit_bytes_s, max_duration_s=config.max_duration)
    print(f'{len(result["collected"])} files in {config.output_dir}, '
          f'{len(result["skipped"])} skipped, {len(result["failed"])} failed')
    if urls and not result['collected']:
      raise errors.UserError('nothing could be collected')


def run():
  flags.DEFINE_string('urls', None, 'Text file: one URL or path per line.')
  flags.DEFINE_string('output_dir', None, 'Where the files go (then prepare --input_dir).')
  flags.DEFINE_integer('retries', 3, 'Tries per URL (network errors and 5xx only).')
  flags.DEFINE_float('timeout_s', 60.0, 'Socket timeout per request.')
  flags.DEFINE_string('rate_limit', '', 'Most bytes per second per download, e.g. 500K or 2M '
                      '(default: no limit).')
  flags.DEFINE_float('max_duration', None, 'Seconds: longer media-site items are skipped.')
  flags.mark_flags_as_required(['urls', 'output_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
