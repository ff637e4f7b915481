"""Frame cache: reused on the second pass, atomic, rebuilt when damaged, safe under concurrency."""

import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pytest

from snnres.data import make_dataset
from snnres.data.cache import FrameCache


def encode_nmnist(x, y, p, t):
    x, y, p, t = (np.asarray(v, dtype=np.uint32) for v in (x, y, p, t))
    return np.stack([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], 1).astype(np.uint8).tobytes()


@pytest.fixture
def nmnist_root(tmp_path):
    rng = np.random.default_rng(0)
    for digit in range(3):
        folder = tmp_path / "NMNIST" / "Train" / str(digit)
        folder.mkdir(parents=True)
        n = 60
        events = (rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n), np.sort(rng.integers(0, 10**5, n)))
        (folder / "0.bin").write_bytes(encode_nmnist(*events))
    return tmp_path


def counting(dataset_class, monkeypatch):
    calls = []
    original = dataset_class.events
    monkeypatch.setattr(dataset_class, "events", lambda self, i: calls.append(i) or original(self, i))
    return calls


def test_second_pass_reads_the_cache(nmnist_root, monkeypatch):
    from snnres.data.tonic_sets import TonicEventSet

    calls = counting(TonicEventSet, monkeypatch)
    dataset = make_dataset("nmnist", root=nmnist_root, T=4, augment=False)
    assert calls == [0, 1, 2]  # every recording read, checked and cached when the set is built
    first = [dataset[i][0] for i in range(3)]
    assert calls == [0, 1, 2]
    again = make_dataset("nmnist", root=nmnist_root, T=4, augment=False)
    second = [again[i][0] for i in range(3)]
    assert calls == [0, 1, 2]  # no event file read the second time
    for a, b in zip(first, second):
        assert np.array_equal(a.numpy(), b.numpy())
    # a different binning is a different cache
    other = make_dataset("nmnist", root=nmnist_root, T=5, augment=False)
    assert other[0][0].shape[0] == 5 and calls[3:] == [0, 1, 2]
    folders = sorted(p.name for p in (nmnist_root / ".cache" / "nmnist" / "train").iterdir())
    assert len(folders) == 2 and all("T4" in f or "T5" in f for f in folders)


def test_truncated_cache_file_is_rebuilt_not_used(nmnist_root, monkeypatch):
    dataset = make_dataset("nmnist", root=nmnist_root, T=4, augment=False)
    good = dataset[1][0]
    path = dataset.cache.path(dataset.cache_key(1))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    calls = counting(type(dataset), monkeypatch)
    assert np.array_equal(dataset[1][0].numpy(), good.numpy())
    assert calls == [1]
    assert path.read_bytes() == data  # rewritten whole
    # a file of the wrong shape is not taken either
    np.save(path, np.zeros((2, 2), np.uint8))
    assert np.array_equal(dataset[1][0].numpy(), good.numpy())


def test_stale_temp_file_is_ignored(tmp_path):
    cache = FrameCache(tmp_path / "c", (2, 3))
    cache.folder.mkdir()
    (cache.folder / ".leftover.tmp").write_bytes(b"\x93NUMPY half")
    assert cache.load("k") is None
    frames = np.arange(6).reshape(2, 3)
    cache.store("k", frames)
    np.testing.assert_array_equal(cache.load("k"), frames)
    assert cache.load("k").dtype == np.uint8
    assert sorted(p.name for p in cache.folder.iterdir() if p.suffix == ".tmp") == [".leftover.tmp"]
    with pytest.raises(ValueError, match="shape"):
        cache.store("k", np.zeros((3, 3)))


def _store_many(folder, seed):
    cache = FrameCache(folder, (4, 64, 64))
    frames = np.arange(4 * 64 * 64, dtype=np.uint32).reshape(4, 64, 64) * 3
    for _ in range(30):
        cache.store("shared", frames)
        loaded = cache.load("shared")
        assert loaded is not None and np.array_equal(loaded, frames)


def test_concurrent_builders_leave_a_good_file(tmp_path):
    folder = tmp_path / "c"
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_store_many, args=(folder, s)) for s in range(2)]
    threads = [threading.Thread(target=_store_many, args=(folder, 9)) for _ in range(2)]
    for worker in processes + threads:
        worker.start()
    for worker in processes + threads:
        worker.join()
    assert all(p.exitcode == 0 for p in processes)
    cache = FrameCache(folder, (4, 64, 64))
    expected = np.arange(4 * 64 * 64).reshape(4, 64, 64) * 3
    np.testing.assert_array_equal(cache.load("shared"), expected)
    assert not list(folder.glob("*.tmp"))


