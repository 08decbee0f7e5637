"""The default VQ-VAE written plainly in PyTorch: the baseline users would pick.

Same architecture as melodygan_jax.models.vqvae with configs/vqvae.py (Conv
k3 in, 2 residual blocks per resolution, two k4/s2 downsamplings, k1 to the
codebook; EMA codebook; mirrored decoder with transposed convolutions), same
loss (L1 + MSE + 0.25 commitment) and optimizer (Adam after clipping).
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

  def __init__(self, num_mels=80, width=256, num_res_blocks=2, codebook_size=512,
               codebook_dim=64, decay=0.99):
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
    self.register_buffer('codebook', torch.randn(codebook_size, codebook_dim))
    self.register_buffer('cluster_size', torch.ones(codebook_size))
    self.register_buffer('embed_sum', self.codebook.clone())

  def forward(self, mel):
    z = self.encoder(mel).transpose(1, 2)  # [batch, steps, dim]
    flat = z.reshape(-1, z.shape[-1])
    scores = 2 * flat @ self.codebook.T - (self.codebook ** 2).sum(-1)
    codes = scores.argmax(-1)
    z_q = self.codebook[codes].view_as(z)
    commitment = ((z - z_q.detach()) ** 2).mean()
    z_st = z + (z_q - z).detach()
    recon = self.decoder(z_st.transpose(1, 2))
    with torch.no_grad():  # EMA codebook update.
      one_hot = torch.nn.functional.one_hot(codes, self.codebook.shape[0]).type(flat.dtype)
      self.cluster_size.mul_(self.decay).add_(one_hot.sum(0), alpha=1 - self.decay)
      self.embed_sum.mul_(self.decay).add_(one_hot.T @ flat.float(), alpha=1 - self.decay)
      total = self.cluster_size.sum()
      smoothed = (self.cluster_size + 1e-5) / (total + self.codebook.shape[0] * 1e-5) * total
      self.codebook.copy_(self.embed_sum / smoothed[:, None])
    return recon, commitment


def make_train_step(model, learning_rate=3e-4, bf16=False):
  optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)

  def step(mel):
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
      recon, commitment = model(mel)
    recon = recon.float()
    loss = (recon - mel).abs().mean() + ((recon - mel) ** 2).mean() + 0.25 * commitment
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss
  return step
