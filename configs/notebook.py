"""The notebooks' run (notebooks/*.ipynb), in three sizes: cpu, accelerator and smoke.

  python -m diffmvae_jax.main --config=configs/notebook.py:cpu --workdir=runs/notebook_cpu
  # in Python, as the notebooks do:
  #   config_files.get_config('notebook', 'cpu')

The comparison's Diff-MVAE (configs/compare_polymnist.py:diffusion: 3-modality PolyMNIST,
latent 32, a small shared U-Net, beta 0.1) with budgets for a notebook session:
- cpu: 600 steps at batch 32, classifiers 300 steps each (94.7-97.7 % test accuracy), the
  latent prior 1000 steps, evaluation on 100 test examples with DDIM-20. Measured on the
  2-core CPU while it was shared with two other training runs: 7.5 minutes of training,
  24 minutes for the three notebooks (8.5, 2.7 and 13). Enough to see every stage work,
  far too little for coherent samples (coherence 7 %; README's results).
- accelerator: the same model 6000 steps (3.8 epochs), classifiers 1500 steps, the prior
  5000 steps, evaluation on 1000 examples with DDIM-50: minutes on one GPU (an estimate;
  not measured here), plus about a minute of host CPU per FID figure (a 2048-d matrix
  square root), which is why both sizes compute unconditional FID only (as
  compare_polymnist does; --config.eval.fid_conditional=True adds the conditional ones).
- smoke: configs/test_tiny.py's tiny model and 64-example dataset and a handful of steps,
  so CI executes every notebook in seconds (DIFFMVAE_NOTEBOOK_SMOKE=1). Meaningless numbers,
  and no FID: its 2048-d matrix square root alone costs about a CPU-minute per modality
  whatever N is (FID's evaluation path is tested by tests/test_evaluate.py).
Every notebook uses the same workdir for a size, so the one that runs first trains and the
others find the finished checkpoint (training resumes, and stops at once when done).
"""

from configs import compare_polymnist
from configs import test_tiny

SIZES = ('cpu', 'accelerator', 'smoke')


def get_config(size: str = 'cpu'):
  """Returns the notebooks' config of one size: 'cpu', 'accelerator' or 'smoke'."""
  if size not in SIZES:
    raise ValueError(f'Unknown size {size!r}: use configs/notebook.py:cpu, :accelerator or :smoke')
  if size == 'smoke':
    return _smoke()
  config = compare_polymnist.get_config('diffusion')
  t, e, p = config.train, config.eval, config.prior
  t.num_steps = 600 if size == 'cpu' else 6000
  t.log_every = 20 if size == 'cpu' else 100
  t.checkpoint_every = t.num_steps
  t.sample_every = t.num_steps
  e.num_examples = e.unconditional_num = 100 if size == 'cpu' else 1000
  e.batch_size = 50 if size == 'cpu' else 250
  e.classifier_steps = 300 if size == 'cpu' else 1500
  config.sample.num = 8
  config.sample.steps = 20 if size == 'cpu' else 50
  p.num_steps = 1000 if size == 'cpu' else 5000
  p.checkpoint_every = p.num_steps
  p.sampler, p.sampler_steps = 'ode_heun', 10    # README: pc-500's latent gap at 40x the speed.
  return config


def _smoke():
  """test_tiny's model and data (the test session's dataset build is reused)."""
  config = test_tiny.get_config()
  config.loss.beta = 0.1
  t, e, p = config.train, config.eval, config.prior
  t.num_steps, t.log_every, t.checkpoint_every, t.sample_every = 6, 1, 6, 6
  config.sample.num, config.sample.steps = 4, 3
  e.num_examples, e.unconditional_num, e.batch_size = 8, 8, 8
  e.metrics = 'coherence'
  e.classifier_steps = 3
  p.width, p.depth, p.embed_dim = 16, 1, 8
  p.num_steps, p.warmup_steps, p.batch_size, p.log_every, p.checkpoint_every = 4, 1, 16, 1, 4
  p.sampler, p.sampler_steps = 'ode_heun', 3
  return config
