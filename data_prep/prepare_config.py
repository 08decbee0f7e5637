"""prepare's settings as one config (configs/prepare.py): flags in, a copy in the data set.

The config is the one shape of the settings: `--config.SECTION.FIELD`
overrides it, every flag prepare had before it still sets one of its fields
(FLAG_FIELDS), and the resolved settings are kept in the data set as
OUT/prepare_config.json, so every data set says how it was made. A later run
into the same OUT is refused when it would change what is written (the
`dataset`, `cleaning` and `separation` sections); where the files are and how
the work runs (the folders, the `run` section) may differ.
"""
import dataclasses
import json
import os
from typing import Any, Mapping

from absl import flags
import ml_collections

from data_prep import cleaning
from data_prep import separation
from melodygan_jax import atomic_files
from melodygan_jax import errors

FILENAME = 'prepare_config.json'

# Every flag prepare had before its config -> the config field it sets. The
# cleaning flags are the cleaning options' names, the dsp ones prefixed `dsp_`.
FLAG_FIELDS = {
    'input_dir': 'input_dir',
    'output_dir': 'output_dir',
    'segment_frames': 'dataset.segment_frames',
    'validation_fraction': 'dataset.validation_fraction',
    'shard_size_mb': 'dataset.shard_size_mb',
    **{field.name: f'cleaning.{field.name}'
       for field in dataclasses.fields(cleaning.CleaningOptions)},
    'separation': 'separation.backend',
    'stems': 'separation.stems',
    'stems_dir': 'separation.stems_dir',
    'uvr_model_dir': 'separation.uvr_model_dir',
    'uvr_model': 'separation.uvr_model',
    **{f'dsp_{field.name}': f'separation.dsp.{field.name}'
       for field in dataclasses.fields(separation.DspOptions)},
    'num_workers': 'run.num_workers',
    'runner': 'run.runner',
    'beam_options': 'run.beam_options',
}
_FLAG_OF_FIELD = {field: flag for flag, field in FLAG_FIELDS.items()}
# What a re-run into the same OUT may change: where things are (a moved input
# folder still holds the same songs) and how the work runs.
_FREE_FIELDS = ('input_dir', 'output_dir', 'separation.stems_dir', 'separation.uvr_model_dir')
_FREE_SECTIONS = ('run',)


def get_field(config: Mapping[str, Any], field: str) -> Any:
  """The value at a dotted path (`cleaning.highpass_hz`) of a config or dict."""
  for name in field.split('.'):
    config = config[name]
  return config


def set_field(config: ml_collections.ConfigDict, field: str, value: Any) -> None:
  *sections, name = field.split('.')
  for section in sections:
    config = config[section]
  config[name] = value


def split_stems(stems) -> tuple[str, ...]:
  """('mix,vocals',) -> ('mix', 'vocals'): `--config.separation.stems=mix,vocals`
  arrives as one item; the comma list is what `--stems` has always taken."""
  return tuple(stem.strip() for item in stems for stem in item.split(',') if stem.strip())


def apply_flags(config: ml_collections.ConfigDict,
                flag_values: flags.FlagValues) -> ml_collections.ConfigDict:
  """Writes every older flag given on the command line into its config field.

  Args:
    config: the parsed `--config` (its file, then its `--config.` overrides);
      changed in place.
    flag_values: the parsed flags, FLAG_FIELDS' among them.

  Returns:
    `config`, its stems as a clean tuple.

  Raises:
    ValueError: one line, when a flag and a `--config.` override of its
      field disagree.
  """
  overrides = flag_values['config'].override_values
  config.separation.stems = split_stems(config.separation.stems)
  for flag_name, field in FLAG_FIELDS.items():
    flag = flag_values[flag_name]
    if not flag.present:
      continue  # Absent: the config says, so a user's config file is not overruled.
    value = split_stems(flag.value) if field == 'separation.stems' else flag.value
    overridden = get_field(config, field)
    if field in overrides and overridden != value:
      raise errors.ConfigError(f'--{flag_name}={show(value)} and --config.{field}={show(overridden)} '
                       'disagree: pass one of them')
    set_field(config, field, value)
  return config


def flag_names(flag_values: flags.FlagValues) -> dict[str, str]:
  """How messages name each setting: the older flag where it was given, else its field."""
  return {flag: f'--{flag}' if flag_values[flag].present else f'--config.{field}'
          for flag, field in FLAG_FIELDS.items()}


def describe(field: str, names: Mapping[str, str] | None = None) -> str:
  """The name a message gives `field`: from `names` (see flag_names), else its flag."""
  flag = _FLAG_OF_FIELD.get(field)
  if flag is None:
    return f'--config.{field}'
  return (names or {}).get(flag, f'--{flag}')


def show(value: Any) -> str:
  """A value as it is written on the command line (lists comma-separated)."""
  if isinstance(value, (list, tuple)):
    return ','.join(str(item) for item in value)
  return str(value)


def _flatten(settings: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  flat = {}
  for name, value in settings.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f'{prefix}{name}.'))
    else:
      flat[f'{prefix}{name}'] = value
  return flat


def changes_output(field: str) -> bool:
  """Whether a field's value changes what is written to OUT."""
  return field not in _FREE_FIELDS and field.split('.')[0] not in _FREE_SECTIONS


def check_unchanged(output_dir: str, settings: Mapping[str, Any],
                    names: Mapping[str, str] | None = None) -> None:
  """Refuses a run into a data set made with other output-changing settings.

  An OUT without prepare_config.json (a new one, or a data set made before
  the file existed) is accepted, and so is a field only one side has (a
  setting added or removed since): such runs still redo every changed file,
  through the per-file fingerprints.

  Args:
    output_dir: the data set folder.
    settings: the run's settings, shaped like the config (`settings_of`).
    names: how to name each older flag in the message (see flag_names).

  Raises:
    ValueError: one line naming the first changed field, the data set's
      value and the way out.
  """
  path = os.path.join(output_dir, FILENAME)
  if not atomic_files.as_path(path).exists():
    return
  stored = _flatten(atomic_files.read_json(path))
  current = _flatten(json.loads(json.dumps(settings)))  # Tuples as lists, as stored.
  changed = sorted(field for field in stored.keys() & current.keys()
                   if changes_output(field) and stored[field] != current[field])
  if changed:
    field = changed[0]
    others = f' (and {len(changed) - 1} more setting(s))' if len(changed) > 1 else ''
    raise errors.ConfigError(f'{describe(field, names)}={show(current[field])}: {output_dir} holds a '
                     f'data set made with {field}={show(stored[field])}{others} ({FILENAME}); '
                     'keep the setting, or write to another --output_dir')


def write(output_dir: str, settings: Mapping[str, Any]) -> None:
  """Writes OUT/prepare_config.json atomically."""
  atomic_files.write_json(os.path.join(output_dir, FILENAME), settings)
