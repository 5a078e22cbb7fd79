"""The one error type raised by the data package.

Every failure to find, build or read a dataset raises `DataError` with a message that says
what to do (which package to install, which files to put where, which config key is wrong).
"""

from diffmvae_jax.errors import DiffMVAEError


class DataError(DiffMVAEError, RuntimeError):
  """A dataset could not be found, built or read; the message says how to fix it."""
