"""Device mesh, shardings and host-local -> global arrays (data parallelism).

The design card's "pmap-sharded" is built as jit over a one-axis ('data',) mesh:
parameters replicated (P()), the batch split along its first axis (P('data')).
XLA inserts the gradient all-reduce. jax.pmap is in maintenance mode since JAX 0.8;
jit + shardings runs the same code on 1 CPU, N fake CPU devices, one GPU host and
many hosts.
"""

import os

from absl import logging
import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from diffmvae_jax.errors import ConfigError

DATA_AXIS = 'data'


def maybe_initialize_distributed(force: bool = False, coordinator_address: str = '',
                                 num_processes: int = 0, process_id: int = -1) -> None:
  """Calls jax.distributed.initialize() when asked or when a cluster is detected.

  Must run before any other JAX call. Triggers: `force` (TPU pods, Open MPI and
  SLURM are then auto-detected by JAX), SLURM with more than one task, or an
  explicit coordinator address (local multi-process rehearsal: every process gets
  the same address, the process count and its own id). On CPU, cross-process
  collectives use gloo.

  Args:
    force: initialise even without a detected cluster.
    coordinator_address: 'host:port' of process 0 ('' = auto-detect).
    num_processes: number of processes (0 = auto-detect).
    process_id: this process's id (-1 = auto-detect).
  """
  multi_slurm = int(os.environ.get('SLURM_NTASKS', '1')) > 1
  if not (force or multi_slurm or coordinator_address):
    return
  kwargs = {}
  if coordinator_address:
    kwargs = dict(coordinator_address=coordinator_address, num_processes=num_processes,
                  process_id=process_id)
    if os.environ.get('JAX_PLATFORMS', '') == 'cpu':
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  logging.info('Initialising jax.distributed %s.', kwargs or '(auto-detected cluster)')
  jax.distributed.initialize(**kwargs)


def make_mesh() -> Mesh:
  """A ('data',) mesh over every device of every process, axis type Auto."""
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch_size: int, what: str = 'train.batch_size') -> int:
  """Returns the per-process batch size; errors if the batch does not split evenly."""
  devices = jax.device_count()
  if global_batch_size % devices:
    raise ConfigError(f'{what}={global_batch_size} is not divisible by the {devices} devices; '
                      f'use a multiple of {devices} (e.g. {devices * max(1, global_batch_size // devices)}).')
  return global_batch_size // jax.process_count()


def stacked_batch_sharded(mesh: Mesh) -> NamedSharding:
  """K batches stacked on a leading axis (K, B, ...): the batch axis split on 'data'."""
  return NamedSharding(mesh, P(None, DATA_AXIS))


def global_batch(local_batch: dict, mesh: Mesh, stacked: bool = False) -> dict:
  """Assembles each process's numpy batch into global jax.Arrays sharded on 'data'.

  Args:
    local_batch: this process's arrays, (B_local, ...), or (K, B_local, ...) if stacked.
    mesh: the ('data',) mesh.
    stacked: the arrays hold K batches on a leading axis (several steps per dispatch).
  """
  sharding = stacked_batch_sharded(mesh) if stacked else batch_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)
