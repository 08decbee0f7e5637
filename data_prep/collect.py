r"""Download a list of audio files into a folder prepare can read.

  python -m data_prep.collect --urls=urls.txt --output_dir=raw/ [--retries=3] [--timeout_s=60]

urls.txt: one http(s):// or file:// URL (or local path) per line; blank lines
and lines starting with # are skipped. Each download goes to NAME.part and is
renamed when complete, that is when it has the size the server announced (a
response cut short is resumed on the next try); an interrupted run resumes
partial files with HTTP Range requests where the server allows it (a partial
file the server answers 416 for, at the file's full size, is complete), and
skips finished ones (listed in
OUTPUT_DIR/collect.json with their size and SHA-256). A URL that fails is
reported on one line and the others go on; the exit status is non-zero only
when nothing could be collected.
"""
import hashlib
import http.client
import os
import pathlib
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from absl import app
from absl import flags

from melodygan_jax import atomic_files

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


def _download(url: str, part: pathlib.Path, timeout_s: float) -> None:
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
    _download(url, part, timeout_s)
    return
  with response:
    resumed = offset and response.status == 206
    expected = _expected_size(response.headers, offset if resumed else 0)
    with open(part, 'ab' if resumed else 'wb') as f:
      shutil.copyfileobj(response, f, _CHUNK_BYTES)
  size = part.stat().st_size
  # urllib returns what arrived when the connection closes early, without error.
  if expected is not None and size < expected:
    raise IncompleteDownload(f'truncated: the server closed the connection after {size} '
                             f'of {expected} bytes')


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


def collect(urls: list[str], output_dir: str, retries: int = 3, timeout_s: float = 60.0,
            log=print) -> dict:
  """Downloads every URL not yet collected; returns the manifest (also saved)."""
  output = pathlib.Path(output_dir)
  output.mkdir(parents=True, exist_ok=True)
  manifest_path = output / MANIFEST
  manifest = atomic_files.read_json(manifest_path) if manifest_path.exists() else {}
  failures = {}
  used_names = {entry['file'] for entry in manifest.values()}
  for url in urls:
    entry = manifest.get(url)
    if entry and (output / entry['file']).exists():
      continue
    if '://' not in url:
      url = pathlib.Path(url).resolve().as_uri()
    name = entry['file'] if entry else file_name_for(url)
    stem, suffix = os.path.splitext(name)
    counter = 1
    while not entry and name in used_names:
      counter += 1
      name = f'{stem}_{counter}{suffix}'
    part = output / f'{name}.part'
    error = _download_with_retries(url, part, retries, timeout_s)
    if error:
      failures[url] = error
      log(f'collect: {url}: {error}')
      continue
    os.replace(part, output / name)
    used_names.add(name)
    manifest[url] = {'file': name, 'bytes': (output / name).stat().st_size,
                     'sha256': _sha256(output / name)}
    atomic_files.write_json(manifest_path, manifest)
    log(f'collect: {name} ({manifest[url]["bytes"] / 1e6:.1f} MB)')
  return {'collected': manifest, 'failed': failures}


def _download_with_retries(url: str, part: pathlib.Path, retries: int,
                           timeout_s: float) -> str | None:
  """None on success, else a one-line reason. Client errors (4xx) are not retried."""
  error = None
  for attempt in range(retries):
    try:
      _download(url, part, timeout_s)
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
  if len(argv) > 1:
    sys.exit(f'collect: unexpected arguments: {" ".join(argv[1:])}')
  config = flags.FLAGS
  if not os.path.isfile(config.urls):
    sys.exit(f'collect: --urls={config.urls}: no such file')
  urls = read_url_list(config.urls)
  result = collect(urls, config.output_dir, config.retries, config.timeout_s)
  print(f'{len(result["collected"])} files in {config.output_dir}, {len(result["failed"])} failed')
  if urls and not result['collected']:
    sys.exit('collect: nothing could be collected')


def run():
  flags.DEFINE_string('urls', None, 'Text file: one URL or path per line.')
  flags.DEFINE_string('output_dir', None, 'Where the files go (then prepare --input_dir).')
  flags.DEFINE_integer('retries', 3, 'Tries per URL (network errors and 5xx only).')
  flags.DEFINE_float('timeout_s', 60.0, 'Socket timeout per request.')
  flags.mark_flags_as_required(['urls', 'output_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
