"""The ratio table of benchmarks/peer_compare.sh from the JSON files it wrote.

  python benchmarks/peer_ratios.py --dir=runs/peer_compare

Reads peer_mopoe.json, peer_mopoe3.json, peer_fid.json (the PyTorch peer) and
project_*.json (benchmarks/throughput.py, benchmarks/fid_features.py), prints one line per
case with both throughputs and the ratio project / peer (> 1: the project is faster), and
writes summary.json next to them. A project file timed with --steps_per_dispatch=K adds a
line for K train steps per dispatch (train.steps_per_dispatch=K) against the same peer case.
"""

import argparse
import json
import os
import sys


def _load(directory, name):
  path = os.path.join(directory, name)
  if not os.path.exists(path):
    raise SystemExit(f'{path} is missing: run benchmarks/peer_compare.sh (it writes it).')
  with open(path) as f:
    text = f.read()
  # stdout captures may start with a dataset build's messages: the JSON is the first line
  # that is exactly '{' onwards.
  start = 0 if text.startswith('{') else text.find('\n{\n') + 1
  try:
    return json.loads(text[start:])
  except json.JSONDecodeError as e:
    raise SystemExit(f'{path} holds no benchmark JSON ({e}); rerun benchmarks/peer_compare.sh.')


def _peer_case(peer, model, batch_size):
  for case in peer['models'][model]['cases']:
    if case['batch_size'] == batch_size:
      return case['samples_per_s_at_median']
  raise SystemExit(f'the peer JSON has no {model} case at batch {batch_size}.')


def summarise(directory):
  """Returns the summary dict (cases with project, peer, ratio) of one benchmark run."""
  peer_mopoe = _load(directory, 'peer_mopoe.json')
  peer_mopoe3 = _load(directory, 'peer_mopoe3.json')
  cases = []
  for label, project_file, peer, model, bs in [
      ('MoPoE 5 mod, latent 512, batch 64', 'project_mopoe_b64.json', peer_mopoe, 'mopoe', 64),
      ('MoPoE 5 mod, latent 512, batch 256', 'project_mopoe_b256.json', peer_mopoe, 'mopoe', 256),
      ('MoPoE 3 mod, latent 32, batch 32', 'project_mopoe3_b32.json', peer_mopoe3, 'mopoe3', 32)]:
    ours = _load(directory, project_file)
    project = ours['train']['samples_per_s']
    peer_rate = _peer_case(peer, model, bs)
    cases.append({'case': label, 'unit': 'train samples/s', 'project': project,
                  'peer': peer_rate, 'ratio': project / peer_rate,
                  'project_compile_s': ours['train']['compile_s'],
                  'project_params': ours['params'],
                  'peer_params': peer['models'][model]['params_total'],
                  'fraction_of_matmul_flops': ours['train']['fraction_of_matmul_roofline']})
    scan = ours.get('train_scan')
    if scan:  # throughput.py --steps_per_dispatch=K: the loop's train.steps_per_dispatch=K.
      k = scan['steps_per_dispatch']
      cases.append({'case': f'{label}, {k} steps per dispatch', 'unit': 'train samples/s',
                    'project': scan['samples_per_s'], 'peer': peer_rate,
                    'ratio': scan['samples_per_s'] / peer_rate,
                    'project_compile_s': scan['compile_s'], 'steps_per_dispatch': k})
  fid = _load(directory, 'project_fid.json')
  peer_fid = _load(directory, 'peer_fid.json')
  cases.append({'case': 'FID Inception-v3 features, batch 32, 299x299', 'unit': 'images/s',
                'project': fid['images_per_s']['median'],
                'peer': peer_fid['images_per_s_at_median'],
                'ratio': fid['images_per_s']['median'] / peer_fid['images_per_s_at_median'],
                'project_compile_s': fid['first_call_s_incl_compile']})
  demo = _load(directory, 'project_demo.json')
  summary = {
      'cases': cases,
      'diffmvae_demo': {
          'train_samples_per_s': demo['train']['samples_per_s'],
          'achieved_flops_per_s': demo['train']['achieved_flops_per_s'],
          'matmul_flops_per_s_f32': demo['matmul_flops_per_s_f32'],
          'fraction_of_matmul_flops': demo['train']['fraction_of_matmul_roofline'],
          'generation': demo.get('generation', {})},
      'peer_env': peer_mopoe.get('env', {}),
      'project_device': demo['device'], 'cpu_count': demo['cpu_count'],
  }
  return summary


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--dir', required=True, help='the OUT folder of peer_compare.sh')
  args = parser.parse_args()
  summary = summarise(args.dir)
  print(f"{'case':70s} {'project':>10s} {'peer':>10s} {'ratio':>7s}")
  for c in summary['cases']:
    print(f"{c['case']:70s} {c['project']:10.1f} {c['peer']:10.1f} {c['ratio']:6.2f}x"
          f"  ({c['unit']})")
  d = summary['diffmvae_demo']
  print(f"Diff-MVAE demo step: {d['train_samples_per_s']:.1f} samples/s, "
        f"{d['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s = "
        f"{100 * d['fraction_of_matmul_flops']:.0f} % of the same run's matmul "
        f"{d['matmul_flops_per_s_f32'] / 1e9:.0f} GFLOP/s")
  with open(os.path.join(args.dir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  print(f"wrote {os.path.join(args.dir, 'summary.json')}")


if __name__ == '__main__':
  sys.exit(main())
