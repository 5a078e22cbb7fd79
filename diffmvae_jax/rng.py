"""Named random streams: a purpose's key is fold_in(PRNGKey(config.seed), TAGS[purpose]).

One root key per run, PRNGKey(seed); each purpose folds its own 32-bit tag (four ASCII
letters) into it, so streams of different purposes never coincide, whatever the seeds (an
offset scheme such as seed + 1 makes run seed=1's training stream another run's sampling
stream). Inside a purpose, per-step or per-batch keys are fold_in(purpose key, index).

  purpose              tag    used by
  (the root itself)    -      the VAE: split into the parameter-init key and the train
                              state's rng (tasks/vae.py), as it always was: changing it
                              would change every trained model
  prior                PRIO   the latent score prior: init, data order, sampled latents
  classifiers          CLAS   coherence classifiers, then fold_in(crc32(modality))
  grid                 GRID   the sample grids written during training and by --mode=sample
  sample               SAMP   --mode=sample's unconditional grid
  eval_conditional     EVCO   --mode=eval, every conditioning subset's pass (per batch)
  eval_unconditional   EVUN   --mode=eval, the unconditional samples (per batch)
  eval_posterior       EVPO   --mode=eval, the latent gap's posterior samples (per batch)
  eval_prior           EVPR   --mode=eval, the latent gap's prior samples
  curves               CURV   learning curves logged during training (curves.py)
  sample_agreement     SAGR   benchmarks/sample_agreement.py (K samples from one z)

`SCHEME` names this table in evaluation fingerprints, so task files computed with other
streams are recomputed rather than reused.
"""

import jax

SCHEME = 'named-tags-1'


def _tag(letters: str) -> int:
  return int.from_bytes(letters.encode('ascii'), 'big')


# purpose -> tag. Fixed forever: changing one changes the numbers of every run that uses it.
TAGS = {
    'prior': _tag('PRIO'),               # 0x5052494F, the latent prior's tag since it exists.
    'classifiers': _tag('CLAS'),
    'grid': _tag('GRID'),
    'sample': _tag('SAMP'),
    'eval_conditional': _tag('EVCO'),
    'eval_unconditional': _tag('EVUN'),
    'eval_posterior': _tag('EVPO'),
    'eval_prior': _tag('EVPR'),
    'curves': _tag('CURV'),
    'sample_agreement': _tag('SAGR'),
}


def key_for(seed: int, purpose: str) -> jax.Array:
  """fold_in(PRNGKey(seed), TAGS[purpose]).

  Args:
    seed: the run's config.seed.
    purpose: a key of TAGS.

  Returns:
    a PRNG key (uint32 (2,)).

  Raises:
    KeyError: an unknown purpose (a programming error, not a user one).
  """
  return jax.random.fold_in(jax.random.PRNGKey(seed), TAGS[purpose])
