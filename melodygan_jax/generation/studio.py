"""The studio: a trained run as a local web app that makes music on request and without end.

  app = studio.create_app(sampling.load('runs/gan'))   # an ASGI app; serve it with uvicorn

Routes (docs/studio.md has the details):
  GET  /                      the page (studio_page/index.html)
  GET  /api/info              the run, the limits, the stream's unit
  POST /api/generate          JSON {seconds, seed, style_seed?, morph_to_seed?, style_id?,
                              morph_to_style_id?, loop?} -> audio/wav
  POST /api/continue          multipart file, seconds, seed[, prompt_seconds] -> audio/wav
  POST /api/style             multipart file[, seed] -> JSON {style_id, ...}
  GET  /api/results           what is kept, newest last, with the settings that make each again
  GET  /api/results/{id}.wav  .png (its spectrogram) and /figure (the player, as the
                              listening page draws it)
  WS   /api/stream?seed=N     PCM chunks without end; steer with JSON text messages

Starlette on uvicorn, because the studio is a few routes, one WebSocket and
multipart uploads over a model that must be called one request at a time: an
ASGI toolkit with exactly those parts (python-multipart for the forms, a test
client that runs the app in-process), async so that waiting uploads and open
streams cost no threads, and small enough to read whole. A framework with
its own ORM, templates and admin would be mostly unused; hand-written HTTP
would be ours to keep safe.

Safety: the server binds to 127.0.0.1 unless told otherwise (the CLI warns);
a request body is read up to --max_upload_mb and refused past it; an upload
is written under a fixed name in a temporary folder that is removed after
decoding, so its file name never reaches the file system; every JAX call runs
on one worker thread, in the order requests arrive (JAX work is never
interleaved; a request beyond `max_queue` waiting is answered 503 at once);
results and uploaded styles are kept in bounded caches, so memory does not
grow with the number of requests. Every error is a 4xx/5xx with JSON
{"error": "one line"}.
"""
import asyncio
import collections
import concurrent.futures
import dataclasses
import hashlib
import importlib.resources
import io
import itertools
import json
import math
import os
import re
import tempfile
import time

import numpy as np
import soundfile
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Route
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from starlette.websockets import WebSocketDisconnect

from melodygan_jax import errors
from melodygan_jax.audio import contract
from melodygan_jax.audio import spectrogram_image
from melodygan_jax.generation import listening_page
from melodygan_jax.generation import sampling
from melodygan_jax.generation import stream as stream_lib
from melodygan_jax.generation import style as style_lib
from melodygan_jax.generation import user_audio
from melodygan_jax.runs import loading

MIN_SECONDS, MAX_SECONDS = 1.0, 600.0
MAX_UPLOAD_SECONDS = 600.0  # Decoded length of an upload; longer files are refused.
MAX_QUEUE = 16  # Requests waiting for the model; more are answered 503.
KEPT_RESULTS = 32  # Results kept for download and their page entries, at most...
KEPT_RESULTS_BYTES = 256 * 2**20  # ...and at most this much audio, log-mel and PNG.
KEPT_STYLES = 64
STREAM_LEAD_SECONDS = 2.0  # How far a stream runs ahead of its listener.
FORM_SLACK_BYTES = 64 * 1024  # The form's other fields and boundaries, beyond the file.


