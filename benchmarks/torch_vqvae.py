"""The default VQ-VAE written plainly in PyTorch: the baseline users would pick.

Same architecture as melodygan_jax.models.vqvae with configs/vqvae.py (Conv
k3 in, 2 residual blocks per resolution, two k4/s2 downsamplings, k1 to the
codebook; EMA codebook per residual level; mirrored decoder with transposed convolutions),
same loss (L1 + MSE + 0.25 commitment, and after the warm-up the hinge and
feature-matching losses of a multi-scale 2-D patch discriminator, itself
trained in the same step) and optimizers (Adam after clipping).
"""
import torch
from torch import nn


class ResidualBlock(nn.Module):

  def __init__(self, width):
    super().__init__()
    self.conv_k3 = nn.Conv1d(width, width, 3, padding=1)
    self.conv_k1 = nn.Conv1d(width, width, 1)

  def forward(self, x):
    return x + self.conv_k1(torch.relu(self.conv_k3(torch.relu(x))))


def _blocks(width, count):
  return [ResidualBlock(width) for _ in range(count)]


class TorchVQVAE(nn.Module):
  """[batch, mels, frames] in (PyTorch's channels-first layout)."""

  def __init__(self, num_mels=128, width=256, num_res_blocks=2, num_levels=8,
               codebook_size=1024, codebook_dim=64, decay=0.99):
    super().__init__()
    self.encoder = nn.Sequential(
        nn.Conv1d(num_mels, width, 3, padding=1), *_blocks(width, num_res_blocks),
        nn.Conv1d(width, width, 4, stride=2, padding=1), *_blocks(width, num_res_blocks),
        nn.Conv1d(width, width, 4, stride=2, padding=1), *_blocks(width, num_res_blocks),
        nn.ReLU(), nn.Conv1d(width, codebook_dim, 1))
    self.decoder = nn.Sequential(
        nn.Conv1d(codebook_dim, width, 1), *_blocks(width, num_res_blocks),
        nn.ConvTranspose1d(width, width, 4, stride=2, padding=1), *_blocks(width, num_res_blocks),
        nn.ConvTranspose1d(width, width, 4, stride=2, padding=1), *_blocks(width, num_res_blocks),
        nn.ReLU(), nn.Conv1d(width, num_mels, 3, padding=1))
    self.decay = decay
    self.register_buffer('codebook', torch.randn(num_levels, codebook_size, codebook_dim))
    self.register_buffer('cluster_size', torch.ones(num_levels, codebook_size))
    self.register_buffer('embed_sum', self.codebook.clone())

  def forward(self, mel):
    z = self.encoder(mel).transpose(1, 2)  # [batch, steps, dim]
    residual = z.reshape(-1, z.shape[-1])
    quantized = torch.zeros_like(residual)
    commitment = 0.0
    for level, codebook in enumerate(self.codebook):
      scores = 2 * residual @ codebook.T - (codebook ** 2).sum(-1)
      codes = scores.argmax(-1)
      level_q = codebook[codes]
      commitment = commitment + ((residual - level_q.detach()) ** 2).mean()
      with torch.no_grad():  # EMA codebook update of this level.
        one_hot = torch.nn.functional.one_hot(codes, codebook.shape[0]).type(residual.dtype)
        self.cluster_size[level].mul_(self.decay).add_(one_hot.sum(0), alpha=1 - self.decay)
        self.embed_sum[level].mul_(self.decay).add_(one_hot.T @ residual.detach().float(),
                                                    alpha=1 - self.decay)
        total = self.cluster_size[level].sum()
        smoothed = ((self.cluster_size[level] + 1e-5) / (total + codebook.shape[0] * 1e-5)
                    * total)
        new_codebook = self.embed_sum[level] / smoothed[:, None]
      quantized = quantized + level_q
      residual = residual - level_q.detach()
      self.codebook[level].copy_(new_codebook)
    z_q = quantized.view_as(z)
    z_st = z + (z_q - z).detach()
    recon = self.decoder(z_st.transpose(1, 2))
    return recon, commitment


class PatchDiscriminator(nn.Module):
  """[batch, 1, frames, mels] -> (logits, hidden activations)."""

  def __init__(self, channels=(16, 32, 64)):
    super().__init__()
    widths = (1,) + tuple(channels)
    self.convs = nn.ModuleList([nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1)
                                for i in range(len(channels))])
    self.conv_out = nn.Conv2d(widths[-1], 1, 3, padding=1)

  def forward(self, x):
    features = []
    for conv in self.convs:
      x = torch.nn.functional.leaky_relu(conv(x), 0.2)
      features.append(x)
    return self.conv_out(x), features


class MultiScaleDiscriminator(nn.Module):

  def __init__(self, num_scales=3):
    super().__init__()
    self.scales = nn.ModuleList([PatchDiscriminator() for _ in range(num_scales)])

  def forward(self, mel):  # [batch, mels, frames]
    x = mel.transpose(1, 2)[:, None]
    outputs = []
    for index, discriminator in enumerate(self.scales):
      if index:
        x = torch.nn.functional.avg_pool2d(x, 2, ceil_mode=True)
      outputs.append(discriminator(x))
    return outputs


def make_train_step(model, learning_rate=3e-4, bf16=False, adversarial=True,
                    adversarial_weight=0.05, feature_matching_weight=0.5):
  optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
  discriminator = MultiScaleDiscriminator()
  disc_optimizer = torch.optim.Adam(discriminator.parameters(), lr=3e-4, betas=(0.5, 0.9))
  relu = torch.relu

  def step(mel):
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
      recon, commitment = model(mel)
      if adversarial:
        real_outputs = [(logits.detach(), [f.detach() for f in features])
                        for logits, features in discriminator(mel)]
        fake_outputs = discriminator(recon)
    recon = recon.float()
    loss = (recon - mel).abs().mean() + ((recon - mel) ** 2).mean() + 0.25 * commitment
    if adversarial:
      adversarial_loss = sum(relu(1 - logits.float()).mean() for logits, _ in fake_outputs)
      matching, layers = 0.0, 0
      for (_, real_features), (_, fake_features) in zip(real_outputs, fake_outputs):
        for real_f, fake_f in zip(real_features, fake_features):
          matching = matching + ((real_f.float() - fake_f.float()).abs().mean()
                                 / (real_f.float().abs().mean() + 1e-6))
          layers += 1
      loss = (loss + adversarial_weight * adversarial_loss / len(fake_outputs)
              + feature_matching_weight * matching / layers)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if adversarial:
      disc_optimizer.zero_grad(set_to_none=True)
      with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        real_outputs, fake_outputs = discriminator(mel), discriminator(recon.detach())
      disc_loss = sum(relu(1 - r.float()).mean() + relu(1 + f.float()).mean()
                      for (r, _), (f, _) in zip(real_outputs, fake_outputs)) / len(real_outputs)
      disc_loss.backward()
      disc_optimizer.step()
    return loss
  return step
