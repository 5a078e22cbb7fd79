"""Named random streams: every purpose's key is fold_in(PRNGKey(config.seed), TAGS[purpose]).

One root key per run, PRNGKey(seed); each purpose folds its own 32-bit tag into it, so
streams of different purposes never coincide, whatever the seeds (an offset scheme such as
seed + 1 would make run seed=1's training stream another run's sampling stream). Inside a
purpose, per-step or per-batch keys are fold_in(purpose_key, index).

The VAE's training stream is the root itself, split into the parameter-init key and the
train state's rng (tasks/vae.py), as it always was: changing it would change every trained
model.
"""

import jax

# purpose -> tag folded into the root key. Tags are fixed forever: changing one changes the
# numbers of every run that uses it.
TAGS = {
    'prior': 0x5052494F,  # The latent score prior: init, data order, sampled latents.
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