class StudioError(errors.UserError):
  """A request the studio cannot serve: an HTTP status and one line."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status


@dataclasses.dataclass
class Result:
  """A finished piece, kept for download and the page."""
  id: str
  kind: str
  settings: dict
  wav: bytes
  log_mel: np.ndarray
  seconds: float
  extra: dict
  png: bytes | None = None
  rows: int = 1  # Of the spectrogram, once rendered.

  @property
  def size(self) -> int:
    return len(self.wav) + self.log_mel.nbytes + len(self.png or b'')

  def describe(self) -> dict:
    return {'id': self.id, 'kind': self.kind, 'settings': self.settings,
            'seconds': self.seconds, 'wav': f'/api/results/{self.id}.wav',
            'png': f'/api/results/{self.id}.png', 'figure': f'/api/results/{self.id}/figure',
            **{key: value for key, value in self.extra.items() if key != 'window_joins'}}


def wav_bytes(audio: np.ndarray) -> bytes:
  """16-bit mono WAV, the values audio_io.write_wav writes (floor(x * 32768), clipped)."""
  pcm = np.clip(np.floor(np.asarray(audio, np.float32) * 32768.0), -32768, 32767).astype(
      np.int16)
  buffer = io.BytesIO()
  soundfile.write(buffer, pcm, contract.SAMPLE_RATE_HZ, subtype='PCM_16', format='WAV')
  return buffer.getvalue()


def pcm16(audio: np.ndarray) -> bytes:
  """Little-endian 16-bit PCM, as in wav_bytes."""
  return np.clip(np.floor(np.asarray(audio, np.float32) * 32768.0), -32768, 32767).astype(
      '<i2').tobytes()


def spectrogram_png(log_mel: np.ndarray) -> tuple[bytes, int]:
  """The listening page's wrapped spectrogram of `log_mel` as PNG bytes, and its rows."""
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  row_frames = min(listening_page.frames_per_row(), len(log_mel))
  image = spectrogram_image.spectrogram_rows(log_mel, row_frames, float(log_mel.min()),
                                             float(log_mel.max()),
                                             listening_page.PIXELS_PER_BAND)
  buffer = io.BytesIO()
  pyplot.imsave(buffer, image, format='png', metadata={'Software': None})
  return buffer.getvalue(), image.shape[0] // (contract.NUM_MELS * listening_page.PIXELS_PER_BAND)


def safe_suffix(filename: str) -> str:
  """The extension of an uploaded name, if plain (decoders may look at it), else none."""
  suffix = os.path.splitext(os.path.basename(filename.replace('\\', '/')))[1].lower()
  return suffix if re.fullmatch(r'\.[a-z0-9]{1,8}', suffix) else ''


def shown_name(filename: str) -> str:
  """An uploaded name as messages show it: printable, one line, short."""
  name = ''.join(c if c.isprintable() else '?' for c in filename or 'upload')
  return name[:80]


