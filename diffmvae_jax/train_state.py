"""The explicit training state pytree, the optimiser built from a config, and one update.

`TrainState` is the state of every Orbax-checkpointed task (the VAE; the latent score prior
extends it with its standardisation statistics); `apply_gradients` is the one optimiser +
EMA update they share.
"""

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


def warmup_decay(step, max_decay: float):
  """min(max_decay, (1 + step) / (10 + step)): an average that warms up over ~10 steps.

  Used for the parameters' EMA and for the joint prior's running latent statistics, so early
  values (the random initialisation) are forgotten quickly.
  """
  return jnp.minimum(max_decay, (1.0 + step) / (10.0 + step))


def apply_gradients(state: TrainState, grads, optimizer: optax.GradientTransformation,
                    ema_decay: float) -> TrainState:
  """One optimiser step, the EMA update (warm-up decay) and step + 1.

  Args:
    state: a TrainState (or a subclass: other fields are kept).
    grads: gradients, the structure of state.params.
    optimizer: the optax transformation state.opt_state belongs to.
    ema_decay: the EMA's decay after warm-up (warmup_decay).

  Returns:
    the updated state.
  """
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  decay = warmup_decay(state.step, ema_decay)
  ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
  return state.replace(step=state.step + 1, params=params, ema_params=ema, opt_state=opt_state)


def create_train_state(params, optimizer, rng) -> TrainState:
  """A step-0 TrainState with ema_params = a copy of params."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    ema_params=jax.tree.map(jnp.copy, params),
                    opt_state=optimizer.init(params), rng=rng)
