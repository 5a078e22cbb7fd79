"""launch/protocol_polymnist.sh end to end at tiny sizes: every stage runs, and a rerun resumes.

Slow (about 5 minutes on 2 cores: ~10 processes, each compiling its models).
"""

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = (
    '--config.data.max_examples_per_split=64 --config.model.latent_dim=8 '
    '--config.model.image_encoder.channels=(8,16,16) --config.model.image_encoder.hidden=32 '
    '--config.model.image_ff_decoder.channels=(16,16,8) --config.model.image_ff_decoder.hidden=32 '
    '--config.model.diffusion.num_timesteps=50 --config.model.diffusion.base_channels=8 '
    '--config.model.diffusion.channel_mults=(1,2) --config.model.diffusion.num_groups=4 '
    '--config.train.num_steps=2 --config.train.batch_size=8 --config.train.warmup_steps=1 '
    '--config.train.log_every=1 --config.train.checkpoint_every=1 --config.train.curve_every=1 '
    '--config.train.curve_num=8 --config.train.curve_sampler_steps=2 --config.train.sample_every=2 '
    '--config.sample.num=2 --config.sample.steps=3 --config.eval.num_examples=8 '
    '--config.eval.unconditional_num=8 --config.eval.batch_size=8 --config.eval.metrics=coherence '
    '--config.eval.classifier_steps=2 --config.prior.num_steps=2 --config.prior.batch_size=8 '
    '--config.prior.warmup_steps=1 --config.prior.checkpoint_every=1 --config.prior.width=16 '
    '--config.prior.depth=1 --config.prior.embed_dim=8 --config.prior.log_every=1')


def _run(out, data_dir, arms, shallow):
  env = dict(os.environ, OUT=str(out), PY=sys.executable, SEEDS='0', PAIR='1', ARMS=arms,
             SHALLOW=shallow, EXTRA=f'{TINY} --config.data.data_dir={data_dir}')
  return subprocess.run(['bash', os.path.join(ROOT, 'launch', 'protocol_polymnist.sh')],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)


def _logs(out):
  return '\n'.join(f'--- {p}\n' + open(p).read()[-3000:] for p in glob.glob(f'{out}/*.log'))


@pytest.mark.slow
@pytest.mark.parametrize('arms,shallow', [('mopoe diffusion', ''),
                                          ('mopoe diffusion_residual_v_guided_c16', '0.5')])
def test_protocol_script_runs_every_stage_and_resumes(tiny_data_dir, tmp_path, arms, shallow):
  """The default arms; then a coarse arm with SHALLOW, which only that arm's evaluation takes
  (sample.t_start=0.5: metrics_<prior>[_guidance2]_tstart0.5.json)."""
  out = tmp_path / 'protocol'
  result = _run(out, tiny_data_dir, arms, shallow)
  assert result.returncode == 0, result.stderr[-3000:] + _logs(out)
  for arm in arms.split():
    workdir = out / f'{arm}_s0'
    with open(workdir / 'metrics.jsonl') as f:
      rows = [json.loads(line) for line in f]
    assert [r['step'] for r in rows] == [1, 2] and all('train_seconds' in r for r in rows)
    with open(workdir / 'curves.jsonl') as f:
      assert [json.loads(line)['step'] for line in f] == [0, 1, 2]
    guided = '_guidance2' if arm.startswith('diffusion_residual_v_guided') else ''
    names = [f'metrics_{prior}{guided}.json' for prior in ('gaussian', 'sde')]
    if shallow and arm != 'mopoe':
      names += [f'metrics_{prior}{guided}_tstart{shallow}.json' for prior in ('gaussian', 'sde')]
    found = sorted(p for p in os.listdir(workdir / 'eval' / 'step_2') if p.startswith('metrics_'))
    assert found == sorted(names), found
    for name in names:
      prior = name.split('_')[1].split('.')[0]
      with open(workdir / 'eval' / 'step_2' / name) as f:
        metrics = json.load(f)
      coherence = metrics['results']['coherence']
      assert 0.0 <= coherence['conditional']['by_num_given']['1'] <= 1.0, metrics
      assert 0.0 <= coherence['unconditional'] <= 1.0, metrics
      assert metrics['provenance']['prior'] == prior
  table = (out / 'table.md').read_text()
  assert all(arm in table for arm in arms.split()), table
  assert (out / 'curves.png').stat().st_size > 1000

  # A rerun resumes: nothing is trained or measured again.
  before = {p: os.path.getmtime(p) for p in glob.glob(f'{out}/*_s0/**/*.json*', recursive=True)}
  result = _run(out, tiny_data_dir, arms, shallow)
  assert result.returncode == 0, result.stderr[-3000:] + _logs(out)
  after = {p: os.path.getmtime(p) for p in before}
  changed = [p for p in before if before[p] != after[p]
             and not p.endswith(('manifest.json', 'fid_stats'))]
  assert not [p for p in changed if 'metrics.jsonl' in p or 'curves.jsonl' in p], changed
