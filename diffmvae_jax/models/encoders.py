"""Modality encoders E_m(x_m) -> (mu_m, logvar_m) of a diagonal Gaussian q_m(z | x_m).

Each encoder maps one modality's batch to two (B, D) float32 arrays. Inputs follow the
batch conventions of data/dataset_api.py: images float32 in [-1, 1] (B, H, W, 3); masks
float32 in {0, 1} (B, H, W, 1) (the image CNN with ``binary_input``); attributes float32
in {0, 1} (B, K); captions int32 token ids (B, L); labels int32 class ids (B,).
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from diffmvae_jax.models import fusion
from diffmvae_jax.models import patch_conv


class GaussianHeads(nn.Module):
  """Two dense heads: the mean and the log-variance of q(z | x).

  The log-variance is clipped to +-fusion.LOGVAR_BOUND (30), the range in which fusion and
  both KL estimators are finite in float32; no trained model comes near it.
  """
  latent_dim: int

  @nn.compact
  def __call__(self, h):
    mu = nn.Dense(self.latent_dim, name='mu')(h)
    logvar = nn.Dense(self.latent_dim, name='logvar')(h)
    return mu, fusion.bound_logvar(logvar)


class ImageEncoder(nn.Module):
  """The MoPoE PolyMNIST CNN: 3x3 stride-2 convs + ReLU, dense hidden, heads.

  With channels (32, 64, 128) on 28x28x3 inputs (28 -> 14 -> 7 -> 4), hidden 512
  and latent 512 this is the encoder of Sutter et al. 2021. Every conv maps a side s to
  ceil(s / 2), so any size and channel count works: e.g. 4 convs take 64 -> 4 (CUB),
  5 take 128 -> 4 (CelebAMask-HQ). Masks use it with one input channel.

  Attributes:
    latent_dim: D.
    channels: output channels of the stride-2 convs (one conv each).
    hidden: width of the dense layer after flattening.
    binary_input: inputs are in {0, 1} (masks) and are mapped to {-1, 1} first, the
      range of images.
  """
  latent_dim: int
  channels: Sequence[int] = (32, 64, 128)
  hidden: int = 512
  binary_input: bool = False

  @nn.compact
  def __call__(self, x):
    """Encodes images or masks.

    Args:
      x: float32 (B, H, W, C): images in [-1, 1], or masks in {0, 1} with binary_input.

    Returns:
      mu, logvar: float32 (B, latent_dim).
    """
    h = 2.0 * x - 1.0 if self.binary_input else x
    for i, c in enumerate(self.channels):
      h = nn.relu(patch_conv.Conv(c, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
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


class AttributesEncoder(nn.Module):
  """Binary attribute vector -> MLP -> heads (the label encoder's MLP on a float input)."""
  latent_dim: int
  hidden: int = 128

  @nn.compact
  def __call__(self, attributes):
    """Args: attributes float32 (B, K) in {0, 1}. Returns: mu, logvar (B, latent_dim)."""
    h = nn.relu(nn.Dense(self.hidden, name='hidden0')(attributes.astype(jnp.float32)))
    h = nn.relu(nn.Dense(self.hidden, name='hidden1')(h))
    return GaussianHeads(self.latent_dim, name='heads')(h)
