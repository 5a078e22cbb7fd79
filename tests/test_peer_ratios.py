"""benchmarks/peer_ratios.py: the ratio table from the JSON files peer_compare.sh writes."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'benchmarks'))
import peer_ratios  # pylint: disable=g-import-not-at-top


def _write(directory, name, obj):
  with open(os.path.join(directory, name), 'w') as f:
    json.dump(obj, f)


def _project(rate):
  return {'params': 10, 'device': 'cpu:0', 'cpu_count': 2, 'matmul_flops_per_s_f32': 1e11,
          'train': {'samples_per_s': rate, 'compile_s': 1.0, 'achieved_flops_per_s': 4e10,
                    'fraction_of_matmul_roofline': 0.4}}


def _peer(model, rates):
  return {'env': {'torch': 'x'}, 'models': {model: {'params_total': 10, 'cases': [
      {'batch_size': bs, 'samples_per_s_at_median': r} for bs, r in rates.items()]}}}


def test_ratios_are_project_over_peer(tmp_path):
  d = str(tmp_path)
  _write(d, 'peer_mopoe.json', _peer('mopoe', {64: 200.0, 256: 400.0}))
  _write(d, 'peer_mopoe3.json', _peer('mopoe3', {32: 100.0}))
  _write(d, 'peer_fid.json', {'images_per_s_at_median': 10.0})
  with open(os.path.join(d, 'project_mopoe_b64.json'), 'w') as f:   # A build's chatter first.
    f.write('Dataset poly_mnist downloaded and prepared.\n' + json.dumps(_project(300.0), indent=2))
  _write(d, 'project_mopoe_b256.json', _project(200.0))
  scanned = _project(150.0)
  scanned['train_scan'] = {'steps_per_dispatch': 8, 'samples_per_s': 120.0, 'compile_s': 2.0}
  _write(d, 'project_mopoe3_b32.json', scanned)
  _write(d, 'project_demo.json', _project(50.0))
  _write(d, 'project_fid.json', {'images_per_s': {'median': 5.0}, 'first_call_s_incl_compile': 1})
  summary = peer_ratios.summarise(d)
  assert [round(c['ratio'], 6) for c in summary['cases']] == [1.5, 0.5, 1.5, 1.2, 0.5]
  assert summary['cases'][3]['case'].endswith(', 8 steps per dispatch')
  assert summary['diffmvae_demo']['fraction_of_matmul_flops'] == 0.4


def test_missing_file_says_which_and_what_to_run(tmp_path):
  with pytest.raises(SystemExit, match='peer_mopoe.json is missing: run benchmarks/peer_compare'):
    peer_ratios.summarise(str(tmp_path))