def test_two_processes_building_a_dataset_cache(nmnist_root):
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_read_all, args=(str(nmnist_root),)) for _ in range(2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    assert all(p.exitcode == 0 for p in processes)
    fresh = make_dataset("nmnist", root=nmnist_root, T=4, augment=False, cache=False)
    cached = make_dataset("nmnist", root=nmnist_root, T=4, augment=False)
    for i in range(3):
        assert cached.cache.load(cached.cache_key(i)) is not None
        assert np.array_equal(cached[i][0].numpy(), fresh[i][0].numpy())


def _read_all(root):
    dataset = make_dataset("nmnist", root=root, T=4, augment=False)
    for i in range(len(dataset)):
        dataset[i]


def test_changed_source_file_is_not_served_from_cache(nmnist_root):
    dataset = make_dataset("nmnist", root=nmnist_root, T=2, augment=False)
    before = dataset[0][0]
    path = nmnist_root / "NMNIST" / "Train" / "0" / "0.bin"
    path.write_bytes(encode_nmnist([1], [1], [1], [0]) + encode_nmnist([2], [2], [0], [50]))
    after = make_dataset("nmnist", root=nmnist_root, T=2, augment=False)[0][0]
    assert after.sum() == 1 and before.sum() != after.sum()


def _as_other_user(task):
    """Run ``task()`` where the data folder's permissions bind: in this process for an ordinary
    user; as root (who may write anywhere) in a forked child that becomes ``nobody``. Returns what
    ``task`` returned (JSON-able), re-raising its failure here."""
    import json
    import os
    import traceback

    if os.geteuid() != 0:
        return task()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, run, report, exit without running pytest's cleanup
        os.close(read_end)
        try:
            os.setgid(65534)
            os.setuid(65534)
            message = json.dumps({"ok": task()})
        except BaseException:
            message = json.dumps({"error": traceback.format_exc()})
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(message)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        reply = json.loads(pipe.read() or '{"error": "the child died"}')
    os.waitpid(pid, 0)
    if "error" in reply:
        pytest.fail(reply["error"])
    return reply["ok"]


@pytest.fixture
def read_only_root(monkeypatch):
    """An N-MNIST root that the test's user cannot write (owned by root, mode 555 / 755 for nobody),
    outside pytest's private tmp folder so that ``nobody`` can reach it."""
    import os
    import shutil
    import stat
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="snnres-ro-"))
    os.chmod(base, 0o755)
    root = base / "data"
    for digit in range(2):
        folder = root / "NMNIST" / "Train" / str(digit)
        folder.mkdir(parents=True)
        events = ([1, 2, 3 + digit], [4, 5, 6], [0, 1, 1], [0, 100, 200])
        (folder / "0.bin").write_bytes(encode_nmnist(*events))
    cache = base / "user-cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    mode = 0o555 if os.geteuid() != 0 else 0o755  # nobody cannot write a root-owned 755 folder
    for path in [root, *root.rglob("*")]:
        os.chmod(path, mode if path.is_dir() else stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    import rich.progress  # noqa: F401  (imported before a fork that may not read the stdlib)

    yield root, cache
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755)
    shutil.rmtree(base)


def _build_read_only(root, env):
    import logging
    import os

    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    notices = []
    handler = logging.Handler()
    handler.emit = lambda record: notices.append(record.getMessage())
    logging.getLogger("snnres.data").addHandler(handler)
    try:
        dataset = make_dataset("nmnist", root=root, T=2, augment=False)
        frames = [dataset[i][0].tolist() for i in range(len(dataset))]
        again = make_dataset("nmnist", root=root, T=2, augment=False)
        cached = [again.cache is not None and again.cache.load(again.cache_key(i)) is not None for i in range(2)]
    finally:
        logging.getLogger("snnres.data").removeHandler(handler)
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    return {"folder": str(dataset.cache.folder) if dataset.cache else None, "frames": frames, "notices": notices,
            "cached": cached}


def test_read_only_data_folder_caches_under_snnres_cache(read_only_root):
    root, cache = read_only_root
    expected = [make_dataset("nmnist", root=root, T=2, augment=False, cache=False)[i][0].tolist() for i in range(2)]
    got = _as_other_user(lambda: _build_read_only(root, {"SNNRES_CACHE": str(cache)}))
    assert got["folder"].startswith(str(cache)) and "nmnist" in got["folder"]
    assert got["frames"] == expected and got["cached"] == [True, True]
    assert not (root / ".cache").exists()
    notice = [n for n in got["notices"] if "read-only" in n]
    assert len(notice) == 2 and "\n" not in notice[0] and str(root) in notice[0] and "SNNRES_CACHE" in notice[0]


def test_read_only_data_folder_falls_back_to_the_platform_cache(read_only_root):
    root, cache = read_only_root
    got = _as_other_user(lambda: _build_read_only(root, {"SNNRES_CACHE": "", "XDG_CACHE_HOME": str(cache)}))
    assert got["folder"].startswith(str(cache / "snnres"))


def test_nowhere_to_write_still_reads_uncached(read_only_root):
    root, _ = read_only_root
    got = _as_other_user(lambda: _build_read_only(root, {"SNNRES_CACHE": str(root / "NMNIST")}))
    assert got["folder"] is None and len(got["frames"]) == 2
    assert any("not cached" in n for n in got["notices"])
