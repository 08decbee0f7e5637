"""Downloads from streaming and media sites, playlists included, through yt-dlp.

collect sends here every URL that is not a direct link to an audio file: a
video or track page, a channel, a playlist, a podcast feed, any page with an
<audio>/<video> element. yt-dlp's download archive (OUTPUT_DIR/ARCHIVE) lists
each finished item, so a re-run fetches only what is new or unfinished; yt-dlp
downloads to `.part` files and renames them when complete.
"""
import dataclasses
import os
import pathlib
import re
import subprocess
from typing import Callable

import yt_dlp
from yt_dlp import postprocessor

from melodygan_jax.audio import audio_io

# Hidden, so prepare does not take it for a song.
ARCHIVE = '.yt-dlp-archive.txt'


@dataclasses.dataclass(frozen=True)
class MediaOptions:
  retries: int = 3
  timeout_s: float = 60.0
  rate_limit_bytes_s: float | None = None  # None: as fast as the site sends.
  max_duration_s: float | None = None  # Longer items are skipped; None: no limit.


@dataclasses.dataclass
class MediaOutcome:
  """What one URL gave: one line per skipped item and per error."""
  skipped: list[str] = dataclasses.field(default_factory=list)
  errors: list[str] = dataclasses.field(default_factory=list)


def download(url: str, output_dir: pathlib.Path, options: MediaOptions,
             on_item: Callable[[dict], None]) -> MediaOutcome:
  """Downloads every item behind `url` that the archive does not list yet.

  Args:
    url: a page, playlist or feed yt-dlp understands.
    output_dir: where the files go (their names: `Title [id].ext`).
    options: retries, timeout, rate limit and longest duration.
    on_item: called with `manifest_entry(...)` as soon as each item is
      finished, so a run killed mid-playlist keeps what it finished.

  Returns:
    The items skipped as too long and the errors, each one line.
  """
  outcome = MediaOutcome()
  output_dir = output_dir.resolve()  # yt-dlp may report paths absolute.

  def finished(info: dict) -> None:
    path = pathlib.Path(info['filepath'])
    duration_s = info.get('duration') or media_duration_s(path)
    reason = _too_long(info, duration_s, options.max_duration_s)
    if reason:  # The site did not state the duration: known only now.
      path.unlink()
      outcome.skipped.append(reason)
      return
    on_item(manifest_entry(info, url, path.relative_to(output_dir).as_posix(), duration_s))

  with yt_dlp.YoutubeDL(youtube_dl_options(output_dir, options, outcome)) as downloader:
    downloader.add_post_processor(_ReportFinished(finished), when='after_move')
    downloader.extract_info(url, download=True)
  return outcome


def youtube_dl_options(output_dir: pathlib.Path, options: MediaOptions,
                       outcome: MediaOutcome) -> dict:
  """yt-dlp's parameters for one URL; skipped items and errors go to `outcome`."""
  params = {
      'format': 'bestaudio/best',
      'outtmpl': str(output_dir / '%(title).100B [%(id)s].%(ext)s'),
      'download_archive': str(output_dir / ARCHIVE),
      'ffmpeg_location': audio_io.ffmpeg_executable(),
      'retries': options.retries,
      'fragment_retries': options.retries,
      'socket_timeout': options.timeout_s,
      'ignoreerrors': True,  # One broken item of a playlist must not stop the others.
      'logger': _ErrorCollector(outcome.errors),
      'quiet': True,
      'noprogress': True,
  }
  if options.rate_limit_bytes_s:
    params['ratelimit'] = options.rate_limit_bytes_s
  if options.max_duration_s is not None:
    params['match_filter'] = _duration_filter(options.max_duration_s, outcome.skipped)
  return params


def manifest_entry(info: dict, listed_url: str, file: str, duration_s: float | None) -> dict:
  """collect.json's record of one item: what it is, where from, under which license."""
  source_url = yt_dlp.utils.unsmuggle_url(
      info.get('webpage_url') or info.get('original_url') or listed_url)[0]
  return {
      'file': file,
      'title': info.get('title'),
      'uploader': (info.get('uploader') or info.get('channel') or info.get('artist')
                   or info.get('creator')),
      'duration_s': round(float(duration_s), 3) if duration_s else None,
      'source_url': source_url,
      'license': info.get('license'),  # Where the site states one.
      'listed_url': listed_url,
      'extractor': info.get('extractor_key') or info.get('extractor'),
      'id': info.get('id'),
  }


def media_duration_s(path: str | os.PathLike) -> float | None:
  """The container's duration by the bundled ffmpeg (no decoding), if it states one."""
  executable = audio_io.ffmpeg_executable()
  if not executable:
    return None
  result = subprocess.run([executable, '-hide_banner', '-i', str(path)], capture_output=True,
                          text=True, check=False)
  match = re.search(r'Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)', result.stderr)
  if not match:
    return None
  hours, minutes, seconds = match.groups()
  return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _too_long(info: dict, duration_s: float | None, max_duration_s: float | None) -> str | None:
  if max_duration_s is None or not duration_s or duration_s <= max_duration_s:
    return None
  name = info.get('title') or info.get('id') or 'an item'
  return f'skipped {name}: {duration_s:.0f} s, longer than --max_duration={max_duration_s:g}'


def _duration_filter(max_duration_s: float, skipped: list[str]):
  """yt-dlp's match_filter: skips items the site says are too long, before download."""

  def match_filter(info, *, incomplete):  # pylint: disable=unused-argument
    reason = _too_long(info, info.get('duration'), max_duration_s)
    if reason and reason not in skipped:  # yt-dlp asks more than once per item.
      skipped.append(reason)
    return reason

  return match_filter


class _ReportFinished(postprocessor.PostProcessor):
  """Runs after each item is in its final place."""

  def __init__(self, on_finished: Callable[[dict], None]):
    super().__init__()
    self._on_finished = on_finished

  def run(self, information):
    self._on_finished(information)
    return [], information


class _ErrorCollector:
  """yt-dlp's logger: errors become one line each; progress and warnings are dropped."""

  def __init__(self, errors: list[str]):
    self._errors = errors

  def debug(self, message):
    pass

  def info(self, message):
    pass

  def warning(self, message):
    pass

  def error(self, message):
    message = re.sub(r'^ERROR:\s*', '', ' '.join(str(message).split()))
    self._errors.append(re.sub(r' \(caused by .*\)$', '', message))
