"""Per-modality class classifiers for coherence (DESIGN §4): models, files, verify, load.

One small Flax classifier per image or caption modality, trained by the project on the
dataset's training split against its 'label' field (10 digits for PolyMNIST, 200 species
for CUB; the count is the label ModalitySpec's num_classes) and evaluated on its full test
split (that accuracy is reported beside every coherence figure). Datasets without a 'label'
field (CelebAMask-HQ) have no classifiers: coherence does not apply there.

  image (B, H, W, 3) in [-1, 1], any size: a 3x3 conv 16 at full resolution (the PolyMNIST
    digit is a sharp colour inversion of the background photo), then 3x3 stride-2 convs
    32 -> 64 -> 128 (-> 128 ...), one per ceil-halving until the map is at most 4x4 (28 ->
    14 -> 7 -> 4: three convs; 64 -> 32 -> 16 -> 8 -> 4: four; 128: five), all + ReLU,
    flatten, dense 128 + ReLU, dense num_classes. At 28x28 and 10 classes this is exactly
    the original PolyMNIST classifier (~0.36M parameters; > 98% test accuracy). Chosen for a
    2-core CPU: without the full-resolution conv, or with max-pooling, it is less accurate
    for the same CPU time; a 32-channel full-resolution stack costs ~6x.
  caption (B, L) int32 ids: embedding 32, mean over the non-<pad> tokens (bag of words: a
    generated caption is classified by the words it contains, wherever they sit), dense 64 +
    ReLU, dense num_classes.

Training (tasks/classifiers.py): Adam with cosine decay, random 0-2 pixel translations
(`random_shift`) and dropout 0.5 on the dense hidden layer for images.

Files in `out_dir`: `<modality>.npz` (the Flax 'params' collection flattened to '/'-joined
keys) and `manifest.json` ({'format', 'classifiers': {modality: {'info': ClassifierInfo,
'settings': what it was trained with (dataset, kind, vocab_size, num_classes, input_shape,
architecture, schedule), 'train_seconds'}}}). Manifests written before num_classes and
input_shape were recorded describe 10-class 28x28x3 classifiers and are read as such. Every
file is written to a temporary file in `out_dir` and renamed with `os.replace`, the .npz
before the manifest entry that names its sha256, so an interrupted run leaves only complete
classifiers; a rerun with the same settings skips them (resumable per modality).

Why not Orbax: a classifier is < 0.4M parameters (28x28) trained in a few minutes in one
call, with no optimiser state or iterator position worth resuming; a single .npz with a
sha256 in a JSON manifest is simpler to verify (coherence numbers must name the classifier
they came from) and to read anywhere with numpy alone.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import tempfile

from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffmvae_jax.data import text as text_lib
from diffmvae_jax.errors import ConfigError, DiffMVAEError

MANIFEST = 'manifest.json'
FORMAT = 1
# Part of the saved settings: change it whenever the models change.
ARCHITECTURE = 'cnn16s1-32-64-128_d128_drop.5_shift2/bow32_d64'
DEFAULT_NUM_CLASSES = 10   # What manifests without 'num_classes' were trained for.
LEGACY_IMAGE_SHAPE = (28, 28, 3)  # What image manifests without 'input_shape' were trained on.
CONV_CHANNELS = (32, 64, 128)  # Stride-2 convs; further ones (larger images) keep the last.
MAX_FINAL_SIZE = 4  # Stride-2 convs are added until the feature map is at most this size.
DROPOUT = 0.5   # Image classifiers: on the dense hidden layer, in training only.
MAX_SHIFT = 2   # Image classifiers: random translations of up to 2 pixels, in training only.
TRAIN_COMMAND = ('python -m diffmvae_jax.main --config=<config of this dataset> '
                 '--workdir=<workdir> --mode=train_classifiers')


class ClassifierError(DiffMVAEError, RuntimeError):
  """Classifiers are missing, incomplete or do not match their manifest."""


@dataclasses.dataclass(frozen=True)
class ClassifierInfo:
  modality: str
  kind: str             # 'image' | 'caption'
  test_accuracy: float  # on the full test split
  sha256: str           # of <modality>.npz
  num_train_steps: int
  dataset: str          # TFDS name/config, e.g. 'poly_mnist/m5_s0'
  num_classes: int = DEFAULT_NUM_CLASSES  # logits per example (the label spec's classes)
  input_shape: tuple = ()   # per-example input: (H, W, C) images, (L,) captions


def info_from_json(info: dict, settings: dict) -> ClassifierInfo:
  """ClassifierInfo of a manifest entry (older entries lack num_classes / input_shape)."""
  info = dict(info)
  info.setdefault('num_classes', settings['num_classes'])
  info['input_shape'] = tuple(info.get('input_shape') or settings['input_shape'] or ())
  return ClassifierInfo(**info)


def conv_channels(image_size: int) -> tuple:
  """Stride-2 conv widths for square-ish images of side `image_size` (max of H, W).

  One conv per ceil-halving until the map is at most MAX_FINAL_SIZE: 28 -> (32, 64, 128)
  (28 -> 14 -> 7 -> 4), 64 -> (32, 64, 128, 128), 128 -> (32, 64, 128, 128, 128).
  """
  n, size = 0, int(image_size)
  while size > MAX_FINAL_SIZE or n == 0:
    size, n = -(-size // 2), n + 1
  return tuple(CONV_CHANNELS[min(i, len(CONV_CHANNELS) - 1)] for i in range(n))


class ImageClassifier(nn.Module):
  """(B, H, W, 3) float32 in [-1, 1] -> logits (B, num_classes), any H, W.

  28x28 inputs and 10 classes give exactly the original PolyMNIST classifier (conv0 16 at
  full resolution, stride-2 convs 32, 64, 128 to 4x4, dense 128, dense 10).
  """
  num_classes: int = DEFAULT_NUM_CLASSES

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.relu(nn.Conv(16, (3, 3), name='conv0')(x))
    for i, c in enumerate(conv_channels(max(x.shape[1], x.shape[2]))):
      h = nn.relu(nn.Conv(c, (3, 3), strides=(2, 2), name=f'conv{i + 1}')(h))
    h = nn.relu(nn.Dense(128, name='hidden')(h.reshape((h.shape[0], -1))))
    h = nn.Dropout(DROPOUT, deterministic=not train)(h)
    return nn.Dense(self.num_classes, name='logits')(h)


def random_shift(key, images, max_shift: int = MAX_SHIFT):
  """Translates each image by up to max_shift pixels per axis (edge padding)."""
  n, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)), mode='edge')
  offsets = jax.random.randint(key, (n, 2), 0, 2 * max_shift + 1)
  crop = lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, im.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


class CaptionClassifier(nn.Module):
  """(B, L) int32 token ids -> logits (B, num_classes); <pad> tokens are ignored."""
  vocab_size: int
  num_classes: int = DEFAULT_NUM_CLASSES

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    del train  # Nothing to regularise: the captions name the digit.
    e = nn.Embed(self.vocab_size, 32, name='embed')(tokens)
    mask = (tokens != text_lib.PAD_ID).astype(e.dtype)[..., None]
    h = (e * mask).sum(axis=1) / jnp.maximum(mask.sum(axis=1), 1.0)
    h = nn.relu(nn.Dense(64, name='hidden')(h))
    return nn.Dense(self.num_classes, name='logits')(h)


CLASSIFIED_KINDS = ('image', 'caption')


def model_for(kind: str, vocab_size: int, num_classes: int) -> nn.Module:
  if kind == 'image':
    return ImageClassifier(num_classes)
  if kind == 'caption':
    return CaptionClassifier(vocab_size, num_classes)
  raise ConfigError(f'no classifier for modality kind {kind!r}')


@functools.lru_cache(maxsize=None)
def apply_fn(kind: str, vocab_size: int, num_classes: int):
  """Jitted (params, x) -> logits, shared by every modality of the same kind."""
  model = model_for(kind, vocab_size, num_classes)
  return jax.jit(lambda params, x: model.apply({'params': params}, x))


def accuracy(classify, name: str, batches) -> float:
  """Fraction of valid examples whose argmax logit equals 'label'.

  Args:
    classify: from load_classifiers (or any (name, x) -> logits (B, num_classes)).
    name: the modality to classify, a key of each batch.
    batches: iterable of dicts with name, 'label' and 'valid' (rows with valid=False, the
      padding of eval iterators, are not counted).
  """
  correct = total = 0
  for batch in batches:
    pred = np.asarray(jnp.argmax(classify(name, batch[name]), axis=-1))
    valid = np.asarray(batch['valid'], bool)
    correct += int(np.sum((pred == np.asarray(batch['label'])) & valid))
    total += int(valid.sum())
  if not total:
    raise ValueError('accuracy over no valid examples')
  return correct / total


def sha256_hex(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def atomic_write(path: str, data: bytes) -> None:
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.tmp-')
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def params_to_npz(params) -> bytes:
  flat = traverse_util.flatten_dict(jax.device_get(params), sep='/')
  buf = io.BytesIO()
  np.savez(buf, **{k: np.asarray(v) for k, v in flat.items()})
  return buf.getvalue()


def read_manifest(out_dir: str) -> dict:
  path = os.path.join(out_dir, MANIFEST)
  if not os.path.exists(path):
    return {'format': FORMAT, 'classifiers': {}}
  with open(path) as f:
    manifest = json.load(f)
  if manifest.get('format') != FORMAT:
    raise ClassifierError(f'{path} has format {manifest.get("format")}, expected {FORMAT}; '
                          f'move {out_dir} aside and run {TRAIN_COMMAND}')
  return manifest


def settings_with_defaults(settings: dict) -> dict:
  """A manifest entry's settings with the keys older manifests lack filled in.

  Before num_classes and input_shape were recorded, every classifier was a 10-class one
  (PolyMNIST digits) on 28x28x3 images or on captions (whose length the bag of words ignores).
  """
  settings = dict(settings)
  settings.setdefault('num_classes', DEFAULT_NUM_CLASSES)
  if 'input_shape' not in settings:
    settings['input_shape'] = list(LEGACY_IMAGE_SHAPE) if settings['kind'] == 'image' else None
  return settings


def load_classifiers(out_dir: str, sharding=None):
  """Loads every classifier of `out_dir` after checking each .npz against the manifest.

  Args:
    out_dir: where train_classifiers wrote them.
    sharding: optional jax.sharding.Sharding for the parameters, e.g. replicated over the
      evaluation mesh (needed to classify global arrays on several hosts); None keeps them
      on the default device.

  Returns:
    (classify, infos): classify(name, x) -> logits (B, num_classes), jit-compiled (one
    compilation per modality kind, class count and input shape); a batch-sharded x gives
    batch-sharded logits. infos: modality -> ClassifierInfo (with num_classes and
    input_shape).

  Raises:
    ClassifierError: no manifest, a missing .npz, or a sha256 mismatch; the message says
      how to (re)train them.
  """
  path = os.path.join(out_dir, MANIFEST)
  if not os.path.exists(path):
    raise ClassifierError(f'No coherence classifiers in {out_dir} ({MANIFEST} missing). '
                          f'Train them with: {TRAIN_COMMAND}')
  manifest = read_manifest(out_dir)
  if not manifest['classifiers']:
    raise ClassifierError(f'{path} lists no classifiers. Train them with: {TRAIN_COMMAND}')
  params, fns, infos = {}, {}, {}
  for name, entry in manifest['classifiers'].items():
    settings = settings_with_defaults(entry['settings'])
    info = info_from_json(entry['info'], settings)
    npz = os.path.join(out_dir, f'{name}.npz')
    if not os.path.exists(npz):
      raise ClassifierError(f'Classifier file {npz} is missing. Retrain with: {TRAIN_COMMAND}')
    with open(npz, 'rb') as f:
      data = f.read()
    if sha256_hex(data) != info.sha256:
      raise ClassifierError(
          f'{npz} does not match the sha256 in {path} (corrupt or replaced). Delete it and '
          f'retrain with: {TRAIN_COMMAND}')
    with np.load(io.BytesIO(data)) as z:
      params[name] = traverse_util.unflatten_dict({k: np.asarray(z[k]) for k in z.files},
                                                  sep='/')
    params[name] = (jax.device_put(params[name], sharding) if sharding is not None
                    else jax.tree.map(jnp.asarray, params[name]))
    fns[name] = apply_fn(info.kind, int(settings['vocab_size']), info.num_classes)
    infos[name] = info

  def classify(name: str, x):
    if name not in fns:
      raise ClassifierError(f'No classifier for modality {name!r} in {out_dir} (has '
                            f'{sorted(fns)}). Train it with: {TRAIN_COMMAND}')
    return fns[name](params[name], x)

  return classify, infos
