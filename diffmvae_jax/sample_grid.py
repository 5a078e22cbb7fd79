"""Conditional sample grids written during and after training.

A fixed batch of ``sample.num`` validation examples is encoded through the given
modalities (``sample.given``); every modality is then generated. The PNG shows,
per row, the given images and masks, then every generated image and mask modality
(masks as grey images of their probabilities); captions, labels and attributes go to
a text file beside it (attributes as the names of those on, value >= 0.5, or their
indices when the dataset module exports no ATTRIBUTE_NAMES). Grids also go to
TensorBoard.
"""

import importlib
import os

import jax
import numpy as np

from diffmvae_jax import generate as generate_lib
from diffmvae_jax import rng
from diffmvae_jax import visualise
from diffmvae_jax.data import pipeline


class GridWriter:
  """Writes ``<workdir>/samples/step_<step>_given-<names>[_tstart<s>].{png,txt}``."""

  def __init__(self, model, config, workdir: str, writer=None):
    self.model = model
    self.config = config
    self.writer = writer
    self.directory = os.path.join(workdir, 'samples')
    self.given = generate_lib.parse_given(config.sample.given, model)
    self._generate = jax.jit(generate_lib.make_conditional_generate_fn(
        model, config.sample, self.given))
    self._batch = None
    self._vocab = None
    self._attribute_names = {}

  def _examples(self) -> dict:
    if self._batch is None:
      num = self.config.sample.num
      it = pipeline.make_eval_iterator(self.config.data, split='validation',
                                       global_batch_size=num, num_examples=num)
      batch = next(iter(it))
      self._batch = {k: np.asarray(v) for k, v in batch.items()}
    return self._batch

  def _decode_text(self, name, values) -> str:
    """One example of a text-written modality (caption, label, attributes) as text."""
    modality = self.model.modalities[self.model.names.index(name)]
    if modality.kind == 'caption':
      if self._vocab is None:
        self._vocab = pipeline.load_vocabulary(self.config.data)
      return self._vocab.decode(np.asarray(values))
    if modality.kind == 'attributes':
      if name not in self._attribute_names:
        self._attribute_names[name] = attribute_names(self.config.data, modality.shape[0])
      return visualise.attributes_text(values, self._attribute_names[name])
    return str(int(values))

  def write(self, params, step: int) -> str | None:
    """Generates and writes one grid; returns the PNG path (None off the lead host)."""
    batch = self._examples()
    inputs = {k: batch[k] for k in self.given}
    key = rng.key_for(self.config.seed, 'grid')
    samples = jax.device_get(self._generate({'params': params}, inputs, key))
    if jax.process_index() != 0:
      return None
    drawn = [m for m in self.model.modalities if m.kind in visualise.GRID_KINDS]
    columns = [visualise.modality_to_uint8(m.kind, batch[m.name])
               for m in drawn if m.name in self.given]
    columns += [visualise.modality_to_uint8(m.kind, samples[m.name]) for m in drawn]
    stem = os.path.join(self.directory, f'step_{step:07d}_given-{"-".join(self.given)}'
                        + generate_lib.shallow_tag(self.config.sample))
    path = None
    if columns:
      image = visualise.grid(columns)
      path = visualise.save_png(image, stem + '.png')
      if self.writer is not None:
        self.writer.write_images(step, {f'samples/given_{"-".join(self.given)}': image[None]})
    others = [m for m in self.model.modalities if m.kind not in visualise.GRID_KINDS]
    if others:
      lines = []
      for i in range(len(next(iter(samples.values())))):
        parts = [f'{m.name}: true={self._decode_text(m.name, batch[m.name][i])!r} '
                 f'generated={self._decode_text(m.name, samples[m.name][i])!r}' for m in others]
        lines.append(f'{i}: ' + ' | '.join(parts))
      os.makedirs(self.directory, exist_ok=True)
      with open(stem + '.txt', 'w') as f:
        f.write(f'Given {list(self.given)}, step {step}.\n' + '\n'.join(lines) + '\n')
    if self.writer is not None:
      self.writer.flush()
    return path


def attribute_names(data_config, num_attributes: int) -> tuple | None:
  """The dataset's attribute names (its module's ATTRIBUTE_NAMES), if it has K of them.

  Args:
    data_config: the data section (data.dataset picks the dataset module).
    num_attributes: K, the attribute modality's size.

  Returns:
    K names, or None (the dataset exports no ATTRIBUTE_NAMES of length K; indices are
    written instead).
  """
  dataset = pipeline.get_dataset(data_config)
  names = getattr(dataset, 'attribute_names', None)
  if names is None:
    names = getattr(importlib.import_module(type(dataset).__module__), 'ATTRIBUTE_NAMES', None)
  if names is None or len(names) != num_attributes:
    return None
  return tuple(str(n) for n in names)
