"""benchmarks/conv_layout.py: both layouts compute the same loss and gradients."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'benchmarks'))
import conv_layout  # pylint: disable=g-import-not-at-top


def test_nchw_equals_nhwc():
  nhwc = conv_layout.conv_grad_fn('NHWC')(*conv_layout.inputs('NHWC', 2, 6, 5, 3, 4))
  nchw = conv_layout.conv_grad_fn('NCHW')(*conv_layout.inputs('NCHW', 2, 6, 5, 3, 4))
  np.testing.assert_allclose(float(nhwc[0]), float(nchw[0]), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(nhwc[1][0]), np.asarray(nchw[1][0]).transpose(0, 2, 3, 1),
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(nhwc[1][1]), np.asarray(nchw[1][1]).transpose(2, 3, 1, 0),
                             rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match='Unknown layout'):
    conv_layout.conv_grad_fn('CHWN')
