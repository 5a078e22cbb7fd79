"""Training the per-modality coherence classifiers (DESIGN §4), one task per modality.

  python -m diffmvae_jax.main --config=configs/demo.py --workdir=DIR --mode=train_classifiers

For each image or caption modality of the dataset: Adam with cosine decay from
`learning_rate` to 0 over `num_steps`, softmax cross-entropy, one jit-compiled pure step
(parameters and optimiser state donated), run by the shared loop driver (loop.py: metrics
one step late, NaN guard, progress; no checkpoints and no SIGTERM handling: a classifier
trains in minutes and nothing mid-run is worth resuming). Image classifiers see random 0-2
pixel translations and dropout 0.5 on the dense hidden layer: without them the training
batches reach 100% while test accuracy stalls just under 98%. Then the full test split's
accuracy, and `<modality>.npz` + its manifest entry (metrics/classifiers.py describes the
files and the architectures), written atomically, the .npz first: a rerun with the same
settings skips finished classifiers (resumable per modality). Keys:
fold_in(fold_in(rng.key_for(seed, 'classifiers'), crc32(modality)), step).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
import zlib

from absl import logging
import jax
import jax.numpy as jnp
import optax

from diffmvae_jax import loop
from diffmvae_jax import rng
from diffmvae_jax.data import pipeline
from diffmvae_jax.errors import ConfigError
from diffmvae_jax.metrics import classifiers as classifiers_lib

DEFAULT_NUM_STEPS = 1500  # ~7.7 epochs of the 50k PolyMNIST training images at batch 256.
DEFAULT_LEARNING_RATE = 3e-3  # 1e-3 underfits in this budget (-2 points of test accuracy).
EVAL_BATCH_SIZE = 500
LOG_EVERY = 100


@functools.lru_cache(maxsize=None)
def _train_fns(kind: str, vocab_size: int, num_classes: int, num_steps: int,
               learning_rate: float):
  """(init(key, x) -> (params, opt_state), jitted step) for one kind and schedule."""
  model = classifiers_lib.model_for(kind, vocab_size, num_classes)
  optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps))

  def init(key, x):
    params = model.init(key, x)['params']
    return params, optimizer.init(params)

  def step(params, opt_state, x, labels, key):
    key_shift, key_dropout = jax.random.split(key)
    if kind == 'image':
      x = classifiers_lib.random_shift(key_shift, x)

    def loss_fn(p):
      logits = model.apply({'params': p}, x, train=True, rngs={'dropout': key_dropout})
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss, jnp.mean(jnp.argmax(logits, -1) == labels)
    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {'loss': loss, 'accuracy': acc}

  return jax.jit(init), jax.jit(step, donate_argnums=(0, 1))


def file_ok(out_dir: str, name: str, sha256: str) -> bool:
  """True if <out_dir>/<name>.npz exists and has this sha256."""
  path = os.path.join(out_dir, f'{name}.npz')
  if not os.path.exists(path):
    return False
  with open(path, 'rb') as f:
    return classifiers_lib.sha256_hex(f.read()) == sha256


def train_classifiers(data_config, out_dir: str, *, modalities=None,
                      num_steps: int = DEFAULT_NUM_STEPS, batch_size: int = 256,
                      seed: int = 0, learning_rate: float = DEFAULT_LEARNING_RATE
                      ) -> dict[str, classifiers_lib.ClassifierInfo]:
  """Trains, tests and saves one classifier per modality; skips those already saved.

  Args:
    data_config: the data section of a config (see data.pipeline.prepare_dataset).
    out_dir: where <modality>.npz and manifest.json go (created if needed).
    modalities: names to train; None = every image and caption modality of the dataset.
    num_steps: training steps per modality (Adam, cosine decay to 0).
    batch_size: training batch size.
    seed: parameter initialisation (folded with the modality name) and data order.
    learning_rate: peak Adam learning rate.

  Returns:
    modality -> ClassifierInfo for the requested modalities (trained now or before).

  Raises:
    ConfigError: unknown modality, one that is not an image or caption, a dataset without
      a 'label' field, or a non-positive num_steps / batch_size.
    DataError: the dataset cannot be built or read.
  """
  if num_steps <= 0 or batch_size <= 0:
    raise ConfigError(f'num_steps and batch_size must be positive, got {num_steps}, '
                      f'{batch_size}')
  builder = pipeline.prepare_dataset(data_config)
  dataset = f'{builder.name}/{builder.builder_config.name}'
  specs = pipeline.modality_specs(data_config)
  label = specs.get('label')
  if label is None or label.kind != 'label':
    raise ConfigError(f'dataset {dataset} has no \'label\' field: coherence classifiers are '
                      'trained on class labels, so they (and coherence) do not apply to it')
  classifiable = [n for n, s in specs.items() if s.kind in classifiers_lib.CLASSIFIED_KINDS]
  names = classifiable if modalities is None else list(modalities)
  for name in names:
    if name not in classifiable:
      raise ConfigError(f'cannot train a classifier for modality {name!r}; '
                        f'choose from {classifiable}')
  num_classes = int(label.num_classes)
  os.makedirs(out_dir, exist_ok=True)
  manifest = classifiers_lib.read_manifest(out_dir)
  infos = {}
  for name in names:
    spec = specs[name]
    vocab_size = spec.num_classes if spec.kind == 'caption' else 0
    settings = dict(dataset=dataset, kind=spec.kind, vocab_size=vocab_size,
                    num_classes=num_classes, input_shape=[int(d) for d in spec.shape],
                    architecture=classifiers_lib.ARCHITECTURE, num_steps=int(num_steps),
                    batch_size=int(batch_size), seed=int(seed),
                    learning_rate=float(learning_rate))
    entry = manifest['classifiers'].get(name)
    if entry:
      old = classifiers_lib.settings_with_defaults(entry['settings'])
      if old['input_shape'] is None:   # An old caption entry: any caption length.
        old['input_shape'] = settings['input_shape']
      if old == settings and file_ok(out_dir, name, entry['info']['sha256']):
        logging.info('Classifier %s: already trained (test accuracy %.4f), skipped.', name,
                     entry['info']['test_accuracy'])
        infos[name] = classifiers_lib.info_from_json(entry['info'], old)
        continue

    start = time.time()
    init, step = _train_fns(spec.kind, vocab_size, num_classes, int(num_steps),
                            float(learning_rate))
    batches = pipeline.make_train_iterator(data_config, global_batch_size=batch_size,
                                           seed=seed)
    first = next(batches)
    key = jax.random.fold_in(rng.key_for(seed, 'classifiers'), zlib.crc32(name.encode()))
    key, init_key = jax.random.split(key)
    state = init(init_key, first[name])
    pending_first = [first]

    def step_fn(state, i, name=name, batches=batches, pending_first=pending_first, step=step,
                key=key):
      batch = pending_first.pop() if pending_first else next(batches)
      params, opt_state, metrics = step(*state, batch[name], batch['label'],
                                        jax.random.fold_in(key, i))
      return (params, opt_state), metrics

    loop_settings = loop.LoopSettings(
        num_steps=int(num_steps), log_every=LOG_EVERY, checkpoint_dir=out_dir,
        name=f'classifier {name}', nonfinite_what=f'Non-finite value in classifier {name}',
        nonfinite_advice='Lower the classifier learning rate', handle_sigterm=False)
    params, _ = loop.run_loop(loop_settings, state, 0, step_fn).state
    logging.info('Classifier %s: trained %d steps in %.1fs.', name, num_steps,
                 time.time() - start)

    apply = classifiers_lib.apply_fn(spec.kind, vocab_size, num_classes)
    test = pipeline.make_eval_iterator(data_config, split='test',
                                       global_batch_size=EVAL_BATCH_SIZE)
    test_acc = classifiers_lib.accuracy(lambda _, x: apply(params, x), name, test)
    seconds = time.time() - start
    logging.info('Classifier %s: test accuracy %.4f (%s, %d steps, %.1fs).', name, test_acc,
                 dataset, num_steps, seconds)

    data = classifiers_lib.params_to_npz(params)
    info = classifiers_lib.ClassifierInfo(
        modality=name, kind=spec.kind, test_accuracy=float(test_acc),
        sha256=classifiers_lib.sha256_hex(data), num_train_steps=int(num_steps),
        dataset=dataset, num_classes=num_classes,
        input_shape=tuple(int(d) for d in spec.shape))
    classifiers_lib.atomic_write(os.path.join(out_dir, f'{name}.npz'), data)
    manifest['classifiers'][name] = {'info': dataclasses.asdict(info), 'settings': settings,
                                     'train_seconds': round(seconds, 1)}
    classifiers_lib.atomic_write(os.path.join(out_dir, classifiers_lib.MANIFEST),
                                 json.dumps(manifest, indent=1, sort_keys=True).encode())
    infos[name] = info
  return infos


