"""The studio served on a localhost port, measured as its users meet it.

  python benchmarks/studio_bench.py --workdir=runs/gan [--vocoder_workdir=runs/vocoder]

Starts the app (generation/studio.py) under uvicorn in this process, after
the CLI's load and warm-up, and measures over HTTP and the WebSocket:
- time from request to first audio byte for a 60 s piece, the first time
  (compiling that length) and again with another seed;
- time from opening the stream to its first audio, and the seconds of audio
  made per second while streaming (the stream is let run ahead freely here;
  the page's stream runs STREAM_LEAD_SECONDS ahead of the listener);
- requests per minute with 4 clients each asking for 10 s pieces;
- resident memory of the process before, after 100 and after 200 requests of
  10 s (the studio keeps its last 32 results for download: memory rises until
  they are kept, then stays).
Ends with one JSON line of the figures.
"""
import argparse
import concurrent.futures
import json
import os
import pathlib
import resource
import socket
import sys
import threading
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import httpx  # pylint: disable=wrong-import-position
import jax  # pylint: disable=wrong-import-position
import uvicorn  # pylint: disable=wrong-import-position
from websockets.sync import client as websocket_client  # pylint: disable=wrong-import-position

from melodygan_jax.audio import contract  # pylint: disable=wrong-import-position
from melodygan_jax.generation import sampling  # pylint: disable=wrong-import-position
from melodygan_jax.generation import studio  # pylint: disable=wrong-import-position


def resident_mb() -> float:
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def first_byte_seconds(url: str, body: dict) -> tuple[float, float]:
  """(seconds to the first byte of the answer, seconds to its last)."""
  started = time.perf_counter()
  with httpx.stream('POST', f'{url}/api/generate', json=body, timeout=3600) as response:
    response.raise_for_status()
    first = None
    for _ in response.iter_bytes():
      first = first or time.perf_counter() - started
  return first, time.perf_counter() - started


def stream_figures(url: str, seconds_of_audio: float) -> dict:
  """Time to the stream's first audio, and audio seconds made per wall second after it."""
  host = url.replace('http://', 'ws://')
  started = time.perf_counter()
  with websocket_client.connect(f'{host}/api/stream?seed=1', max_size=2**24) as websocket:
    header = json.loads(websocket.recv())
    first = len(websocket.recv()) // 2
    first_audio_s = time.perf_counter() - started
    made, began = 0, time.perf_counter()
    while made < seconds_of_audio * contract.SAMPLE_RATE_HZ:
      message = websocket.recv()
      if isinstance(message, bytes):
        made += len(message) // 2
    elapsed = time.perf_counter() - began
  return {'stream_first_audio_s': first_audio_s,
          'stream_unit_s': header['unit_samples'] / contract.SAMPLE_RATE_HZ,
          'stream_first_unit_s': first / contract.SAMPLE_RATE_HZ,
          'stream_audio_s_per_s': made / contract.SAMPLE_RATE_HZ / elapsed}


def requests_per_minute(url: str, clients: int, seconds: float, duration_s: float) -> float:
  stop = time.perf_counter() + duration_s
  counts = [0] * clients

  def client(index):
    seed = 1000 * index
    with httpx.Client(base_url=url, timeout=3600) as http:
      while time.perf_counter() < stop:
        http.post('/api/generate', json={'seconds': seconds, 'seed': seed}).raise_for_status()
        counts[index] += 1
        seed += 1

  started = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(clients) as pool:
    list(pool.map(client, range(clients)))
  return 60.0 * sum(counts) / (time.perf_counter() - started)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True, help='A finished configs/gan.py run.')
  parser.add_argument('--vocoder_workdir', default=None)
  parser.add_argument('--requests', type=int, default=100, help='Memory is read after this '
                      'many requests and after twice as many.')
  parser.add_argument('--rpm_seconds', type=float, default=60.0,
                      help='How long the 4 clients ask.')
  args = parser.parse_args()

  started = time.perf_counter()
  model = sampling.load(args.workdir, args.vocoder_workdir)
  load_s = time.perf_counter() - started
  app = studio.create_app(model, warm_up=True, stream_lead_seconds=1e9)
  ready_s = time.perf_counter() - started
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
  server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=port, log_level='warning'))
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  while not server.started:
    time.sleep(0.05)
  url = f'http://127.0.0.1:{port}'

  figures = {'gan_workdir': os.path.abspath(args.workdir), 'device': jax.devices()[0].platform,
             'vocoder': 'neural' if args.vocoder_workdir else 'griffin_lim',
             'load_s': load_s, 'ready_s': ready_s}
  figures['piece_60s_first_audio_cold_s'], figures['piece_60s_total_cold_s'] = (
      first_byte_seconds(url, {'seconds': 60, 'seed': 0}))
  figures['piece_60s_first_audio_s'], figures['piece_60s_total_s'] = first_byte_seconds(
      url, {'seconds': 60, 'seed': 1})
  figures['piece_60s_audio_s_per_s'] = 60.0 / figures['piece_60s_total_s']
  figures.update(stream_figures(url, seconds_of_audio=30.0))
  figures['requests_per_minute_4_clients_10s'] = requests_per_minute(url, 4, 10.0,
                                                                     args.rpm_seconds)
  before = resident_mb()
  after = []
  with httpx.Client(base_url=url, timeout=3600) as http:
    for seed in range(2 * args.requests):
      http.post('/api/generate', json={'seconds': 10, 'seed': seed}).raise_for_status()
      if seed + 1 in (args.requests, 2 * args.requests):
        after.append(resident_mb())
  figures['resident_mb_before'] = before
  figures['resident_mb_after_100'], figures['resident_mb_after_200'] = after
  server.should_exit = True
  thread.join(30)

  rows = [
      ('ready (load + compile)', f'{ready_s:.1f} s'),
      ('60 s piece, first audio (cold / warm)',
       f'{figures["piece_60s_first_audio_cold_s"]:.2f} s / {figures["piece_60s_first_audio_s"]:.2f} s'),
      ('60 s piece, audio s per s', f'{figures["piece_60s_audio_s_per_s"]:.1f}'),
      ('stream, first audio', f'{figures["stream_first_audio_s"]:.2f} s '
       f'(units of {figures["stream_unit_s"]:.2f} s)'),
      ('stream, audio s per s', f'{figures["stream_audio_s_per_s"]:.1f}'),
      ('4 clients, 10 s pieces', f'{figures["requests_per_minute_4_clients_10s"]:.0f} per minute'),
      (f'resident memory, {args.requests} and {2 * args.requests} requests of 10 s',
       f'{before:.0f} MB -> {after[0]:.0f} MB -> {after[1]:.0f} MB'),
  ]
  width = max(len(name) for name, _ in rows)
  for name, value in rows:
    print(f'{name:<{width}}  {value}')
  print(json.dumps(figures))


if __name__ == '__main__':
  main()
