"""Steps and seconds of a training run from its measured step costs (calibration.py).

Plain Python, no JAX: `create` plans with it before anything is compiled.
"""


def phased_seconds(figures: dict, steps: int, adversarial_start: int) -> float:
  """Seconds of `steps` steps of a codec or vocoder; `figures` holds calibration's
  'warmup_s' and 'adversarial_s' (the two phases cost differently)."""
  warmup = min(steps, adversarial_start)
  return warmup * figures['warmup_s'] + (steps - warmup) * figures['adversarial_s']


def phased_steps_within(figures: dict, seconds: float, adversarial_start: int) -> int:
  """Codec or vocoder steps that fit `seconds`: warm-up steps first, then adversarial ones."""
  warmup_s = adversarial_start * figures['warmup_s']
  if seconds <= warmup_s:
    return int(seconds / figures['warmup_s'])
  return adversarial_start + int((seconds - warmup_s) / figures['adversarial_s'])