class Studio:
  """One loaded model, its worker thread, and what it keeps between requests."""

  def __init__(self, model: sampling.Model, max_upload_mb: float = 50.0,
               max_queue: int = MAX_QUEUE, max_upload_seconds: float = MAX_UPLOAD_SECONDS,
               stream_lead_seconds: float = STREAM_LEAD_SECONDS):
    self.model = model
    self.max_upload_bytes = int(max_upload_mb * 2**20)
    self.max_upload_seconds = max_upload_seconds
    self.max_queue = max_queue
    self.stream_lead_seconds = stream_lead_seconds
    self.executor = concurrent.futures.ThreadPoolExecutor(1, 'studio-model')
    self.waiting = 0
    self.results: collections.OrderedDict[str, Result] = collections.OrderedDict()
    self.styles: collections.OrderedDict[str, tuple[np.ndarray, dict]] = (
        collections.OrderedDict())
    self._ids = itertools.count(1)

  async def run(self, function, *args):
    """Runs `function(*args)` on the model's thread, after the requests before it."""
    if self.waiting >= self.max_queue:
      raise StudioError(503, f'busy: {self.waiting} requests are waiting; try again shortly')
    self.waiting += 1
    try:
      return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)
    finally:
      self.waiting -= 1

  def keep(self, kind: str, settings: dict, piece: sampling.Piece) -> Result:
    result = Result(id=f'r{next(self._ids)}', kind=kind, settings=settings,
                    wav=wav_bytes(piece.audio), log_mel=np.asarray(piece.log_mel, np.float32),
                    seconds=len(piece.audio) / contract.SAMPLE_RATE_HZ,
                    extra=dict(piece.extra))
    self.results[result.id] = result
    while len(self.results) > 1 and (
        len(self.results) > KEPT_RESULTS
        or sum(kept.size for kept in self.results.values()) > KEPT_RESULTS_BYTES):
      self.results.popitem(last=False)
    return result

  def style(self, style_id: str, field: str) -> np.ndarray:
    if style_id not in self.styles:
      raise StudioError(404, f'{field}={style_id}: no such style (upload the clip again)')
    self.styles.move_to_end(style_id)
    return self.styles[style_id][0]

  # Work on the model's thread.

  def generate(self, settings: dict) -> Result:
    model = self.model
    first = None
    if settings.get('style_id'):
      first = self.style(settings['style_id'], 'style_id')
    elif settings.get('style_seed') is not None:
      first = stream_lib.style_of_seed(model.generator, settings['style_seed'])
    second = None
    if settings.get('morph_to_style_id'):
      second = self.style(settings['morph_to_style_id'], 'morph_to_style_id')
    elif settings.get('morph_to_seed') is not None:
      second = stream_lib.style_of_seed(model.generator, settings['morph_to_seed'])
    seed, seconds, loop = settings['seed'], settings['seconds'], settings['loop']
    if second is not None:
      first = first if first is not None else stream_lib.style_of_seed(model.generator, seed)
    styles = [style for style in (first, second) if style is not None]
    if styles:
      piece, = sampling.styled(model, styles, seed, [0], seconds, loop_pieces=loop)
    elif loop:
      piece, = sampling.loop(model, seed, [0], seconds)
    else:
      piece, = sampling.free(model, seed, [0], seconds)
    return self.keep('loop' if loop else 'piece', settings, piece)

  def decode_upload(self, data: bytes, filename: str, folder: str) -> str:
    """Writes the upload's decoded samples (checked) into `folder`; returns that path.

    The samples are written as 32-bit float WAV at the contract's rate, which
    reads back exactly, so the model hears what it would from the original.
    """
    name = shown_name(filename)
    if not data:
      raise StudioError(400, f'file {name}: empty')
    path = os.path.join(folder, 'upload' + safe_suffix(filename))
    with open(path, 'wb') as f:
      f.write(data)
    try:
      samples = user_audio.read_clip(path, 'file')
    except user_audio.AudioInputError as e:
      raise StudioError(415, f'file {name}: not audio that can be decoded '
                        f'({str(e).split("(", 1)[-1].rstrip(")")[:120]})') from e
    seconds = len(samples) / contract.SAMPLE_RATE_HZ
    if not len(samples) or not np.all(np.isfinite(samples)):
      raise StudioError(400, f'file {name}: no audio in it')
    if seconds > self.max_upload_seconds:
      raise StudioError(413, f'file {name}: {seconds:.0f} s of audio, longer than '
                        f'{self.max_upload_seconds:g} s')
    decoded = os.path.join(folder, 'decoded.wav')
    soundfile.write(decoded, samples, contract.SAMPLE_RATE_HZ, subtype='FLOAT', format='WAV')
    return decoded

  def continue_upload(self, data: bytes, filename: str, settings: dict) -> Result:
    name = shown_name(filename)
    with tempfile.TemporaryDirectory(prefix='melodygan-studio-') as folder:
      path = self.decode_upload(data, filename, folder)
      try:
        prompt = sampling.load_prompt(self.model, path, settings['prompt_seconds'])
      except user_audio.AudioInputError as e:
        message = str(e).replace(path, name).replace('--prompt_seconds', 'prompt_seconds')
        raise StudioError(422, message.replace('--prompt', 'file')) from e
    piece, = sampling.continuation(self.model, prompt, settings['seed'], [0],
                                   settings['seconds'])
    return self.keep('continuation', settings, piece)

  def find_style(self, data: bytes, filename: str, seed: int) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    style_id = f's{digest[:16]}-{seed}'
    if style_id in self.styles:
      self.styles.move_to_end(style_id)
      return self.styles[style_id][1]
    name = shown_name(filename)
    with tempfile.TemporaryDirectory(prefix='melodygan-studio-') as folder:
      path = self.decode_upload(data, filename, folder)
      try:
        style = sampling.find_style(self.model, path, seed)
      except user_audio.AudioInputError as e:
        raise StudioError(422, str(e).replace(path, name).replace('--style_from', 'file')) from e
    entry = {'style_id': style_id, 'name': name, 'sha256': digest, 'seed': seed}
    self.styles[style_id] = (style, entry)
    while len(self.styles) > KEPT_STYLES:
      self.styles.popitem(last=False)
    return entry

  def render_png(self, result: Result) -> bytes:
    if result.png is None:
      result.png, result.rows = spectrogram_png(result.log_mel)
    return result.png

  def stream_style(self, settings: dict) -> np.ndarray:
    """The style a stream's controls ask for: A, or A morphed towards B by `morph`."""
    generator = self.model.generator

    def one(seed_field, id_field, default_seed):
      if settings.get(id_field):
        return self.style(settings[id_field], id_field)
      seed = settings.get(seed_field)
      return stream_lib.style_of_seed(generator, default_seed if seed is None else seed)

    first = one('style_seed', 'style_id', settings['seed'])
    if settings.get('morph_to_seed') is None and not settings.get('morph_to_style_id'):
      return first
    second = one('morph_to_seed', 'morph_to_style_id', settings['seed'])
    return style_lib.slerp(first, second, float(settings.get('morph', 0.0)))

  def warm_up(self) -> None:
    """Compiles what the first requests run: a short piece and a stream's first units."""
    sampling.free(self.model, 0, [0], MIN_SECONDS)
    stream = stream_lib.Stream(self.model, seed=0)
    for _ in range(3):
      stream.next_chunk()


