"""Diff-MVAE vs the MoPoE baseline on 3-modality PolyMNIST at a CPU budget (README results).

The two arms share everything but the image decoders and beta: the same data (PolyMNIST
m0..m2), encoders, latent size (32), steps (3000 at batch 32), optimiser and seeds.

  # Diff-MVAE (diffusion decoders, small shared U-Net):
  python -m diffmvae_jax.main --config=configs/compare_polymnist.py:diffusion \
      --workdir=runs/compare/diffusion_s0 --config.seed=0
  # MoPoE baseline (feed-forward Laplace decoders, scale 0.75, beta 2.5 as Sutter et al.):
  python -m diffmvae_jax.main --config=configs/compare_polymnist.py:mopoe \
      --workdir=runs/compare/mopoe_s0 --config.seed=0
  # then, for each workdir (classifiers: --mode=train_classifiers once, any workdir):
  python -m diffmvae_jax.main --config=configs/compare_polymnist.py:diffusion \
      --workdir=runs/compare/diffusion_s0 --config.seed=0 --mode=eval \
      --config.eval.classifier_dir=runs/compare/classifiers

beta: the diffusion arm's image term is the simplified denoising loss at one random t,
which under-weights reconstruction relative to the true diffusion ELBO by a factor
1 / (T * beta_t / (2 alpha_t (1 - alphabar_t))), about 10 to 500 over the linear schedule;
beta = 1 then acts as a strongly over-weighted KL and the posterior collapses (KL ~ 2 nats
after 1500 steps, coherence at chance). beta = 0.1 keeps ~20 nats in z. The MoPoE arm
uses the published PolyMNIST beta of 2.5 with its fixed-scale Laplace likelihood.

All of it, classifiers and the latent prior included, for one seed:

  bash launch/compare_polymnist.sh          # SEEDS="0 1" for two seeds

Cost measured on this project's 2-core CPU (one seed of `bash launch/compare_polymnist.sh`;
some steps shared the CPU, so about 2.5-3 hours run back to back): the four digit
classifiers ~30 min with the PolyMNIST build (once); Diff-MVAE 0.8 s/step alone (~40 min for
3000 steps); MoPoE 0.55-0.65 s/step while sharing the CPU with the Diff-MVAE run (~33 min);
evaluation ~27 min (Diff-MVAE, DDIM-50) and ~19 min (MoPoE, including the FID reference
features, computed once), both dominated by DDIM sampling and Inception features; the latent
prior ~5 min and its unconditional evaluation ~11 min. The README's table is this run.
"""

from configs import demo


def get_config(arm: str = 'diffusion'):
  """Returns the config of one arm: 'diffusion' (Diff-MVAE) or 'mopoe' (the baseline)."""
  config = demo.get_config()
  config.train.num_steps = 3000
  config.train.checkpoint_every = 1000
  config.train.sample_every = 3000
  config.train.ema_decay = 0.999
  if arm == 'diffusion':
    config.loss.beta = 0.1
  elif arm == 'mopoe':
    config.model.decoders.image = 'laplace'
    config.loss.beta = 2.5
  else:
    raise ValueError(f"Unknown arm {arm!r}: use configs/compare_polymnist.py:diffusion or :mopoe")
  ev = config.eval
  ev.num_examples = 250
  ev.unconditional_num = 250
  ev.batch_size = 125
  ev.fid_conditional = False        # CPU budget: unconditional FID per modality only.
  config.sample.steps = 50
  # The latent SDE prior (--mode=train_prior) over the 32-d latents: a smaller score net
  # and fewer steps than the default (about 3 minutes on 2 cores).
  p = config.prior
  p.width, p.depth = 256, 3
  p.num_steps, p.warmup_steps, p.checkpoint_every = 5000, 200, 1000
  return config
