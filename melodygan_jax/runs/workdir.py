"""What a run folder (a training --workdir) holds, and the files every run writes and checks.

  WORKDIR/
    config.json               the resolved config, written when the run starts; paths absolute
    config.resumed.N.json     each resume that changed a resumable field
    normalization.json        the data set's statistics and feature version
    checkpoints/STEP/         Orbax checkpoints (runs/checkpoints.py)
    metrics.jsonl             one JSON row per logged step (TensorBoard events beside it)
    vqvae/                    a GAN's copy of its VQ-VAE: config, normalization, one checkpoint
    latents.npz, latents.json a GAN's codes of the data set and where they came from
    style_strength.json       a GAN's global-noise scale for sampling, and the step it is of
    features.json             a vocoder's mel settings

A finished workdir is self-contained: sampling and reconstruction read only
these files, so it can be copied anywhere without the data set.

A resumed run must be the same experiment: it may change only the fields in
`RESUMABLE_FIELDS` (how long and how often) and the `sweep` section, and each
such change is recorded as config.resumed.N.json with the difference printed.
Any other changed field is refused with one line.
"""
import json
import os

from absl import logging
import ml_collections

from melodygan_jax import atomic_files
from melodygan_jax import errors
from melodygan_jax.audio import contract
from melodygan_jax.data import normalization as normalization_lib


CONFIG_FILENAME = 'config.json'
NORMALIZATION_FILENAME = normalization_lib.NORMALIZATION_FILENAME
CHECKPOINTS_DIRNAME = 'checkpoints'
METRICS_FILENAME = 'metrics.jsonl'
VQVAE_COPY_DIRNAME = 'vqvae'  # In a GAN workdir: the VQ-VAE it was trained on.
LATENTS_FILENAME = 'latents.npz'  # In a GAN workdir, with latents.json beside it.
STYLE_STRENGTH_FILENAME = 'style_strength.json'  # In a GAN workdir (runs/style_strength.py).
FEATURES_FILENAME = 'features.json'  # In a vocoder workdir.

RESUMABLE_FIELDS = (
    'train.num_steps', 'train.log_every_steps', 'train.eval_every_steps',
    'train.checkpoint_every_steps', 'train.keep_checkpoints', 'train.num_summary_examples',
)
PATH_FIELDS = ('data.dataset_dir', 'vqvae_workdir', 'init_vocoder_workdir')
# Fields added to the configs after runs had been started without them, each with the value
# that trains as those runs did: a run resumed with that value goes on as it was.
ADDED_FIELDS = {'loss.onset_envelope_weight': 0.0, 'train.learning_rate_decay': 'none'}


class WorkdirError(errors.UserError, ValueError):
  """A workdir that cannot be used; str() names the path and the problem."""


def _is_first_process() -> bool:
  """Process 0 writes a run's files. JAX is imported here, not above: reading a run folder
  (create's check of a stage's checkpoints) needs no JAX."""
  import jax  # pylint: disable=g-import-not-at-top
  return jax.process_index() == 0


def path(workdir: str, *names: str):
  """WORKDIR/NAME/...: an etils path, local or on cloud storage."""
  return atomic_files.as_path(workdir).joinpath(*names)


def read_config(workdir: str, expected_trainer: str) -> ml_collections.ConfigDict:
  """WORKDIR/config.json as a ConfigDict, checked to be of `expected_trainer`."""
  config_path = atomic_files.as_path(workdir or '.') / CONFIG_FILENAME
  if not workdir or not config_path.exists():
    raise WorkdirError(f'{workdir!r} is not a {expected_trainer} workdir: {config_path} is '
                       f'missing (train it first with configs/{expected_trainer}.py)')
  config = ml_collections.ConfigDict(atomic_files.read_json(config_path))
  if config.get('trainer') != expected_trainer:
    raise WorkdirError(f'{workdir} holds a {config.get("trainer")!r} run, not a '
                       f'{expected_trainer} run')
  return config


def latest_step(workdir: str) -> int | None:
  """The step of the newest finished checkpoint, None when there is none."""
  folder = path(workdir, CHECKPOINTS_DIRNAME)
  steps = [int(p.name) for p in folder.glob('*') if p.name.isdigit()] if folder.exists() else []
  return max(steps) if steps else None


def check_ready(workdir: str, trainer: str) -> ml_collections.ConfigDict:
  """The config of a finished `trainer` run that has a checkpoint to load."""
  config = read_config(workdir, trainer)
  if latest_step(workdir) is None:
    raise WorkdirError(f'{workdir}: no checkpoint in {os.path.join(workdir, CHECKPOINTS_DIRNAME)}')
  return config


def read_normalization(workdir: str) -> normalization_lib.Normalization:
  """WORKDIR/normalization.json, checked to be of this code's feature version.

  Raises:
    WorkdirError: the file is missing (a run from before workdirs kept it,
      hence of feature version 1) or of another feature version.
  """
  stats_path = path(workdir, NORMALIZATION_FILENAME)
  if not stats_path.exists():
    stats = {'feature_version': 1}  # Runs that predate the file all had version 1.
  else:
    stats = atomic_files.read_json(stats_path)
  try:
    return normalization_lib.Normalization.from_stats(stats, str(stats_path))
  except normalization_lib.NormalizationError as e:
    raise WorkdirError(str(e)) from e


def write_normalization(workdir: str, normalization: normalization_lib.Normalization) -> None:
  """WORKDIR/normalization.json: the statistics sampling and reconstruction need."""
  if _is_first_process():
    atomic_files.write_json(path(workdir, NORMALIZATION_FILENAME), normalization.to_json())