# Request parsing: one line per mistake, naming the field.

def _integer(value, field: str, required: bool = True) -> int | None:
  if value is None or value == '':
    if required:
      raise StudioError(400, f'{field}: missing')
    return None
  try:
    number = int(value)
  except (TypeError, ValueError) as e:
    raise StudioError(400, f'{field}={value!r}: not an integer') from e
  if isinstance(value, float) and value != number or isinstance(value, bool):
    raise StudioError(400, f'{field}={value!r}: not an integer')
  if not 0 <= number < 2**31:
    raise StudioError(400, f'{field}={number}: must be in [0, 2^31)')
  return number


def _seconds(value, field: str, low: float, high: float, required: bool = True):
  if value is None or value == '':
    if required:
      raise StudioError(400, f'{field}: missing')
    return None
  try:
    number = float(value)
  except (TypeError, ValueError) as e:
    raise StudioError(400, f'{field}={value!r}: not a number') from e
  if not (math.isfinite(number) and low <= number <= high):
    raise StudioError(400, f'{field}={value!r}: must be in [{low:g}, {high:g}] seconds')
  return number


def generate_settings(body) -> dict:
  if not isinstance(body, dict):
    raise StudioError(400, 'the body must be a JSON object')
  known = {'seconds', 'seed', 'style_seed', 'morph_to_seed', 'style_id', 'morph_to_style_id',
           'loop'}
  unknown = sorted(set(body) - known)
  if unknown:
    raise StudioError(400, f'{unknown[0]}: unknown field (known: {", ".join(sorted(known))})')
  loop = body.get('loop', False)
  if not isinstance(loop, bool):
    raise StudioError(400, f'loop={loop!r}: must be true or false')
  settings = {'seconds': _seconds(body.get('seconds'), 'seconds', MIN_SECONDS, MAX_SECONDS),
              'seed': _integer(body.get('seed', 0), 'seed'), 'loop': loop}
  for field in ('style_seed', 'morph_to_seed'):
    value = _integer(body.get(field), field, required=False)
    if value is not None:
      settings[field] = value
  for field in ('style_id', 'morph_to_style_id'):
    if body.get(field):
      settings[field] = str(body[field])
  if 'style_seed' in settings and 'style_id' in settings:
    raise StudioError(400, 'style_seed and style_id: choose one')
  if 'morph_to_seed' in settings and 'morph_to_style_id' in settings:
    raise StudioError(400, 'morph_to_seed and morph_to_style_id: choose one')
  return settings


async def read_form(request: Request, studio: Studio):
  """The multipart form of `request`, its body read up to the upload limit."""
  limit = studio.max_upload_bytes + FORM_SLACK_BYTES
  too_big = StudioError(413, f'upload larger than --max_upload_mb='
                        f'{studio.max_upload_bytes / 2**20:g}')
  length = request.headers.get('content-length')
  if length and length.isdigit() and int(length) > limit:
    raise too_big
  body = bytearray()
  async for chunk in request.stream():
    body += chunk
    if len(body) > limit:
      raise too_big
  if not request.headers.get('content-type', '').startswith('multipart/form-data'):
    raise StudioError(415, 'send a multipart/form-data form with a "file" field')
  sent = False

  async def receive():
    nonlocal sent
    if sent:
      return {'type': 'http.disconnect'}
    sent = True
    return {'type': 'http.request', 'body': bytes(body), 'more_body': False}

  try:
    form = await Request(request.scope, receive).form(max_files=1, max_fields=16)
  except HTTPException as e:
    raise StudioError(400, f'the form cannot be read: {e.detail}') from e
  upload = form.get('file')
  if upload is None or isinstance(upload, str):
    raise StudioError(400, 'file: missing (send the audio as the form field "file")')
  data = await upload.read()
  if len(data) > studio.max_upload_bytes:
    raise too_big
  return form, data, upload.filename or 'upload'


