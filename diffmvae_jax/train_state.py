"""The explicit training state pytree and the optimiser built from the config."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; the optimiser itself is static.

  Attributes:
    step: int32 scalar, number of updates applied.
    params: model parameters.
    ema_params: exponential moving average of params (used for sampling).
    opt_state: optax state.
    rng: PRNG key; step keys are fold_in(rng, step).
  """
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any
  rng: jax.Array


def learning_rate_schedule(train_config) -> optax.Schedule:
  """Linear warm-up to train.learning_rate, then cosine decay over the remaining steps."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=train_config.learning_rate,
      warmup_steps=max(1, train_config.warmup_steps),
      decay_steps=max(train_config.num_steps, train_config.warmup_steps + 1),
      end_value=train_config.learning_rate * train_config.end_learning_rate_factor)


def make_optimizer(train_config) -> optax.GradientTransformation:
  """AdamW with global-norm clipping and the warm-up/cosine schedule."""
  parts = []
  if train_config.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(train_config.grad_clip_norm))
  parts.append(optax.adamw(learning_rate_schedule(train_config),
                           weight_decay=train_config.weight_decay))
  return optax.chain(*parts)


def create_train_state(params, optimizer, rng) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    ema_params=jax.tree.map(jnp.copy, params),
                    opt_state=optimizer.init(params), rng=rng)
