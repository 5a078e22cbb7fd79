"""Random inputs of a model's shapes, for the benchmarks that time a step without data."""

import numpy as np


def random_batch(model, batch_size: int, rng: np.random.Generator, leading=()) -> dict:
  """A batch of the model's modalities: arrays (*leading, batch_size, *shape).

  Images uniform in [-1, 1] (float32), masks and attributes 0/1 (float32), tokens and
  labels uniform over their classes (int32).
  """
  batch = {}
  for m in model.modalities:
    shape = tuple(leading) + (batch_size,) + tuple(m.shape)
    if m.kind in ('mask', 'attributes'):
      batch[m.name] = rng.integers(0, 2, shape).astype(np.float32)
    elif m.kind == 'image':
      batch[m.name] = rng.uniform(-1, 1, shape).astype(np.float32)
    else:
      batch[m.name] = rng.integers(0, m.num_classes, shape).astype(np.int32)
  return batch