def create_app(model: sampling.Model, max_upload_mb: float = 50.0, max_queue: int = MAX_QUEUE,
               warm_up: bool = False,
               stream_lead_seconds: float = STREAM_LEAD_SECONDS) -> Starlette:
  """The studio as an ASGI app over a loaded model (`sampling.load`).

  Args:
    model: the run to make music with.
    max_upload_mb: the largest upload accepted.
    max_queue: requests that may wait for the model; more get 503.
    warm_up: compile a short piece and a stream's first units now, so the
      first request does not wait for compilation.
    stream_lead_seconds: how far a stream generates ahead of real time.
  """
  studio = Studio(model, max_upload_mb, max_queue, stream_lead_seconds=stream_lead_seconds)
  if warm_up:
    studio.warm_up()
  page = (importlib.resources.files('melodygan_jax.generation') / 'studio_page' /
          'index.html').read_text()
  # The listening page's look for the players and spectrograms.
  page = page.replace('/*LISTENING_PAGE_STYLE*/', listening_page._STYLE)  # pylint: disable=protected-access

  def wav_response(result: Result) -> Response:
    return Response(result.wav, media_type='audio/wav', headers={
        'X-Result-Id': result.id, 'X-Settings': json.dumps(result.settings, sort_keys=True),
        'Content-Disposition': f'inline; filename="{result.kind}-{result.id}.wav"'})

  async def index(request):
    return HTMLResponse(page)

  async def info(request):
    generator, vqvae = model.generator, model.vqvae
    return JSONResponse({
        'gan_workdir': os.path.abspath(generator.workdir), 'gan_step': generator.step,
        'vqvae_step': vqvae.step, 'sample_rate_hz': contract.SAMPLE_RATE_HZ,
        'window_seconds': generator.window_steps * model.code_samples / contract.SAMPLE_RATE_HZ,
        'min_seconds': MIN_SECONDS, 'max_seconds': MAX_SECONDS,
        'max_upload_mb': studio.max_upload_bytes / 2**20,
        'max_upload_seconds': studio.max_upload_seconds,
        'context_conditioned': model.is_context_conditioned,
        'vocoder': loading.describe_vocoder(model.vocoder)})

  async def generate(request):
    try:
      body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise StudioError(400, f'the body is not JSON ({e})') from e
    settings = generate_settings(body)
    return wav_response(await studio.run(studio.generate, settings))

  async def continue_clip(request):
    form, data, filename = await read_form(request, studio)
    settings = {'seconds': _seconds(form.get('seconds'), 'seconds', MIN_SECONDS, MAX_SECONDS),
                'seed': _integer(form.get('seed', '0'), 'seed'),
                'prompt_seconds': _seconds(form.get('prompt_seconds'), 'prompt_seconds', 0.01,
                                           MAX_UPLOAD_SECONDS, required=False),
                'file': shown_name(filename), 'file_sha256': hashlib.sha256(data).hexdigest()}
    return wav_response(await studio.run(studio.continue_upload, data, filename, settings))

  async def style(request):
    form, data, filename = await read_form(request, studio)
    seed = _integer(form.get('seed', '0'), 'seed')
    return JSONResponse(await studio.run(studio.find_style, data, filename, seed))

  def result_of(request) -> Result:
    result_id = request.path_params['id']
    if result_id not in studio.results:
      raise StudioError(404, f'result {result_id}: not kept (results are kept while memory '
                        'allows; make it again with its settings)')
    return studio.results[result_id]

  async def results(request):
    return JSONResponse([result.describe() for result in studio.results.values()])

  async def result_wav(request):
    return wav_response(result_of(request))

  async def result_png(request):
    result = result_of(request)
    return Response(await studio.run(studio.render_png, result), media_type='image/png')

  async def result_figure(request):
    result = result_of(request)
    await studio.run(studio.render_png, result)
    label = f'{result.kind} {result.id}: ' + ', '.join(
        f'{key}={json.dumps(value)}' for key, value in result.settings.items()
        if key not in ('file_sha256',) and value is not None)
    return HTMLResponse(listening_page.clip_figure(
        label, f'/api/results/{result.id}.wav', f'/api/results/{result.id}.png',
        result.seconds, result.rows))

  async def stream(websocket: WebSocket):
    await websocket.accept()
    try:
      params = websocket.query_params
      settings = {'seed': _integer(params.get('seed', '0'), 'seed')}
      for field in ('style_seed', 'morph_to_seed'):
        settings[field] = _integer(params.get(field), field, required=False)
      for field in ('style_id', 'morph_to_style_id'):
        settings[field] = params.get(field) or None
      settings['morph'] = _seconds(params.get('morph', '0'), 'morph', 0.0, 1.0)
      player = await studio.run(lambda: stream_lib.Stream(
          model, settings['seed'], studio.stream_style(settings)))
    except StudioError as e:
      await websocket.send_json({'error': str(e)})
      await websocket.close(code=1008)
      return
    await websocket.send_json({'sample_rate_hz': contract.SAMPLE_RATE_HZ,
                               'unit_samples': player.unit_samples, 'settings': settings})
    steering = dict(settings)

    async def listen():
      while True:
        try:
          message = json.loads(await websocket.receive_text())
        except (json.JSONDecodeError, KeyError, TypeError):  # Not JSON text: said, ignored.
          await websocket.send_json({'error': 'steer with JSON text messages'})
          continue
        if not isinstance(message, dict):
          continue
        update = {key: message[key] for key in ('style_seed', 'morph_to_seed', 'style_id',
                                                'morph_to_style_id', 'morph') if key in message}
        steering.update(update)
        try:
          style_now = studio.stream_style(steering)
        except (StudioError, TypeError, ValueError) as e:
          await websocket.send_json({'error': f'steer: {e}'})
          continue
        player.set_style(style_now)

    listener = asyncio.create_task(listen())
    started = time.monotonic()
    sent_seconds = 0.0
    try:
      while not listener.done():
        ahead = sent_seconds - (time.monotonic() - started)
        if ahead > studio.stream_lead_seconds:
          await asyncio.sleep(min(0.1, ahead - studio.stream_lead_seconds))
          continue
        chunk = await studio.run(player.next_chunk)
        await websocket.send_bytes(pcm16(chunk))
        sent_seconds += len(chunk) / contract.SAMPLE_RATE_HZ
    except (WebSocketDisconnect, RuntimeError, OSError):
      pass  # The listener went away.
    except StudioError as e:  # Busy: say so, then close.
      await websocket.send_json({'error': str(e)})
    finally:
      listener.cancel()

  async def error_line(request, error: Exception):
    if isinstance(error, StudioError):
      return JSONResponse({'error': str(error)}, status_code=error.status)
    if isinstance(error, HTTPException):
      return JSONResponse({'error': ' '.join(str(error.detail).split())},
                          status_code=error.status_code)
    if isinstance(error, errors.UserError):
      return JSONResponse({'error': ' '.join(str(error).split())}, status_code=422)
    return JSONResponse({'error': f'internal error: {type(error).__name__}: '
                         f'{" ".join(str(error).split())[:200]}'}, status_code=500)

  routes = [
      Route('/', index),
      Route('/api/info', info),
      Route('/api/generate', generate, methods=['POST']),
      Route('/api/continue', continue_clip, methods=['POST']),
      Route('/api/style', style, methods=['POST']),
      Route('/api/results', results),
      Route('/api/results/{id}.wav', result_wav),
      Route('/api/results/{id}.png', result_png),
      Route('/api/results/{id}/figure', result_figure),
      WebSocketRoute('/api/stream', stream),
  ]
  app = Starlette(routes=routes, exception_handlers={
      StudioError: error_line, HTTPException: error_line, errors.UserError: error_line,
      Exception: error_line})
  app.state.studio = studio
  return app
