import pytest
from faults import TINY


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A one-step run of the tiny recipe (in-process): last.pt, best.pt, log.jsonl."""
    from snnres.cli import main

    out = tmp_path_factory.mktemp("trained") / "run"
    assert main([*TINY, "--epochs", "1", "--max-steps-per-epoch", "1", "--out", str(out)]) == 0
    return out
