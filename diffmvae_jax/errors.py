"""Exceptions raised for bad input, each with a message that says what to do."""


class ConfigError(ValueError):
  """The configuration names something unknown or inconsistent."""


class CheckpointError(RuntimeError):
  """A workdir holds a checkpoint that cannot be used for this run."""


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf; the last good checkpoint is kept."""
