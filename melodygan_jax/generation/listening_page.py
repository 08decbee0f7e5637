"""The listening page: generated clips beside real held-out music, with readable spectrograms.

index.html opens from disk, with no server. Each clip has a player and its
spectrogram wrapped into rows of `ROW_SECONDS`, with a frequency axis (Hz on the
mel scale) and a time axis per row, and a cursor that follows playback (click
a row to seek). A metrics table, when given, shows each figure with its
interval; each generated clip can carry its music profile
(audio/music_structure.py) beside the range real held-out clips span.
"""
import html
import math
import os

import librosa
import numpy as np

from melodygan_jax import atomic_files
from melodygan_jax.audio import audio_io
from melodygan_jax.audio import contract
from melodygan_jax.audio import music_structure
from melodygan_jax.audio import spectrogram_image

ROW_SECONDS = 10.0
PIXELS_PER_BAND = 2
# Frames past the last whole row that get no row of their own: the centred STFT's
# last frame and the codec's rounding up to its stride (a 10 s sample has 864
# frames for 861 per row), not audio a listener would miss.
_OVERHANG_FRAMES = 8
FLOOR_PERCENTILES = (10, 90)  # The real clips' range a sample's profile is shown beside.
_FREQUENCY_TICKS_HZ = (0, 500, 1000, 2000, 4000, 8000, 11000)

_STYLE = '''
body{font-family:sans-serif;margin:2em;max-width:80em}
figure{margin:0 0 2.5em 0} figcaption{font-weight:bold;margin-bottom:.3em}
audio{width:32em;max-width:100%}
.row{display:grid;grid-template-columns:4.5em 1fr;margin-top:.2em}
.freq{position:relative;font-size:11px;color:#444}
.freq span{position:absolute;right:.4em;transform:translateY(50%);white-space:nowrap}
.slice{position:relative;overflow:hidden;cursor:pointer;background:#000}
.slice img{display:block;width:100%;image-rendering:pixelated}
.cursor{position:absolute;top:0;bottom:0;width:2px;background:#0f0;display:none}
.time{position:relative;height:1.3em;font-size:11px;color:#444}
.time span{position:absolute;transform:translateX(-50%);white-space:nowrap}
table{border-collapse:collapse;margin:1em 0} td,th{padding:.2em .8em;border-bottom:1px solid #ddd}
td.num{text-align:right;font-variant-numeric:tabular-nums}
'''

# Moves each clip's cursor to the audio's position: on seeks, on timeupdate and,
# while playing, every animation frame (timeupdate alone fires ~4 times a second).
_SCRIPT = '''
for (const figure of document.querySelectorAll('figure[data-row-seconds]')) {
  const audio = figure.querySelector('audio');
  const rowSeconds = parseFloat(figure.dataset.rowSeconds);
  const slices = [...figure.querySelectorAll('.slice')];
  const place = () => {
    const row = Math.min(Math.floor(audio.currentTime / rowSeconds), slices.length - 1);
    slices.forEach((slice, index) => {
      const cursor = slice.querySelector('.cursor');
      cursor.style.display = index === row ? 'block' : 'none';
      if (index === row) {
        cursor.style.left = (100 * (audio.currentTime - row * rowSeconds) / rowSeconds) + '%';
      }
    });
  };
  const follow = () => { place(); if (!audio.paused) requestAnimationFrame(follow); };
  place();
  audio.addEventListener('timeupdate', place);
  audio.addEventListener('seeked', place);
  audio.addEventListener('play', follow);
  slices.forEach((slice, index) => slice.addEventListener('click', event => {
    const box = slice.getBoundingClientRect();
    audio.currentTime = (index + (event.clientX - box.left) / box.width) * rowSeconds;
  }));
}
'''


def frames_per_row() -> int:
  return int(round(ROW_SECONDS * contract.SAMPLE_RATE_HZ / contract.HOP_LENGTH))


