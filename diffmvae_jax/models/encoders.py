"""Modality encoders E_m(x_m) -> (mu_m, logvar_m) of a diagonal Gaussian q_m(z | x_m).

Each encoder maps one modality's batch to two (B, D) float32 arrays. Images are
float32 in [-1, 1] (B, H, W, C); captions are int32 token ids (B, L); labels are
int32 class ids (B,).
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class GaussianHeads(nn.Module):
  """Two dense heads: the mean and the log-variance of q(z | x)."""
  latent_dim: int

  @nn.compact
  def __call__(self, h):
    mu = nn.Dense(self.latent_dim, name='mu')(h)
    logvar = nn.Dense(self.latent_dim, name='logvar')(h)
    return mu, logvar


class ImageEncoder(nn.Module):
  """The MoPoE PolyMNIST CNN: 3x3 stride-2 convs + ReLU, dense hidden, heads.

  With channels (32, 64, 128) on 28x28x3 inputs (28 -> 14 -> 7 -> 4), hidden 512
  and latent 512 this is the encoder of Sutter et al. 2021.
  """
  latent_dim: int
  channels: Sequence[int] = (32, 64, 128)
  hidden: int = 512

  @nn.compact
  def __call__(self, x):
    """Args: x (B, H, W, C) float32 in [-1, 1]. Returns: mu, logvar (B, latent_dim)."""
    h = x
    for i, c in enumerate(self.channels):
      h = nn.relu(nn.Conv(c, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                          name=f'conv{i}')(h))
    h = h.reshape((h.shape[0], -1))
    h = nn.relu(nn.Dense(self.hidden, name='hidden')(h))
    return GaussianHeads(self.latent_dim, name='heads')(h)


class CaptionEncoder(nn.Module):
  """Token embedding, stride-2 1-D convs, dense hidden, heads.

  Padding tokens (id 0) are embedded like any other id; their embedding is learned.
  """
  latent_dim: int
  vocab_size: int
  embed_dim: int = 64
  channels: Sequence[int] = (64, 128)
  hidden: int = 256

  @nn.compact
  def __call__(self, tokens):
    """Args: tokens (B, L) int32. Returns: mu, logvar (B, latent_dim)."""
    h = nn.Embed(self.vocab_size, self.embed_dim, name='embed')(tokens)
    for i, c in enumerate(self.channels):
      h = nn.relu(nn.Conv(c, (4,), strides=(2,), padding=((1, 1),), name=f'conv{i}')(h))
    h = h.reshape((h.shape[0], -1))
    h = nn.relu(nn.Dense(self.hidden, name='hidden')(h))
    return GaussianHeads(self.latent_dim, name='heads')(h)


class LabelEncoder(nn.Module):
  """One-hot class -> MLP -> heads."""
  latent_dim: int
  num_classes: int
  hidden: int = 128

  @nn.compact
  def __call__(self, labels):
    """Args: labels (B,) int32. Returns: mu, logvar (B, latent_dim)."""
    h = jnp.eye(self.num_classes, dtype=jnp.float32)[labels]
    h = nn.relu(nn.Dense(self.hidden, name='hidden0')(h))
    h = nn.relu(nn.Dense(self.hidden, name='hidden1')(h))
    return GaussianHeads(self.latent_dim, name='heads')(h)
