"""The training loop every model family shares.

A trainer (vqvae_trainer.py, gan_trainer.py) supplies the model-specific
parts; this loop owns resuming, logging, evaluation, checkpointing, preemption
and the non-finite-loss stop:

  state = trainer.create_state()                  # replicated over the mesh
  state, first_step = checkpoints.restore_latest(manager, state)
  state = trainer.fresh_start(state) if first_step == 0
  for step in range(first_step, num_steps):
    state, metrics = trainer.jit_train_step(state, next(batches))
    ...

Metrics of a log step are fetched after the next step is dispatched, so the
host never waits on the device just to log.
"""
import optax
import dataclasses
import signal
import threading
import time
from typing import Any, Callable, Iterator, Protocol

from absl import logging
import jax
import numpy as np

from melodygan_jax import errors
from melodygan_jax.runs import checkpoints  # pylint: disable=g-import-not-at-top
from melodygan_jax.training import metric_writer


class NonFiniteLossError(errors.UserError, RuntimeError):
  """Training diverged; str() names the steps and the checkpoint kept."""


class Trainer(Protocol):
  """What a model family gives the loop."""

  def create_state(self) -> Any:
    """A freshly initialized train state with a `.step`, on the mesh."""

  def fresh_start(self, state: Any) -> Any:
    """Anything done once before step 0 of a new run (e.g. codebook k-means)."""

  def train_batches(self, start_step: int) -> Iterator[Any]:
    """Global batches; the first is the one of `start_step`."""

  def jit_train_step(self, state: Any, batch: Any) -> tuple[Any, dict]:
    """One compiled step: (new state, dict of scalar metrics incl. 'loss')."""

  def evaluate(self, state: Any, writer: metric_writer.MetricWriter, step: int) -> dict:
    """Validation metrics (floats); may also write images or audio."""