def write_spectrogram(path: str | os.PathLike, log_mel: np.ndarray) -> int:
  """Writes a clip's wrapped spectrogram PNG; returns its number of rows.

  A clip shorter than a row is one row of its own length; a few frames past
  whole rows (up to _OVERHANG_FRAMES) are dropped rather than drawn as a row
  that is all padding.
  """
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  overhang = len(log_mel) % frames_per_row()
  if len(log_mel) > frames_per_row() and overhang <= _OVERHANG_FRAMES:
    log_mel = log_mel[:len(log_mel) - overhang]
  row_frames = min(frames_per_row(), len(log_mel))
  image = spectrogram_image.spectrogram_rows(log_mel, row_frames, float(log_mel.min()),
                                             float(log_mel.max()), PIXELS_PER_BAND)
  with atomic_files.atomic_path(path) as tmp_path:
    pyplot.imsave(tmp_path, image, format='png', metadata={'Software': None})
  return image.shape[0] // (contract.NUM_MELS * PIXELS_PER_BAND)


def _frequency_axis() -> str:
  top = librosa.hz_to_mel(contract.MEL_FMAX_HZ)
  spans = []
  for hz in _FREQUENCY_TICKS_HZ:
    if hz <= contract.MEL_FMAX_HZ:
      bottom = 100 * (librosa.hz_to_mel(hz) - librosa.hz_to_mel(contract.MEL_FMIN_HZ)) / top
      label = f'{hz // 1000} kHz' if hz >= 1000 else f'{hz} Hz'
      spans.append(f'<span style="bottom:{bottom:.2f}%">{label}</span>')
  return f'<div class="freq">{"".join(spans)}</div>'


def _time_axis(row: int, seconds: float, row_seconds: float) -> str:
  """Tick labels under one row, every second (every 2 s for rows over 12 s)."""
  step = 1.0 if row_seconds <= 12 else 2.0
  ticks = []
  for k in range(int(row_seconds / step + 1e-6) + 1):
    t = row * row_seconds + k * step
    if t > seconds + 1e-6:
      break
    ticks.append(f'<span style="left:{100 * k * step / row_seconds:.2f}%">{t:g} s</span>')
  return f'<div class="time">{"".join(ticks)}</div>'


def clip_figure(label: str, wav: str, png: str, seconds: float, rows: int,
                note: str = '') -> str:
  """One clip: caption, player and its spectrogram rows with axes and a cursor.

  Rows span ROW_SECONDS each across the page; a clip shorter than that is one
  row as wide as its share of ROW_SECONDS, so every clip has the same time scale.
  `note` (HTML, e.g. `profile_note`) goes under the player.
  """
  height = contract.NUM_MELS * PIXELS_PER_BAND
  row_seconds = ROW_SECONDS if rows > 1 else min(seconds, ROW_SECONDS)
  width = frames_per_row() if rows > 1 else max(1, round(
      row_seconds * contract.SAMPLE_RATE_HZ / contract.HOP_LENGTH))
  share = 100 * row_seconds / ROW_SECONDS
  parts = [f'<figure data-row-seconds="{row_seconds:.6g}"><figcaption>{html.escape(label)} '
           f'&middot; {seconds:.2f} s</figcaption>'
           f'<audio controls preload="metadata" src="{html.escape(wav)}"></audio>' + note]
  for row in range(rows):
    # A percentage margin is relative to the width: this shifts the stacked
    # image up by `row` row heights, so the slice shows row `row` only.
    parts.append(
        f'<div class="row">{_frequency_axis()}<div style="width:{share:.3f}%">'
        f'<div class="slice" style="aspect-ratio:{width}/{height}">'
        f'<img src="{html.escape(png)}" alt="spectrogram of {html.escape(label)}, row {row + 1}"'
        f' style="margin-top:-{100 * row * height / width:.4f}%">'
        f'<div class="cursor"></div></div></div>'
        f'<div></div><div style="width:{share:.3f}%">{_time_axis(row, seconds, row_seconds)}'
        '</div></div>')
  parts.append('</figure>')
  return ''.join(parts)


def floor_ranges(metrics: dict | None) -> dict[str, tuple[float, float]]:
  """Profile entry -> the 10th-90th percentile of the real floor's clips in `metrics`."""
  floor = (metrics or {}).get('floor/profile', {})
  ranges = {}
  for entry, summary in floor.items():
    values = [value for value in summary.get('per_clip', []) if value is not None]
    if values:
      low, high = np.percentile(values, FLOOR_PERCENTILES)
      ranges[entry] = (float(low), float(high))
  return ranges


