"""Diff-MVAE in JAX/Flax: multimodal VAE with MoPoE fusion and diffusion decoders."""
