"""The fused backends keep one tensor of the input's size for the backward, nothing more."""

import torch

from snnres.functional import lif, mlf


def saved_storage_bytes(fn) -> int:
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


def test_numba_saves_only_the_input():
    x = torch.randn(8, 4096, requires_grad=True)
    input_bytes = x.numel() * x.element_size()
    assert saved_storage_bytes(lambda: lif(x, backend="numba")) == input_bytes
    assert saved_storage_bytes(lambda: mlf(x, backend="numba")) == input_bytes
    # The step-by-step reference keeps several tensors per step.
    assert saved_storage_bytes(lambda: lif(x, backend="torch")) >= 2 * input_bytes


def test_a_passed_state_is_saved_too():
    x = torch.randn(8, 4096, requires_grad=True)
    v = torch.zeros(4096, requires_grad=True)
    assert saved_storage_bytes(lambda: lif(x, v, backend="numba")) == (x.numel() + v.numel()) * 4
