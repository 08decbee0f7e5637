"""VQ-VAE training end to end: learning, exact resume, preemption, sharding, validation."""
import pathlib
import signal
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

from configs import vqvae_tiny
import conftest

from melodygan_jax.runs import checkpoints
from melodygan_jax.runs import workdir as workdir_lib
from melodygan_jax.training import parallel
from melodygan_jax.training import loop
from melodygan_jax.training import vqvae_trainer


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
OVERRIDES = conftest.VQVAE_OVERRIDES
NUM_STEPS = OVERRIDES['train.num_steps']


def tiny_config(prepared_dir) -> ml_collections.ConfigDict:
  config = vqvae_tiny.get_config()
  config.data.dataset_dir = str(prepared_dir)
  for field, value in OVERRIDES.items():
    section, name = field.split('.')
    config[section][name] = value
  return config


def cli_flags(prepared_dir, workdir):
  return [f'--config={REPO_ROOT / "configs" / "vqvae_tiny.py"}', f'--workdir={workdir}',
          f'--config.data.dataset_dir={prepared_dir}',
          *[f'--config.{field}={value}' for field, value in OVERRIDES.items()]]


def start_cli(*flags):
  return subprocess.Popen([sys.executable, '-m', 'melodygan_jax.train', *flags], cwd=REPO_ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def saved_steps(workdir):
  folder = pathlib.Path(workdir) / 'checkpoints'
  return sorted(int(p.name) for p in folder.glob('*') if p.name.isdigit()) if folder.exists() else []


def wait_for_checkpoint(process, workdir, after_step, timeout_s=600):
  deadline = time.time() + timeout_s
  while time.time() < deadline:
    if [s for s in saved_steps(workdir) if s > after_step]:
      return
    if process.poll() is not None:
      raise AssertionError(f'train exited early: {process.communicate()[1][-2000:]}')
    time.sleep(0.01)
  raise AssertionError('no checkpoint appeared')


@pytest.fixture(scope='module')
def trainer(prepared_dir):
  return vqvae_trainer.VQVAETrainer(tiny_config(prepared_dir))


@pytest.fixture(scope='module')
def uninterrupted(trained_vqvae):
  return trained_vqvae


def test_training_lowers_validation_loss(uninterrupted):
  workdir, before, final = uninterrupted
  rows = workdir_lib.read_metrics(str(workdir))
  evals = [row for row in rows if 'eval/mse' in row]
  assert [row['step'] for row in evals] == [120, 240]
  after = evals[-1]
  assert after['eval/mse'] < 0.8 * before['eval/mse']
  assert after['eval/l1'] < before['eval/l1']
  assert after['eval/spectral_convergence'] < before['eval/spectral_convergence']
  assert after['eval/codebook_usage'] > 0.3 and after['eval/perplexity'] > 5
  assert after['eval/codebook_usage_min'] > 0.3  # Every residual level is in use.
  # Each level refines the last: decoding fewer levels is worse, at a lower bit rate. (After
  # 240 steps the last level's gain is small: 2 and 3 levels measured 0.6034 and 0.6048 mel
  # SC on one CPU, with log-mel L1 still in order, so SC is only held between 1 and all.)
  assert (after['eval/levels_1/l1'] > after['eval/levels_2/l1'] > after['eval/l1'])
  assert after['eval/levels_1/spectral_convergence'] > after['eval/spectral_convergence']
  assert after['eval/bits_per_second'] == pytest.approx(3 * 6 * 22050 / 256 / 4)
  train_rows = [row for row in rows if 'train/adversarial' in row]
  start = conftest.VQVAE_ADVERSARIAL_START_STEP
  # The discriminator joins after the warm-up, not before.
  assert all(row['train/discriminator'] == 0 for row in train_rows if row['step'] <= start)
  assert all(row['train/discriminator'] > 0 and row['train/feature_matching'] > 0
             for row in train_rows if row['step'] > start + 1)
  assert workdir_lib.latest_step(str(workdir)) == NUM_STEPS
  assert saved_steps(workdir) == [160, 200, 240]  # keep_checkpoints=3.
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  events = event_accumulator.EventAccumulator(str(workdir), size_guidance={'tensors': 0})
  events.Reload()
  tags = set(events.Tags()['tensors'])
  assert {'train/loss', 'eval/mse', 'reconstruction/0', 'reconstruction/0/input',
          'reconstruction/0/output'} <= tags  # Scalars, spectrogram images, audio.


@pytest.mark.end_to_end
def test_sigterm_then_kill_9_then_resume_equals_uninterrupted(prepared_dir, uninterrupted,
                                                            trainer, tmp_path):
  workdir = tmp_path / 'interrupted'
  flags = cli_flags(prepared_dir, workdir)
  process = start_cli(*flags)  # SIGTERM (preemption): save and exit cleanly.
  wait_for_checkpoint(process, workdir, after_step=0)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 0, stderr[-2000:]
  assert 'preempted' in stderr
  preempted_at = saved_steps(workdir)[-1]
  assert 0 < preempted_at < NUM_STEPS

  process = start_cli(*flags)  # kill -9 once a later checkpoint exists.
  wait_for_checkpoint(process, workdir, after_step=preempted_at)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = saved_steps(workdir)[-1]
  assert killed_at < NUM_STEPS, 'the run ended before it was killed'
  # A save cut off by the kill leaves only a temporary folder, which is ignored.
  (workdir / 'checkpoints' / f'{killed_at + 40}.orbax-checkpoint-tmp-1').mkdir()

  process = start_cli(*flags)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr[-2000:]
  assert f'resuming from the checkpoint of step {killed_at}' in stderr
  resumed, step = checkpoints.restore(str(workdir), trainer.create_state())
  assert step == NUM_STEPS
  _, _, final = uninterrupted
  for a, b in zip(jax.tree.leaves(parallel.host_values(resumed)), final, strict=True):
    np.testing.assert_array_equal(a, b)  # Bitwise on the CPU.
  # Three runs wrote metrics.jsonl; each logged step is listed once, as uninterrupted.
  logged = [row['step'] for row in workdir_lib.read_metrics(str(workdir))
            if 'train/loss' in row]
  expected = [row['step'] for row in workdir_lib.read_metrics(str(uninterrupted[0]))
              if 'train/loss' in row]
  assert logged == expected


def test_step_on_2_devices_matches_1_device(prepared_dir):
  assert jax.device_count() == 2
  config = tiny_config(prepared_dir)
  results = []
  for devices in (jax.devices(), jax.devices()[:1]):
    trainer = vqvae_trainer.VQVAETrainer(config, mesh=parallel.make_mesh(devices))
    state = trainer.fresh_start(trainer.create_state())
    batch = next(trainer.train_batches(0))
    assert len(batch['stem'].sharding.device_set) == len(devices)
    state, metrics = trainer.jit_train_step(state, batch)
    results.append((parallel.host_values(state), parallel.host_values(metrics)))
  (sharded, sharded_metrics), (one, one_metrics) = results
  np.testing.assert_allclose(sharded_metrics['train/loss'], one_metrics['train/loss'], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(one)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_factorized_lookup_trains_its_projections(prepared_dir):
  config = tiny_config(prepared_dir)
  config.model.lookup_dim = 4
  trainer = vqvae_trainer.VQVAETrainer(config)
  state = trainer.fresh_start(trainer.create_state())
  start = parallel.host_values(state.params)
  batches = trainer.train_batches(0)
  for _ in range(3):
    state, metrics = trainer.jit_train_step(state, next(batches))
  assert np.isfinite(float(metrics['train/loss']))
  params = parallel.host_values(state.params)
  for name in ('in_projections', 'out_projections'):
    moved = np.abs(params['quantizer'][name][0]['kernel'] - start['quantizer'][name][0]['kernel'])
    assert moved.max() > 0, name
  # Every level's codes are unit vectors (the cosine lookup's sphere).
  codebook = parallel.host_values(state.codebook)['quantizer']['levels'][1]['codebook']
  np.testing.assert_allclose(np.linalg.norm(codebook, axis=-1), 1.0, atol=1e-5)


def test_a_preemption_at_an_eval_step_evaluates_it_on_resume(trainer, tmp_path, monkeypatch):
  train_config = ml_collections.ConfigDict(trainer.config.train.to_dict())
  train_config.update(num_steps=24, eval_every_steps=16, checkpoint_every_steps=8,
                      log_every_steps=4, keep_checkpoints=5)
  real_step = trainer.jit_train_step

  def preempted_step(state, batch):
    if int(state.step) == 15:  # The notice arrives during the step that ends at 16.
      signal.raise_signal(signal.SIGTERM)
    return real_step(state, batch)

  monkeypatch.setattr(trainer, 'jit_train_step', preempted_step)
  loop.train_and_evaluate(trainer, train_config, str(tmp_path))
  assert saved_steps(tmp_path) == [8, 16]
  # It saved and stopped at 16 before its eval (the grace period is for the checkpoint)...
  assert not [row for row in workdir_lib.read_metrics(str(tmp_path)) if 'eval/mse' in row]
  monkeypatch.setattr(trainer, 'jit_train_step', real_step)
  loop.train_and_evaluate(trainer, train_config, str(tmp_path))
  # ... and the resumed run evaluated step 16 first, then went on; once more, nothing.
  eval_steps = lambda: [row['step'] for row in workdir_lib.read_metrics(str(tmp_path))
                        if 'eval/mse' in row]
  assert eval_steps() == [16, 24]
  loop.train_and_evaluate(trainer, train_config, str(tmp_path))
  assert eval_steps() == [16, 24]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(prepared_dir, tmp_path):
  config = tiny_config(prepared_dir)
  config.train.num_steps = 80
  trainer = vqvae_trainer.VQVAETrainer(config)
  real_step = trainer.jit_train_step

  def poisoned_step(state, batch):
    if int(state.step) >= 50:  # Diverge after the checkpoint of step 40.
      batch = {**batch, 'mel': batch['mel'] * np.float32(np.nan)}
    return real_step(state, batch)

  trainer.jit_train_step = poisoned_step
  with pytest.raises(loop.NonFiniteLossError, match=r'at step \d+ .*last good checkpoint is step 40'):
    loop.train_and_evaluate(trainer, config.train, str(tmp_path))
  assert saved_steps(tmp_path) == [40]


def test_config_errors_are_one_line_and_name_the_field(prepared_dir, tmp_path):
  def error_of(change):
    config = tiny_config(prepared_dir)
    change(config)
    with pytest.raises(ValueError) as error:
      vqvae_trainer.check_config(config)
    message = str(error.value)
    assert '\n' not in message
    return message

  # The configs are locked: a variant that mistypes a field fails where it is written.
  with pytest.raises(AttributeError, match='Did you mean "batch_size" instead of "bach_size"'):
    tiny_config(prepared_dir).train.bach_size = 8
  assert 'config.train.batch_size=5: must be divisible by the 2 devices' in error_of(
      lambda c: setattr(c.train, 'batch_size', 5))
  assert 'data.crop_frames=128 is longer than the stored segments (64 frames)' in error_of(
      lambda c: setattr(c.data, 'crop_frames', 128))
  assert f"{tmp_path / 'none'}" in error_of(
      lambda c: setattr(c.data, 'dataset_dir', str(tmp_path / 'none')))
  assert 'config.model.dtype' in error_of(lambda c: setattr(c.model, 'dtype', 'float16'))
  assert 'config.data.crop_frames=30: must be a multiple of the time stride 4' in error_of(
      lambda c: setattr(c.data, 'crop_frames', 30))
  assert 'config.model.quantizer_dropout=1.5: must be in [0, 1]' in error_of(
      lambda c: setattr(c.model, 'quantizer_dropout', 1.5))
  assert 'config.model.lookup_dim=-1: must be >= 0' in error_of(
      lambda c: setattr(c.model, 'lookup_dim', -1))
  assert 'config.model.num_levels=0: must be a positive number' in error_of(
      lambda c: setattr(c.model, 'num_levels', 0))
  assert 'config.model.discriminator_scales=5: with 2 convolutions per scale' in error_of(
      lambda c: setattr(c.model, 'discriminator_scales', 5))

  started = time.time()  # The CLI fails in seconds, before compiling anything.
  process = start_cli(*cli_flags(prepared_dir, tmp_path / 'w'), '--config.data.crop_frames=128')
  _, stderr = process.communicate(timeout=120)
  assert process.returncode != 0
  assert stderr.strip().splitlines()[-1].startswith('train: data.crop_frames=128')
  assert time.time() - started < 60
  assert not (tmp_path / 'w' / 'checkpoints').exists()


def test_data_sets_and_workdirs_of_old_features_are_refused(prepared_dir, uninterrupted, tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  from melodygan_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from melodygan_jax.runs import loading  # pylint: disable=g-import-not-at-top
  from melodygan_jax.runs import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  old_data = tmp_path / 'old_data'
  shutil.copytree(prepared_dir, old_data)
  stats = json.loads((old_data / 'stats.json').read_text())
  (old_data / 'stats.json').write_text(json.dumps({**stats, 'feature_version': 1}))
  with pytest.raises(input_pipeline.DatasetError, match=r'version 1, .*re-run python -m data_prep.prepare'):
    input_pipeline.load_dataset_meta(str(old_data))

  workdir, _, _ = uninterrupted
  old_run = tmp_path / 'old_run'
  shutil.copytree(workdir, old_run)
  normalization = json.loads((old_run / 'normalization.json').read_text())
  (old_run / 'normalization.json').write_text(json.dumps({**normalization, 'feature_version': 1}))
  with pytest.raises(workdir_lib.WorkdirError, match='version 1') as error:
    loading.load_vqvae(str(old_run))  # Inference: refused before restoring anything.
  assert '\n' not in str(error.value)
  with pytest.raises(ValueError, match=r'version 1.*new --workdir'):
    workdir_lib.write_or_check_config(tiny_config(prepared_dir), str(old_run))  # Resuming.
  (old_run / 'normalization.json').unlink()  # Runs older than the file had version 1 too.
  with pytest.raises(workdir_lib.WorkdirError, match='version 1'):
    loading.load_vqvae(str(old_run))
