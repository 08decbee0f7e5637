"""The files a run keeps in its workdir besides checkpoints and summaries.

config.json is the run's resolved config, written once, when the run starts;
paths in it are absolute, so the workdir can be read from anywhere. A resumed
run must be the same experiment: it may change only the fields in
`RESUMABLE_FIELDS` (how long and how often) and the `sweep` section, and each such change is
recorded as config.resumed.N.json with the difference printed. Any other
changed field is refused with one line.

normalization.json holds the data set's statistics and feature version, so the
run samples and reconstructs without the data set.
"""
import json
import os

from absl import logging
import jax
import ml_collections

from melodygan_jax import atomic_files
from melodygan_jax.data import normalization as normalization_lib
from melodygan_jax.generation import pretrained
from melodygan_jax.training import config_checks

CONFIG_FILENAME = 'config.json'
RESUMABLE_FIELDS = (
    'train.num_steps', 'train.log_every_steps', 'train.eval_every_steps',
    'train.checkpoint_every_steps', 'train.keep_checkpoints', 'train.num_summary_examples',
)
PATH_FIELDS = ('data.dataset_dir', 'vqvae_workdir', 'init_vocoder_workdir')


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
  return {field: (old_flat.get(field), new_flat.get(field))
          for field in sorted(set(old_flat) | set(new_flat))
          if old_flat.get(field) != new_flat.get(field)}


def write_or_check_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes WORKDIR/config.json for a new run; checks a resumed run against it.

  Raises:
    config_checks.ConfigError: a resumed run changes a field outside
      RESUMABLE_FIELDS, or its checkpoints hold another feature version's model.
  """
  path = atomic_files.as_path(workdir) / CONFIG_FILENAME
  resolved = json.loads(config.to_json())
  resuming = path.exists() and pretrained.latest_step(workdir) is not None
  if not resuming:
    if jax.process_index() == 0:
      atomic_files.write_json(path, resolved)
    return
  try:  # Checkpoints of other features would restore into the wrong shapes, or worse, fit.
    pretrained.read_normalization(workdir)
  except pretrained.WorkdirError as e:
    raise config_checks.ConfigError(f'{e} (in a new --workdir)') from e
  changes = config_changes(atomic_files.read_json(path), resolved)
  # The sweep section says how to search, not what to train.
  refused = [field for field in changes
             if field not in RESUMABLE_FIELDS and not field.startswith('sweep.')]
  if refused:
    field = refused[0]
    old, new = changes[field]
    more = f' (and {len(refused) - 1} more)' if len(refused) > 1 else ''
    raise config_checks.ConfigError(
        f'config.{field}={new!r}: this workdir was started with {old!r}{more}; a resumed run '
        f'keeps its config (only {", ".join(RESUMABLE_FIELDS)} may change): use a new '
        '--workdir for a new experiment')
  if changes and jax.process_index() == 0:
    number = 1 + len(list(path.parent.glob('config.resumed.*.json')))
    atomic_files.write_json(path.parent / f'config.resumed.{number}.json', resolved)
    for field, (old, new) in changes.items():
      logging.warning('resumed with config.%s changed: %r -> %r', field, old, new)
    print(f'resumed with {len(changes)} changed field(s): ' + ', '.join(
        f'{field} {old!r} -> {new!r}' for field, (old, new) in changes.items())
        + f' (recorded in config.resumed.{number}.json)')


def write_normalization(workdir: str, normalization: normalization_lib.Normalization) -> None:
  """WORKDIR/normalization.json: the statistics sampling and reconstruction need."""
  if jax.process_index() == 0:
    atomic_files.write_json(atomic_files.as_path(workdir) / normalization_lib.NORMALIZATION_FILENAME,
                            normalization.to_json())


def copy_vqvae(vqvae: pretrained.LoadedVQVAE, workdir: str) -> None:
  """GAN_WORKDIR/vqvae: the VQ-VAE's config, normalization and the checkpoint used.

  With it the GAN workdir decodes its samples wherever it is copied to.
  """
  if jax.process_index() != 0:
    return
  target = atomic_files.as_path(workdir) / pretrained.VQVAE_COPY_DIRNAME
  step_dir = target / pretrained.CHECKPOINTS_DIRNAME / str(vqvae.step)
  if step_dir.exists():
    return
  source_step_dir = (atomic_files.as_path(vqvae.workdir) / pretrained.CHECKPOINTS_DIRNAME
                     / str(vqvae.step))
  tmp_dir = step_dir.with_name(f'.{step_dir.name}.tmp-{os.getpid()}')
  if tmp_dir.exists():
    tmp_dir.rmtree()
  atomic_files.copy_tree(source_step_dir, tmp_dir)
  tmp_dir.rename(step_dir)  # A copy cut short never looks finished.
  write_normalization(str(target), vqvae.normalization)
  atomic_files.write_json(target / CONFIG_FILENAME, vqvae.config.to_dict())