class PreemptionWatcher:
  """Turns SIGTERM (a preempted VM) into a clean save-and-stop.

  Under `jax.distributed` all hosts must stop at the same step: JAX's
  preemption sync point decides there. Its notice comes from the SIGTERM
  handler the coordination service installed at initialization, so no Python
  handler may replace that one; the watcher installs its own only in a
  process that is not part of a distributed run.
  """

  def __init__(self):
    self._signalled = False
    self._previous = None
    self._distributed = jax.distributed.is_initialized()
    if not self._distributed and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self._signalled = True

  def should_stop(self, step: int) -> bool:
    """True at the step where every process saves and stops; call at every step."""
    if self._distributed:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return multihost_utils.reached_preemption_sync_point(step)
    return self._signalled

  def close(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _on_every_host(flag: bool) -> bool:
  """Process 0's `flag`, on every process (only process 0 reads metrics.jsonl)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


@dataclasses.dataclass
class _Progress:
  """Steps/s, ETA and the share of time spent waiting for input, over the last log interval."""
  num_steps: int
  last_step: int
  last_time: float = dataclasses.field(default_factory=time.perf_counter)
  input_wait_s: float = 0.0  # Since the last update.

  def next_batch(self, batches: Iterator) -> Any:
    """next(batches), timed: the loop dispatches a step only once its batch is there."""
    start = time.perf_counter()
    batch = next(batches)
    self.input_wait_s += time.perf_counter() - start
    return batch

  def update(self, step: int) -> tuple[float, str, float]:
    """(steps/s, ETA, share of the interval's wall time spent in next(batches))."""
    now = time.perf_counter()
    elapsed = max(now - self.last_time, 1e-9)
    steps_per_s = (step - self.last_step) / elapsed
    input_wait_share = min(1.0, self.input_wait_s / elapsed)
    self.last_step, self.last_time, self.input_wait_s = step, now, 0.0
    eta_s = (self.num_steps - step) / max(steps_per_s, 1e-9)
    return steps_per_s, time.strftime('%H:%M:%S', time.gmtime(eta_s)), input_wait_share


def _format(metrics: dict) -> str:
  return ', '.join(f'{name.removeprefix("train/").removeprefix("eval/")}={value:.4g}'
                   for name, value in metrics.items()
                   if name not in ('train/steps_per_s', 'train/input_wait_share'))


def train_and_evaluate(trainer: Trainer, train_config, workdir: str,
                       eval_callback: Callable[[int, dict], None] | None = None) -> Any:
  """Trains to `train_config.num_steps`, resuming from WORKDIR/checkpoints.

  Args:
    trainer: the model family's parts.
    train_config: the config's `train` section.
    workdir: checkpoints and summaries.
    eval_callback: called as (step, validation metrics) after each evaluation;
      whatever it raises (e.g. a sweep pruning the run) stops training.

  Returns:
    The final (or preempted) state.

  Raises:
    NonFiniteLossError: the loss became NaN/inf; the last good checkpoint stays.
  """
  manager = checkpoints.make_manager(workdir, train_config)
  state, first_step = checkpoints.restore_latest(manager, trainer.create_state())
  if first_step == 0:
    state = trainer.fresh_start(state)
    logging.info('starting a new run in %s', workdir)
  else:
    logging.info('resuming from the checkpoint of step %d', first_step)
  writer = metric_writer.MetricWriter(workdir, resumed_step=first_step)

  def evaluate(step):
    eval_metrics = trainer.evaluate(state, writer, step)
    writer.write_scalars(step, eval_metrics)
    logging.info('eval at step %d: %s', step, _format(eval_metrics))
    if eval_callback is not None:
      eval_callback(step, eval_metrics)

  def eval_due(step):
    return step % train_config.eval_every_steps == 0 or step == train_config.num_steps

  # A preemption at an eval step saves and stops before evaluating (the grace
  # period is for the checkpoint), and a kill can land between a save and its
  # eval: either way the restored step's eval is done now, once.
  if first_step and _on_every_host(eval_due(first_step)
                                   and not writer.has_eval_row(first_step)):
    logging.info('step %d was saved without its eval: evaluating it first', first_step)
    evaluate(first_step)
  watcher = PreemptionWatcher()
  batches = trainer.train_batches(first_step)
  progress = _Progress(train_config.num_steps, first_step)
  last_checked_step, last_saved_step = first_step, first_step
  pending = None  # (step, metrics on device) of the last log step.
  previous_metrics = None

  def check_and_log(step, metrics):
    nonlocal last_checked_step
    metrics = {name: float(np.asarray(value)) for name, value in jax.device_get(metrics).items()}
    if not np.isfinite(metrics['train/loss']):
      raise NonFiniteLossError(
          f'non-finite loss ({metrics["train/loss"]}) at step {step} (after steps '
          f'{last_checked_step + 1}-{step}); stopped, the last good checkpoint is '
          f'step {last_saved_step} in {workdir}/checkpoints')
    last_checked_step = step
    if step % train_config.log_every_steps == 0 or step == train_config.num_steps:
      steps_per_s, eta, input_wait_share = progress.update(step)
      metrics['train/steps_per_s'] = steps_per_s
      metrics['train/input_wait_share'] = input_wait_share
      writer.write_scalars(step, metrics)
      logging.info('step %d/%d: %s | %.2f steps/s, %.0f%% waiting for input, ETA %s', step,
                   train_config.num_steps, _format(metrics), steps_per_s,
                   100 * input_wait_share, eta)

  try:
    for step in range(first_step, train_config.num_steps):
      state, metrics = trainer.jit_train_step(state, progress.next_batch(batches))
      # Stay one step ahead of the device, not more: an unbounded queue of
      # dispatched steps holds memory, and on several CPU devices it can
      # starve the threads that a step's all-reduce waits on.
      jax.block_until_ready(previous_metrics)
      previous_metrics = metrics
      done = step + 1
      if pending is not None:
        check_and_log(*pending)
        pending = None
      stop = watcher.should_stop(done)
      is_last = done == train_config.num_steps
      save_now = stop or is_last or done % train_config.checkpoint_every_steps == 0
      if save_now:  # Never save a diverged state: check this step's loss first.
        check_and_log(done, metrics)
        checkpoints.save(manager, done, state)
        last_saved_step = done
      elif done % train_config.log_every_steps == 0:
        pending = (done, metrics)
      if eval_due(done) and not stop:
        evaluate(done)
      if stop:
        logging.warning('preempted: saved the checkpoint of step %d, stopping', done)
        break
  finally:
    manager.wait_until_finished()
    manager.close()
    writer.flush()
    watcher.close()
  return state


# What the adversarially trained runs (codec, vocoder) share.


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