def absolute_paths(config: ml_collections.ConfigDict) -> None:
  """Makes the path fields of `config` absolute (in place; empty stays empty)."""
  for field in PATH_FIELDS:
    section, _, name = field.rpartition('.')
    holder = config[section] if section else config
    if name in holder and holder[name]:
      holder[name] = os.fspath(atomic_files.as_path(holder[name]))


def _flatten(tree: dict, prefix: str = '') -> dict:
  flat = {}
  for name, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{name}.'))
    else:
      flat[f'{prefix}{name}'] = value
  return flat


def config_changes(old: dict, new: dict) -> dict[str, tuple]:
  """Dotted field -> (old value, new value) for every field that differs."""
  old_flat = _flatten(json.loads(json.dumps(old)))
  new_flat = _flatten(json.loads(json.dumps(new)))
  for field, earlier in ADDED_FIELDS.items():
    if field in new_flat:
      old_flat.setdefault(field, earlier)
  return {field: (old_flat.get(field), new_flat.get(field))
          for field in sorted(set(old_flat) | set(new_flat))
          if old_flat.get(field) != new_flat.get(field)}


def write_or_check_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes WORKDIR/config.json for a new run; checks a resumed run against it.

  Raises:
    errors.ConfigError: a resumed run changes a field outside RESUMABLE_FIELDS, or
      its checkpoints hold another feature version's model.
  """
  config_path = path(workdir, CONFIG_FILENAME)
  resolved = json.loads(config.to_json())
  resuming = config_path.exists() and latest_step(workdir) is not None
  if not resuming:
    if _is_first_process():
      atomic_files.write_json(config_path, resolved)
    return
  try:  # Checkpoints of other features would restore into the wrong shapes, or worse, fit.
    read_normalization(workdir)
  except WorkdirError as e:
    raise errors.ConfigError(f'{e} (in a new --workdir)') from e
  changes = config_changes(atomic_files.read_json(config_path), resolved)
  # The sweep section says how to search, not what to train.
  refused = [field for field in changes
             if field not in RESUMABLE_FIELDS and not field.startswith('sweep.')]
  if refused:
    field = refused[0]
    old, new = changes[field]
    more = f' (and {len(refused) - 1} more)' if len(refused) > 1 else ''
    raise errors.ConfigError(
        f'config.{field}={new!r}: this workdir was started with {old!r}{more}; a resumed run '
        f'keeps its config (only {", ".join(RESUMABLE_FIELDS)} may change): use a new '
        '--workdir for a new experiment')
  if changes and _is_first_process():
    number = 1 + len(list(config_path.parent.glob('config.resumed.*.json')))
    atomic_files.write_json(config_path.parent / f'config.resumed.{number}.json', resolved)
    for field, (old, new) in changes.items():
      logging.warning('resumed with config.%s changed: %r -> %r', field, old, new)
    print(f'resumed with {len(changes)} changed field(s): ' + ', '.join(
        f'{field} {old!r} -> {new!r}' for field, (old, new) in changes.items())
        + f' (recorded in config.resumed.{number}.json)')


def gan_vqvae_workdir(workdir: str, config) -> str:
  """The GAN's own copy of its VQ-VAE, or (older runs) the one its config names."""
  copy = path(workdir, VQVAE_COPY_DIRNAME)
  return os.fspath(copy) if (copy / CONFIG_FILENAME).exists() else config.vqvae_workdir


def copy_vqvae(vqvae, workdir: str) -> None:
  """GAN_WORKDIR/vqvae: the VQ-VAE's config, normalization and the checkpoint used.

  With it the GAN workdir decodes its samples wherever it is copied to.

  Args:
    vqvae: the loading.LoadedVQVAE the GAN trains on.
    workdir: the GAN run.
  """
  if not _is_first_process():
    return
  target = path(workdir, VQVAE_COPY_DIRNAME)
  step_dir = target / CHECKPOINTS_DIRNAME / str(vqvae.step)
  if step_dir.exists():
    return
  source_step_dir = path(vqvae.workdir, CHECKPOINTS_DIRNAME, str(vqvae.step))
  tmp_dir = step_dir.with_name(f'.{step_dir.name}.tmp-{os.getpid()}')
  if tmp_dir.exists():
    tmp_dir.rmtree()
  atomic_files.copy_tree(source_step_dir, tmp_dir)
  tmp_dir.rename(step_dir)  # A copy cut short never looks finished.
  write_normalization(str(target), vqvae.normalization)
  atomic_files.write_json(target / CONFIG_FILENAME, vqvae.config.to_dict())


def write_features(workdir: str) -> None:
  """WORKDIR/features.json: the mel settings a vocoder run is trained on."""
  if _is_first_process():
    atomic_files.write_json(path(workdir, FEATURES_FILENAME), contract.feature_settings())


def check_features(workdir: str) -> None:
  """Refuses a vocoder workdir whose mel settings are not this code's.

  Raises:
    WorkdirError: features.json missing or different (one line).
  """
  features_path = path(workdir, FEATURES_FILENAME)
  if not features_path.exists():
    raise WorkdirError(f'{workdir}: no {FEATURES_FILENAME}, so its mel settings '
                       'are unknown; retrain the vocoder in a new --workdir')
  recorded = atomic_files.read_json(features_path)
  expected = contract.feature_settings()
  changed = [f'{name} {recorded.get(name)!r} (now {value!r})'
             for name, value in expected.items() if recorded.get(name) != value]
  if changed:
    raise WorkdirError(
        f'{workdir}: trained on other mel settings: {", ".join(changed)}; this code computes '
        f'{contract.FEATURE_DESCRIPTION}: retrain the vocoder in a new --workdir')


def read_metrics(workdir: str) -> list[dict]:
  """All rows of WORKDIR/metrics.jsonl, in order."""
  metrics_path = path(workdir, METRICS_FILENAME)
  if not metrics_path.exists():
    return []
  return [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
