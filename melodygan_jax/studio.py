r"""Make music from a trained run live in the browser.

  python -m melodygan_jax.studio --workdir=runs/gan [--vocoder_workdir=runs/vocoder] \
      [--host=127.0.0.1] [--port=8000] [--max_upload_mb=50]

Loads the run, compiles a short piece and a stream's first windows, then
serves the studio (generation/studio.py) and prints its URL: generate pieces
of 1 s to 10 min from a seed, in a style or a morph, loops, continuations of
an uploaded clip, and an endless stream to steer. It listens on 127.0.0.1
only, unless --host says otherwise (then anyone who reaches that address can
use it and upload files: a warning says so).
"""
import sys

from absl import app
from absl import flags

from melodygan_jax import errors
from melodygan_jax.generation import sampling
from melodygan_jax.generation import studio as studio_lib

LOCAL_HOSTS = ('127.0.0.1', 'localhost', '::1')


def main(argv):
  config = flags.FLAGS
  with errors.exit_on_user_error('studio'):
    if len(argv) > 1:
      raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    if not 0 < config.port < 65536:
      raise errors.UserError(f'--port={config.port}: must be in [1, 65535]')
    if not config.max_upload_mb > 0:
      raise errors.UserError(f'--max_upload_mb={config.max_upload_mb:g}: must be > 0')
    model = sampling.load(config.workdir, config.vocoder_workdir)
  import uvicorn  # pylint: disable=g-import-not-at-top
  print('studio: compiling (a short piece and a stream\'s first windows)...', flush=True)
  application = studio_lib.create_app(model, max_upload_mb=config.max_upload_mb, warm_up=True)
  if config.host not in LOCAL_HOSTS:
    print(f'studio: warning: listening on {config.host}, not 127.0.0.1: anyone who can reach '
          'it can generate and upload files', file=sys.stderr, flush=True)
  host = f'[{config.host}]' if ':' in config.host else config.host
  server = uvicorn.Server(uvicorn.Config(application, host=config.host, port=config.port,
                                         log_level='warning', ws_max_size=2**20))
  original_startup = server.startup

  async def startup(sockets=None):
    await original_startup(sockets)
    if server.started:
      print(f'studio: open http://{host}:{config.port}/', flush=True)

  server.startup = startup
  server.run()


def run():
  flags.DEFINE_string('workdir', None, 'A finished configs/gan.py run.')
  flags.DEFINE_string('vocoder_workdir', None, 'A finished configs/vocoder.py run that turns '
                      'log-mel into audio (default: Griffin-Lim).')
  flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on; another than 127.0.0.1 '
                      'lets other machines in (a warning is printed).')
  flags.DEFINE_integer('port', 8000, 'Port to listen on.')
  flags.DEFINE_float('max_upload_mb', 50.0, 'Largest upload accepted, in MiB.')
  flags.mark_flags_as_required(['workdir'])
  app.run(main)


if __name__ == '__main__':
  run()
