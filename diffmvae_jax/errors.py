"""Exceptions raised for bad input, each with a message that says what to do.

Every error the project raises on purpose derives from `DiffMVAEError`; `main.py` catches
that one base and prints ``error (<ClassName>): <message>`` as a single line. Each subclass
also derives from the builtin it refines (ValueError, RuntimeError, ...), so code that caught
those before still does.
"""


class DiffMVAEError(Exception):
  """Base of every error the project raises for bad input or a run it cannot continue."""


class ConfigError(DiffMVAEError, ValueError):
  """The configuration names something unknown or inconsistent."""


class CheckpointError(DiffMVAEError, RuntimeError):
  """A workdir holds a checkpoint that cannot be used for this run."""


class NonFiniteLossError(DiffMVAEError, FloatingPointError):
  """Training produced a NaN or Inf; the last good checkpoint is kept."""
