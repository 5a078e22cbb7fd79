"""Diff-MVAE: modality encoders, MoPoE fusion, diffusion and feed-forward decoders.

``DiffMVAE.__call__`` computes one Monte-Carlo estimate of the negative ELBO
(DESIGN.md §2) and returns every named term:

  loss = mean_b [ sum_m lambda_m * nll_m + beta * KL ]

where nll_m is the denoising loss (sum over pixels of (eps - eps_theta)^2 at one
random t) for image modalities with the diffusion decoder, and -log p_m(x_m | z)
for feed-forward decoders: Laplace / Gaussian / Bernoulli summed over pixels (images),
Bernoulli summed over pixels (masks) or attributes, categorical summed over tokens
(captions), categorical (labels). With model.diffusion.coarse_weight > 0 each
diffusion-decoded image also has a feed-forward coarse decoder whose Laplace NLL enters the
loss (not the ELBO) with weight lambda_m * coarse_weight, 'coarse_nll/<m>' in the terms.
With model.diffusion.residual the diffusion decoder models x - c(z), the residual about the
coarse decoder's mean image c(z) (exact: the shift has Jacobian 1), and samples c(z) + r.
With model.diffusion.z_dropout = p > 0, training drops z from the U-Net's input for a
fraction p of rows (the unconditional branch that sample.guidance needs).
z ~ q(z | X), the MoPoE mixture; gradients reach the
encoders through z (end to end). With every image decoder feed-forward the same
module is the MoPoE-VAE baseline of Sutter et al. 2021.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffmvae_jax.diffusion import schedules
from diffmvae_jax.models import decoders as decoders_lib
from diffmvae_jax.models import encoders as encoders_lib
from diffmvae_jax.models import fusion
from diffmvae_jax.models import modalities as modalities_lib
from diffmvae_jax.models import unet as unet_lib


# The KL estimators of the MoPoE term (loss.kl_estimator), in fusion.py.
KL_ESTIMATORS = ('subset_average', 'mixture_mc')

def coarse_image(location):
  """The coarse decoder's mean image (B, H, W, C) in [-1, 1] from its Laplace location."""
  return decoders_lib.image_mean('laplace', location)


def make_diffusion_schedule(model_config) -> schedules.DiffusionSchedule:
  d = model_config.diffusion
  return schedules.make_schedule(d.schedule, d.num_timesteps, beta_start=d.beta_start,
                                 beta_end=d.beta_end)


