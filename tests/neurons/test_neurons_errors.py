"""Bad input gets an error that names the problem and the fix."""

import pytest
import torch

from snnres.functional import lif, mlf
from snnres.neurons import LIF, available_backends, resolve_backend


def test_zero_time_steps():
    with pytest.raises(ValueError, match="T=0"):
        lif(torch.zeros(0, 3))


def test_scalar_input():
    with pytest.raises(ValueError, match=r"\[T, \.\.\.\]"):
        lif(torch.tensor(1.0))


def test_integer_input():
    with pytest.raises(ValueError, match="floating point.*int64.*float"):
        LIF()(torch.ones(2, 3, dtype=torch.int64))


def test_nan_input_with_check():
    x = torch.zeros(3, 4)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        LIF(check_finite=True)(x)


def test_wrong_state_shape():
    with pytest.raises(ValueError, match=r"state v must have shape \(3,\)"):
        lif(torch.zeros(2, 3), torch.zeros(4))
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        mlf(torch.zeros(2, 5), torch.zeros(5))


def test_unknown_surrogate_suggests_close_name():
    with pytest.raises(ValueError, match="(?i)did you mean 'sigmoid'"):
        LIF(surrogate="sigmod")


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        lif(torch.zeros(2, 3), backend="cuda")


def test_cupy_backend_on_cpu_tensor_says_why():
    with pytest.raises(RuntimeError, match="cupy"):
        lif(torch.zeros(2, 3), backend="cupy")


def test_tau_below_one():
    with pytest.raises(ValueError, match="tau must be >= 1"):
        lif(torch.zeros(2, 3), tau=0.5)
    with pytest.raises(ValueError, match="learn_tau"):
        LIF(tau=1.0, learn_tau=True)


def test_auto_picks_numba_on_cpu():
    assert "numba" in available_backends("cpu")
    assert resolve_backend("auto", "cpu") == "numba"
