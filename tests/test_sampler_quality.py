"""benchmarks/sampler_quality.py: settings parsing, per-setting configs and the table."""

import os
import sys

from absl import app
import pytest

from configs import compare_polymnist

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'benchmarks'))
import sampler_quality  # pylint: disable=g-import-not-at-top


def test_parse_settings():
  assert sampler_quality.parse_settings('dpmpp_2m:10, ddim:50,ddpm:1000') == [
      ('dpmpp_2m', 10), ('ddim', 50), ('ddpm', 1000)]
  for bad in ('ddim', 'ddim:0', 'ddim:ten'):
    with pytest.raises(app.UsageError, match='sampler:calls'):
      sampler_quality.parse_settings(bad)


def test_setting_config_changes_only_sampling_and_eval_sizes():
  base = compare_polymnist.get_config('diffusion')
  c = sampler_quality.setting_config(base, 'dpmpp_2m', 20, 100, '/c', '/f')
  assert (c.sample.sampler, c.sample.steps) == ('dpmpp_2m', 20)
  assert c.eval.num_examples == c.eval.unconditional_num == 100
  assert not c.eval.fid_conditional and not c.eval.latent_gap
  assert (c.eval.classifier_dir, c.eval.fid_cache_dir) == ('/c', '/f')
  assert c.model.to_dict() == base.model.to_dict() and c.seed == base.seed
  assert base.sample.sampler == 'ddim'   # The run's config is not modified.
  assert sampler_quality.setting_config(base, 'ddpm', 1000, 10, '', '').sample.steps == 50


def test_summary_and_markdown():
  record = {'results': {'fid': {'unconditional': {'m0': 100.0, 'm1': 90.5}},
                        'coherence': {'conditional': {'by_num_given': {'1': 0.5}},
                                      'unconditional': 0.25}},
            'images_per_second': 12.34}
  rows = [sampler_quality.summary_row('dpmpp_2m', 20, 250, record),
          sampler_quality.summary_row('ddpm', 1000, 50, record)]
  assert rows[1]['network_calls'] is None
  table = sampler_quality.markdown(rows).splitlines()
  assert table[0].startswith('| sampler | calls | N | FID m0 | FID m1 |')
  assert table[2] == '| dpmpp_2m | 20 | 250 | 100.0 | 90.5 | 50.0 % | 25.0 % | 12.3 |'
  assert table[3].startswith('| ddpm | all T | 50 |')


def test_prior_steps_settings_and_config():
  import prior_steps  # pylint: disable=g-import-not-at-top
  assert prior_steps.parse_settings('pc:500,ode_heun:20') == [('pc', 500), ('ode_heun', 20)]
  with pytest.raises(app.UsageError, match='sampler:steps'):
    prior_steps.parse_settings('pc')
  base = compare_polymnist.get_config('diffusion')
  c = prior_steps.setting_config(base, 'sde', 'ode_heun', 20, 300)
  assert (c.sample.prior, c.prior.sampler, c.prior.sampler_steps) == ('sde', 'ode_heun', 20)
  assert c.eval.num_examples == c.eval.unconditional_num == 300
  assert base.sample.prior == 'gaussian' and base.prior.sampler == 'pc'


def test_prior_steps_does_not_time_the_gaussian_prior(tmp_path):
  """N(0, I) has no sampler to time: JSON null rather than NaN (not valid JSON)."""
  import prior_steps  # pylint: disable=g-import-not-at-top
  config = prior_steps.setting_config(compare_polymnist.get_config('diffusion'), 'gaussian',
                                      num=8)
  assert prior_steps.samples_per_second(config, str(tmp_path), 8) is None
