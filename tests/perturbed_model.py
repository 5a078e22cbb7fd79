"""A tiny Diff-MVAE with every parameter moved off its initial value, for decoder tests.

The U-Net's last convolution starts at zero, so a freshly initialised model's output does not
depend on its inputs; the perturbation makes every output depend on them.
"""

import jax
import jax.numpy as jnp

from diffmvae_jax.data import pipeline
from diffmvae_jax.models import diffmvae
from diffmvae_jax.models import modalities as modalities_lib


def build(config):
  """Returns (model, params, modalities) for a config over test_tiny's data."""
  mods = modalities_lib.resolve_modalities(config, pipeline.modality_specs(config.data))
  model = diffmvae.model_from_config(config, mods)
  params = jax.jit(lambda k: model.init(k, diffmvae.dummy_batch(mods), k,
                                        method=diffmvae.DiffMVAE.init_all))(jax.random.PRNGKey(0))
  params = jax.tree.map(lambda x: x + 0.01 * jnp.cos(jnp.arange(x.size).reshape(x.shape)),
                        params)
  return model, params, mods
