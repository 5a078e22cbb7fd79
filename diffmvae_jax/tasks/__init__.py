"""Training tasks: each supplies init, step, batches and what to save; `loop.run_loop` runs
them. `vae` (the Diff-MVAE / MoPoE model), `score_prior` (the latent score-based prior,
second stage), `joint_prior` (the same prior trained inside the VAE's loop) and
`classifiers` (the coherence classifiers)."""