class DiffMVAE(nn.Module):
  """The multimodal VAE.

  Attributes:
    modalities: tuple of models.modalities.Modality (static).
    model_config: ml_collections.FrozenConfigDict, the ``model`` section.
    loss_config: ml_collections.FrozenConfigDict, the ``loss`` section.
  """
  modalities: tuple
  model_config: Any
  loss_config: Any

  # ------------------------------------------------------------ structure
  @property
  def names(self):
    return tuple(m.name for m in self.modalities)

  @property
  def diffusion_names(self):
    return tuple(m.name for m in self.modalities if m.decoder == 'diffusion')

  @property
  def uses_coarse(self):
    """Whether the diffusion-decoded images have coarse decoders (model.diffusion.coarse_*,
    residual)."""
    d = self.model_config.diffusion
    return bool(self.diffusion_names) and (d.get('coarse_weight', 0.0) > 0
                                           or d.get('coarse_condition', False)
                                           or d.get('residual', False))

  @property
  def residual(self):
    """Whether the diffusion decoders model the residual about c(z) (model.diffusion.residual)."""
    return bool(self.diffusion_names) and self.model_config.diffusion.get('residual', False)

  def setup(self):
    cfg = self.model_config
    d = cfg.latent_dim
    encoders, ff_decoders = {}, {}
    for m in self.modalities:
      if m.kind == 'image':
        encoders[m.name] = encoders_lib.ImageEncoder(
            d, tuple(cfg.image_encoder.channels), cfg.image_encoder.hidden)
        if m.decoder != 'diffusion':
          ff_decoders[m.name] = decoders_lib.ImageDecoder(
              m.shape, tuple(cfg.image_ff_decoder.channels), cfg.image_ff_decoder.hidden)
      elif m.kind == 'mask':
        # The image CNN on one channel; the mask decoder is the feed-forward image decoder
        # with one output channel of Bernoulli logits. Both take the image sections' sizes.
        encoders[m.name] = encoders_lib.ImageEncoder(
            d, tuple(cfg.image_encoder.channels), cfg.image_encoder.hidden, binary_input=True)
        ff_decoders[m.name] = decoders_lib.ImageDecoder(
            m.shape, tuple(cfg.image_ff_decoder.channels), cfg.image_ff_decoder.hidden)
      elif m.kind == 'attributes':
        encoders[m.name] = encoders_lib.AttributesEncoder(d, cfg.attributes_hidden)
        ff_decoders[m.name] = decoders_lib.AttributesDecoder(m.shape[0], cfg.attributes_hidden)
      elif m.kind == 'caption':
        encoders[m.name] = encoders_lib.CaptionEncoder(
            d, m.num_classes, cfg.text.embed_dim, tuple(cfg.text.channels), cfg.text.hidden)
        ff_decoders[m.name] = decoders_lib.CaptionDecoder(
            m.shape[0], m.num_classes, tuple(cfg.text.channels)[::-1], cfg.text.hidden)
      elif m.kind == 'label':
        encoders[m.name] = encoders_lib.LabelEncoder(d, m.num_classes, cfg.label_hidden)
        ff_decoders[m.name] = decoders_lib.LabelDecoder(m.num_classes, cfg.label_hidden)
      else:
        raise ValueError(f'Unknown modality kind {m.kind!r}.')
    self.encoders = encoders
    self.ff_decoders = ff_decoders
    diff_mods = [m for m in self.modalities if m.decoder == 'diffusion']
    if diff_mods:
      dc = cfg.diffusion

      def make_unet(out_channels, num_modalities, name):
        return unet_lib.UNet(
            out_channels=out_channels, base_channels=dc.base_channels,
            channel_mults=tuple(dc.channel_mults), num_res_blocks=dc.num_res_blocks,
            attention_resolutions=tuple(dc.attention_resolutions), num_groups=dc.num_groups,
            dropout=dc.dropout, num_modalities=num_modalities,
            dtype=jnp.dtype(dc.get('compute_dtype', 'float32')), name=name)

      if self.uses_coarse:
        # Named per modality, as the feed-forward image decoders are (ff_decoders_<m>).
        self.coarse_decoders = {
            m.name: decoders_lib.ImageDecoder(m.shape, tuple(cfg.image_ff_decoder.channels),
                                              cfg.image_ff_decoder.hidden)
            for m in diff_mods}
      if dc.shared_unet:
        shapes = {m.shape for m in diff_mods}
        if len(shapes) > 1:
          raise ValueError(f'A shared U-Net needs image modalities of one shape, got {shapes}; '
                           'set model.diffusion.shared_unet=False.')
        self.unet = make_unet(diff_mods[0].shape[-1], len(diff_mods), 'unet')
      else:
        self.unets = {m.name: make_unet(m.shape[-1], 0, f'unet_{m.name}') for m in diff_mods}

  # ------------------------------------------------------------ pieces
  def encode(self, batch, names=None):
    """Returns the experts' (mu, logvar), each (B, M, D).

    Args:
      batch: dict of modality arrays.
      names: which modalities to encode, in this order (default: all, model order).
    """
    outs = [self.encoders[name](batch[name]) for name in (names or self.names)]
    mu = jnp.stack([o[0] for o in outs], axis=1)
    logvar = jnp.stack([o[1] for o in outs], axis=1)
    return mu, logvar

  def posterior(self, batch, given=None):
    """The product of the given modalities' experts, q_S(z | X_S) (DESIGN §2.6).

    The one place outside training that turns a batch and a conditioning set into a
    posterior: generation, evaluation, the latent prior's latents and the probe use it.

    Args:
      batch: dict with the arrays of the `given` modalities (B, ...) and optionally
        'available' (B, M) bool over all the model's modalities (model order): an
        unavailable expert is left out of its example's product, whatever it holds.
      given: names of the modalities to condition on (default: all, model order).

    Returns:
      (mu_S, logvar_S), float32 (B, D) each; with model.use_prior_expert the N(0, I) expert
      is in every product.
    """
    given = tuple(given or self.names)
    mu, logvar = self.encode(batch, given)
    if 'available' in batch:
      columns = jnp.asarray([self.names.index(n) for n in given])
      members = jnp.asarray(batch['available']).astype(bool)[:, columns]
    else:
      members = jnp.ones((len(given),), bool)
    return fusion.product_of_experts(mu, logvar, members, self.model_config.use_prior_expert)

  def coarse_location(self, name, z):
    """The coarse decoder's Laplace location (B, H, W, C), images in [0, 1], from z (B, D)."""
    return self.coarse_decoders[name](z)

  def coarse_mean(self, name, z):
    """c(z) (B, H, W, C) in [-1, 1]: the coarse decoder's mean image of z (B, D)."""
    return coarse_image(self.coarse_location(name, z))

  def residual_offset(self, name, z):
    """c(z) (B, H, W, C) in [-1, 1]: the coarse mean image the diffusion of modality `name`
    is taken about under model.diffusion.residual (image = c(z) + residual); zeros without."""
    m = next(m for m in self.modalities if m.name == name)
    if not self.residual:
      return jnp.zeros((z.shape[0],) + tuple(m.shape), jnp.float32)
    return self.coarse_mean(name, z)

  def _unet_input(self, x_t, coarse_location, z_keep=None):
    """x_t, with the coarse mean image in [-1, 1] as extra channels under coarse_condition.

    Rows with z_keep 0 (the unconditional branch of guidance) get zeros there: the coarse
    image is a function of z, so it is dropped with z.
    """
    if not self.model_config.diffusion.get('coarse_condition', False):
      return x_t
    coarse = coarse_image(coarse_location).astype(x_t.dtype)
    if z_keep is not None:
      coarse = coarse * z_keep.astype(coarse.dtype)[:, None, None, None]
    return jnp.concatenate([x_t, coarse], axis=-1)

  def _z_keep(self, key, num_rows, train):
    """float32 (num_rows,) of 1 (the U-Net sees z) and 0 (it does not) or None.

    In training with model.diffusion.z_dropout = p > 0 each row drops z with probability p,
    so the same U-Net also learns the unconditional eps(x_t, t) that classifier-free
    guidance (sample.guidance) extrapolates away from. None otherwise (every row sees z).
    """
    p = self.model_config.diffusion.get('z_dropout', 0.0)
    if not train or p <= 0:
      return None
    return jax.random.bernoulli(key, 1.0 - p, (num_rows,)).astype(jnp.float32)

  def eps_prediction(self, name, x_t, t, z, train=False, z_keep=None):
    """eps_theta(x_t, t, z) of the diffusion decoder of modality `name`.

    With model.diffusion.coarse_condition the U-Net also sees the coarse decoder's mean image
    of z (recomputed here, so every sampler conditions on z alone). Under
    model.diffusion.residual, x_t is the noised residual x - residual_offset(name, z).

    Under model.diffusion.prediction = 'v' the U-Net's output is read as v and turned into
    eps here (schedules.eps_from_v), so every sampler sees eps.

    Args:
      x_t (B, H, W, C); t (B,) int32; z (B, D).
      z_keep: float32 (B,): 0 leaves z (and the coarse image of z) out of the row's U-Net
        input, the unconditional branch of guidance (model.diffusion.z_dropout); None = 1.

    Returns: (B, H, W, C).
    """
    unet_in = x_t
    if self.model_config.diffusion.get('coarse_condition', False):
      unet_in = self._unet_input(x_t, self.coarse_location(name, z), z_keep)
    if self.model_config.diffusion.shared_unet:
      modality_id = jnp.full((x_t.shape[0],), self.diffusion_names.index(name), jnp.int32)
      out = self.unet(unet_in, t, z, modality_id, train=train, z_keep=z_keep)
    else:
      out = self.unets[name](unet_in, t, z, None, train=train, z_keep=z_keep)
    return self._eps_from_output(None, x_t, t, out)

  def _eps_from_output(self, schedule, x_t, t, out):
    """The U-Net's output `out` (B, H, W, C) as eps, per model.diffusion.prediction.

    schedule: the diffusion schedule, or None to build it (only 'v' needs it).
    """
    if self.model_config.diffusion.get('prediction', 'eps') == 'v':
      if schedule is None:
        schedule = make_diffusion_schedule(self.model_config)
      return schedules.eps_from_v(schedule, x_t, t, out)
    return out

  def decode_feedforward(self, name, z):
    """The feed-forward decoder's output for modality `name`.

    Args: name: a modality without a diffusion decoder; z float32 (B, D).

    Returns:
      float32: images (B, H, W, C) location (logits for Bernoulli); masks (B, H, W, 1)
      logits; attributes (B, K) logits; captions (B, L, V) logits; labels (B, K) logits.
    """
    return self.ff_decoders[name](z)

  def feedforward_nll(self, modality, out, x):
    """-log p_m(x | z) (B,) of a feed-forward decoder's output `out` for data `x`."""
    if modality.kind == 'image':
      return decoders_lib.image_nll(modality.decoder, out, x,
                                    self.model_config.image_likelihood_scale)
    if modality.kind in ('mask', 'attributes'):
      return decoders_lib.bernoulli_nll(out, x)
    if modality.kind == 'caption':
      return decoders_lib.caption_nll(out, x)
    if modality.kind == 'label':
      return decoders_lib.label_nll(out, x)
    raise ValueError(f'Unknown modality kind {modality.kind!r}.')

  # ------------------------------------------------------------ the ELBO
  def _t_proposal(self, schedule):
    """None (t uniform) or the (T,) probabilities t is drawn with (model.diffusion.t_sampling,
    used by the 'elbo' loss only)."""
    d = self.model_config.diffusion
    if d.get('loss', 'simple') != 'elbo':
      return None
    return schedules.t_proposal(schedule, d.get('t_sampling', 'uniform'))

  def _image_nll(self, schedule, x0, x_t, t, noise, out, proposal):
    """(B,) image term per model.diffusion.loss: 'simple' (DESIGN §2.4) or 'elbo' (nats).

    `out` is the U-Net's raw output. Under prediction 'v' the simple loss is the squared v
    error; the bound is the same bound whatever the output is read as (eps from v).
    """
    d = self.model_config.diffusion
    v_output = d.get('prediction', 'eps') == 'v'
    if d.get('loss', 'simple') == 'elbo':
      eps = self._eps_from_output(schedule, x_t, t, out)
      return schedules.vlb_nll(schedule, x0, t, noise, eps, proposal)
    if v_output:
      return schedules.denoising_loss(schedules.v_target(schedule, x0, t, noise), out)
    return schedules.denoising_loss(noise, out)

  def _diffusion_nll(self, batch, z, key, train, coarse_locations):
    """Denoising losses (B, n_diffusion) of the diffusion-decoded modalities.

    With model.diffusion.example_subsample = e (0 < e < B) the U-Net runs on e random
    examples of the batch only; their losses, scaled by B / e, stand for the batch (the
    others' entries are 0), so the batch mean stays unbiased and the U-Net's cost falls by
    B / e while encoders and feed-forward decoders still see every example.

    coarse_locations: {name: (B, H, W, C)} of the coarse decoders, or None.
    """
    batch_size = z.shape[0]
    e = self.model_config.diffusion.get('example_subsample', 0)
    if not 0 < e < batch_size:
      return self._diffusion_nll_rows(batch, z, key, train, coarse_locations)
    key_rows, key = jax.random.split(key)
    rows = jax.random.permutation(key_rows, batch_size)[:e]
    pick = lambda x: jnp.take(x, rows, axis=0)
    sub = self._diffusion_nll_rows(
        {name: pick(batch[name]) for name in self.diffusion_names}, pick(z), key, train,
        None if coarse_locations is None else jax.tree.map(pick, coarse_locations))
    return jnp.zeros((batch_size, sub.shape[1]), sub.dtype).at[rows].set(
        sub * (batch_size / e))

  def _diffusion_nll_rows(self, batch, z, key, train, coarse_locations):
    """_diffusion_nll on every row of `batch`: (B, n_diffusion)."""
    cfg = self.model_config.diffusion
    names = self.diffusion_names
    n = len(names)
    schedule = make_diffusion_schedule(self.model_config)
    batch_size = z.shape[0]
    key_pick, key_t, key_noise = jax.random.split(key, 3)
    key_keep = jax.random.fold_in(key, 7)    # Only drawn under z_dropout; the rest as before.
    proposal = self._t_proposal(schedule)
    if not cfg.shared_unet:
      per_mod = []
      for i, name in enumerate(names):
        x0 = batch[name]
        if self.residual:
          x0 = x0 - coarse_image(coarse_locations[name])
        t = schedules.sample_t(jax.random.fold_in(key_t, i), cfg.num_timesteps,
                               (batch_size,), proposal)
        noise = jax.random.normal(jax.random.fold_in(key_noise, i), x0.shape, x0.dtype)
        x_t = schedules.q_sample(schedule, x0, t, noise)
        z_keep = self._z_keep(jax.random.fold_in(key_keep, i), batch_size, train)
        if coarse_locations is not None:
          x_t_in = self._unet_input(x_t, coarse_locations[name], z_keep)
        else:
          x_t_in = x_t
        out = self.unets[name](x_t_in, t, z, None, train=train, z_keep=z_keep)
        per_mod.append(self._image_nll(schedule, x0, x_t, t, noise, out, proposal))
      return jnp.stack(per_mod, axis=1)
    # Shared U-Net: one call over (B * k) images; k random modalities per example.
    k = cfg.modality_subsample if 0 < cfg.modality_subsample < n else n
    if k < n:
      order = jnp.argsort(jax.random.uniform(key_pick, (batch_size, n)), axis=1)
      chosen = order[:, :k]                                             # (B, k)
    else:
      chosen = jnp.broadcast_to(jnp.arange(n), (batch_size, n))
    images = jnp.stack([batch[name] for name in names], axis=1)         # (B, n, H, W, C)
    x0 = jnp.take_along_axis(images, chosen[:, :, None, None, None], axis=1)
    x0 = x0.reshape((batch_size * k,) + x0.shape[2:])
    locs = None
    if coarse_locations is not None:
      locs = jnp.stack([coarse_locations[name] for name in names], axis=1)
      locs = jnp.take_along_axis(locs, chosen[:, :, None, None, None], axis=1)
      locs = locs.reshape(x0.shape)
      if self.residual:
        x0 = x0 - coarse_image(locs)
    t = schedules.sample_t(key_t, cfg.num_timesteps, (batch_size * k,), proposal)
    noise = jax.random.normal(key_noise, x0.shape, x0.dtype)
    x_t = schedules.q_sample(schedule, x0, t, noise)
    z_keep = self._z_keep(key_keep, batch_size * k, train)
    x_t_in = x_t if locs is None else self._unet_input(x_t, locs, z_keep)
    z_rep = jnp.repeat(z, k, axis=0)
    out = self.unet(x_t_in, t, z_rep, chosen.reshape(-1).astype(jnp.int32), train=train,
                    z_keep=z_keep)
    losses = (self._image_nll(schedule, x0, x_t, t, noise, out, proposal)
              .reshape(batch_size, k) * (n / k))
    rows = jnp.arange(batch_size)[:, None]
    return jnp.zeros((batch_size, n), losses.dtype).at[rows, chosen].add(losses)

  def __call__(self, batch, key, train=False):
    """One-sample estimate of the negative ELBO and all its terms.

    Args:
      batch: dict with every modality's array (see encoders), optionally
        'available' (B, M) bool marking modalities present per example.
      key: PRNG key for z, subsets, diffusion times and noise.
      train: enables dropout (needs the 'dropout' rng).

    Returns:
      dict of scalars: 'loss' (to minimise), 'elbo', 'kl', 'nll/<m>' (per modality,
      unweighted, mean over the batch), 'latent_mu_abs'. For a diffusion decoder 'nll/<m>'
      is, with model.diffusion.loss='simple' (the default), its denoising loss (DESIGN §2.4's
      surrogate, summed over pixels at one random t), not a negative log-likelihood in nats,
      so 'elbo' is then the design's surrogate ELBO; with 'elbo' it is a one-sample estimate
      of the diffusion model's bound in nats (schedules.vlb_nll).
    """
    names = self.names
    batch_size = batch[names[0]].shape[0]
    available = batch.get('available')
    if available is None:
      available = jnp.ones((batch_size, len(names)), bool)
    else:
      # Whatever a missing modality holds (zeros, NaN) must not reach any term.
      batch = dict(batch)
      for i, name in enumerate(names):
        present = available[:, i].reshape((batch_size,) + (1,) * (batch[name].ndim - 1))
        batch[name] = jnp.where(present, batch[name], jnp.zeros_like(batch[name]))
    mu, logvar = self.encode(batch)
    subsets = fusion.subset_matrix(len(names))
    mu_s, logvar_s = fusion.mopoe_components(mu, logvar, subsets,
                                             self.model_config.use_prior_expert, available)
    valid = fusion.valid_subsets(subsets, available)
    key_z, key_dec = jax.random.split(key)
    sampling = self.loss_config.get('subset_sampling', 'per_example')
    if sampling not in fusion.SUBSET_SAMPLINGS:
      raise ValueError(f'Unknown loss.subset_sampling {sampling!r}; '
                       f'use one of {fusion.SUBSET_SAMPLINGS}.')
    z, _ = fusion.sample_mixture(key_z, mu_s, logvar_s, valid,
                                 stratified=sampling == 'stratified')
    if self.loss_config.kl_estimator == 'subset_average':
      kl = fusion.kl_subset_average(mu_s, logvar_s, valid)
    elif self.loss_config.kl_estimator == 'mixture_mc':
      kl = fusion.kl_mixture_mc(z, mu_s, logvar_s, valid)
    else:
      raise ValueError(f'Unknown loss.kl_estimator {self.loss_config.kl_estimator!r}; '
                       f'use one of {KL_ESTIMATORS}.')
    nll = {}
    coarse_nll, coarse_locations = {}, None
    if self.uses_coarse:
      coarse_locations = {name: self.coarse_location(name, z) for name in self.diffusion_names}
      coarse_nll = {name: decoders_lib.image_nll('laplace', loc, batch[name],
                                                 self.model_config.image_likelihood_scale)
                    for name, loc in coarse_locations.items()}
    if self.diffusion_names:
      diff_nll = self._diffusion_nll(batch, z, key_dec, train, coarse_locations)
      for i, name in enumerate(self.diffusion_names):
        nll[name] = diff_nll[:, i]
    for m in self.modalities:
      if m.decoder == 'diffusion':
        continue
      nll[m.name] = self.feedforward_nll(m, self.decode_feedforward(m.name, z), batch[m.name])
    weighted = 0.0
    terms = {}
    for i, m in enumerate(self.modalities):
      term = jnp.where(available[:, i], nll[m.name], 0.0)
      weighted = weighted + m.weight * term
      terms[f'nll/{m.name}'] = jnp.mean(term)
      if m.name in coarse_nll:
        coarse_term = jnp.where(available[:, i], coarse_nll[m.name], 0.0)
        weighted = weighted + (m.weight * self.model_config.diffusion.coarse_weight
                               * coarse_term)
        terms[f'coarse_nll/{m.name}'] = jnp.mean(coarse_term)
    objective = weighted + self.loss_config.beta * kl
    terms['kl'] = jnp.mean(kl)
    observed_nll = jnp.where(available, jnp.stack([nll[n] for n in names], 1), 0.0)
    terms['elbo'] = -jnp.mean(jnp.sum(observed_nll, 1) + kl)
    terms['loss'] = jnp.mean(objective)
    # Mean |mu| over the available experts only (an unavailable one may hold anything).
    num_entries = jnp.maximum(jnp.sum(available) * mu.shape[-1], 1).astype(jnp.float32)
    abs_mu = jnp.where(available[..., None], jnp.abs(mu), 0.0)
    terms['latent_mu_abs'] = jnp.sum(abs_mu) / num_entries
    return terms

  def init_all(self, batch, key):
    """Touches every submodule so `init` creates all parameters."""
    terms = self(batch, key)
    mu, _ = self.encode(batch)
    z = mu[:, 0]
    for m in self.modalities:
      if m.decoder == 'diffusion':
        t = jnp.zeros((z.shape[0],), jnp.int32)
        self.eps_prediction(m.name, batch[m.name], t, z)
        if self.uses_coarse:
          self.coarse_location(m.name, z)
      else:
        self.decode_feedforward(m.name, z)
    return terms


def model_from_config(config, modalities) -> DiffMVAE:
  """Builds the (static) Flax module from the full config and resolved modalities."""
  import ml_collections  # Local: keep the module importable without configs.
  return DiffMVAE(modalities=tuple(modalities),
                  model_config=ml_collections.FrozenConfigDict(config.model),
                  loss_config=ml_collections.FrozenConfigDict(config.loss))


def dummy_batch(modalities, batch_size: int = 2) -> dict:
  """Zeros of every modality's shape and dtype, for `init`."""
  batch = {}
  for m in modalities:
    dtype = np.float32 if m.kind in modalities_lib.FLOAT_KINDS else np.int32
    batch[m.name] = np.zeros((batch_size,) + tuple(m.shape), dtype)
  return batch
