"""What the adversarially trained runs (codec, vocoder) share.

Both train on reconstruction alone for a warm-up, then add discriminators. The
phase is static: two compiled steps, chosen on the host. Inside a `lax.cond`,
XLA:CPU runs convolutions through its slow generic emitter (a codec step took
50 s instead of 0.8 s, a vocoder step 60x its warm-up cost), so the switch
never goes into the compiled step.
"""
from typing import Any, Callable

import jax
import optax


class PhasedStep:
  """A train step compiled once per phase, the phase chosen from a host-side step count.

  `make_step(adversarial)` returns the jitted step for one phase; jit is lazy,
  so a run that never reaches `adversarial_start_step` never compiles the
  adversarial step. The step count is kept here (set by `reset` when the
  batches start), so choosing the phase never waits for the device to finish
  the step before.
  """

  def __init__(self, make_step: Callable[[bool], Callable], adversarial_start_step: int):
    self._steps = {adversarial: make_step(adversarial) for adversarial in (False, True)}
    self._adversarial_start_step = adversarial_start_step
    self._next_step = None

  def reset(self, next_step: int) -> None:
    self._next_step = next_step

  def __call__(self, state: Any, *args) -> Any:
    if self._next_step is None:
      self._next_step = int(jax.device_get(state.step))
    adversarial = self._next_step >= self._adversarial_start_step
    self._next_step += 1
    return self._steps[adversarial](state, *args)


def apply_gradients(optimizer: optax.GradientTransformation, grads, opt_state, params):
  """One optimizer update: (new params, new optimizer state)."""
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state