def profile_note(wav_path: str | os.PathLike, metrics: dict | None = None) -> str:
  """A small table of a clip's music profile, beside the real floor's range when known.

  Args:
    wav_path: the clip as written (read back, so the page shows what is heard).
    metrics: an evaluate output; its 'floor/profile' gives the real clips' range.

  Returns:
    HTML; an entry outside the real range is marked.
  """
  profile = music_structure.clip_profile(audio_io.read_mono(wav_path))
  ranges = floor_ranges(metrics)
  low_pct, high_pct = FLOOR_PERCENTILES
  header = ('<tr><th>profile</th><th>this clip</th>'
            + (f'<th>real clips (p{low_pct}-p{high_pct})</th>' if ranges else '') + '</tr>')
  rows = []
  for entry, value in zip(music_structure.PROFILE_ENTRIES, profile):
    shown = 'null' if not math.isfinite(value) else f'{value:.3g}'
    cells = f'<td>{entry}</td><td class="num">{shown}</td>'
    if ranges:
      low, high = ranges.get(entry, (math.nan, math.nan))
      outside = math.isfinite(value) and math.isfinite(low) and not low <= value <= high
      cells = (f'<td>{entry}</td><td class="num">{shown}{" &#9888;" if outside else ""}</td>'
               + (f'<td class="num">{low:.3g} to {high:.3g}</td>' if math.isfinite(low)
                  else '<td></td>'))
    rows.append(f'<tr>{cells}</tr>')
  return f'<details><summary>music profile</summary><table>{header}{"".join(rows)}</table></details>'


def _format_metric(value) -> tuple[str, str]:
  if isinstance(value, dict) and 'value' in value:
    interval = (f'[{value["low"]:.4g}, {value["high"]:.4g}]'
                if 'low' in value and 'high' in value else '')
    return f'{value["value"]:.4g}', interval
  if isinstance(value, float) and math.isfinite(value):
    return f'{value:.4g}', ''
  return html.escape(str(value)), ''


def metrics_table(metrics: dict) -> str:
  """Each figure with its interval ({'value', 'low', 'high'} entries) or alone."""
  rows = []
  for name, value in metrics.items():
    if name.endswith('/profile'):  # One row per entry; the per-clip values stay in the JSON.
      for entry, summary in value.items():
        shown, interval = _format_metric(summary)
        if summary.get('value') is None:
          shown, interval = 'null', html.escape(summary.get('note', ''))
        elif summary.get('z_vs_floor') is not None:
          interval += f' z {summary["z_vs_floor"]:+.2f}'
        rows.append(f'<tr><td>{html.escape(name)}/{entry}</td><td class="num">{shown}</td>'
                    f'<td class="num">{interval}</td></tr>')
      continue
    shown, interval = _format_metric(value)
    rows.append(f'<tr><td>{html.escape(name)}</td><td class="num">{shown}</td>'
                f'<td class="num">{interval}</td></tr>')
  return ('<table><tr><th>metric</th><th>value</th><th>95% interval</th></tr>'
          + ''.join(rows) + '</table>')


def write_page(path: str | os.PathLike, title: str, intro: str, sections: list[tuple],
               metrics: dict | None = None) -> None:
  """Writes index.html.

  Args:
    path: where the page goes (clips are referenced relative to it).
    title: the page title.
    intro: a paragraph of plain text under the title.
    sections: (heading, note, [clip figure HTML]) in order.
    metrics: shown as a table when given.
  """
  body = [f'<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>']
  if metrics:
    body.append('<h2>Metrics</h2>' + metrics_table(metrics))
  for heading, note, figures in sections:
    body.append(f'<h2>{html.escape(heading)}</h2>')
    if note:
      body.append(f'<p>{html.escape(note)}</p>')
    body.extend(figures)
  page = (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
          f'</title><style>{_STYLE}</style></head>\n<body>\n' + '\n'.join(body)
          + f'\n<script>{_SCRIPT}</script>\n</body></html>\n')
  with atomic_files.atomic_path(path) as tmp_path:
    tmp_path.write_text(page)
