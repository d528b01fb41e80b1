"""Stores and input expansion: local folders, globs and fsspec URLs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from batchscore.errors import InputError
from batchscore.storage import Store, expand_inputs, is_local_url, to_url


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """b.txt a.txt c.csv sub/d.txt .hidden .cache/e.txt"""
    root = tmp_path / "tree"
    for rel in ("b.txt", "a.txt", "c.csv", "sub/d.txt", ".hidden", ".cache/e.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    return root


@pytest.fixture
def memory() -> Iterator[str]:
    """A fresh folder in fsspec's in-memory filesystem."""
    fs = fsspec.filesystem("memory")
    root = f"/t-{uuid.uuid4().hex[:8]}"
    for rel in ("b.txt", "a.txt", "sub/c.txt", ".hidden"):
        fs.pipe_file(f"{root}/{rel}", rel.encode())
    yield root
    fs.rm(root, recursive=True)


def test_folder_is_every_visible_file_below_it_sorted(tree):
    assert expand_inputs([str(tree)]) == [
        f"file://{tree}/a.txt", f"file://{tree}/b.txt", f"file://{tree}/c.csv",
        f"file://{tree}/sub/d.txt"]
    assert expand_inputs([f"{tree}/"]) == expand_inputs([str(tree)])


def test_glob_matches_files_only(tree):
    assert expand_inputs([f"{tree}/*.txt"]) == [f"file://{tree}/a.txt", f"file://{tree}/b.txt"]
    assert expand_inputs([f"{tree}/*"]) == [  # sub/ is a folder: not an input
        f"file://{tree}/a.txt", f"file://{tree}/b.txt", f"file://{tree}/c.csv"]
    assert expand_inputs([f"{tree}/**/*.txt"])[-1] == f"file://{tree}/sub/d.txt"


def test_relative_paths_and_file_urls(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert expand_inputs(["a.txt", "sub"]) == [f"file://{tree}/a.txt", f"file://{tree}/sub/d.txt"]
    assert expand_inputs([f"file://{tree}/c.csv"]) == [f"file://{tree}/c.csv"]


def test_patterns_keep_their_order_and_duplicates_go(tree):
    got = expand_inputs([f"{tree}/c.csv", f"{tree}/*.txt", str(tree / "a.txt"), str(tree)])
    assert got == [f"file://{tree}/c.csv", f"file://{tree}/a.txt", f"file://{tree}/b.txt",
                   f"file://{tree}/sub/d.txt"]


def test_memory_url(memory):
    assert expand_inputs([f"memory://{memory}"]) == [
        f"memory://{memory}/a.txt", f"memory://{memory}/b.txt", f"memory://{memory}/sub/c.txt"]
    assert expand_inputs([f"memory://{memory}/*.txt"]) == [
        f"memory://{memory}/a.txt", f"memory://{memory}/b.txt"]
    assert expand_inputs([f"memory://{memory}/b.txt"]) == [f"memory://{memory}/b.txt"]


@pytest.mark.parametrize("pattern", ["missing.txt", "*.jpg", "nothing/", "sub/*.csv"])
def test_no_match_names_the_pattern(tree, monkeypatch, pattern):
    monkeypatch.chdir(tree)
    with pytest.raises(InputError) as exc:
        expand_inputs(["a.txt", pattern])
    assert str(exc.value) == f"input {pattern!r} matches no file"


def test_memory_no_match(memory):
    with pytest.raises(InputError, match=r"^input 'memory://.*/x\*' matches no file$"):
        expand_inputs([f"memory://{memory}/x*"])


def test_unknown_protocol_is_an_input_error():
    with pytest.raises(InputError, match=r"^input 'nosuchproto://x/y': "):
        expand_inputs(["nosuchproto://x/y"])


def test_to_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert to_url("out") == f"file://{tmp_path}/out"
    assert to_url(tmp_path / "x") == f"file://{tmp_path}/x"
    assert to_url("s3://bucket/key") == "s3://bucket/key"
    assert is_local_url("out") and is_local_url("file:///x") and not is_local_url("memory://x")


def test_store_paths_reads_writes_and_lists(tmp_path):
    store = Store(str(tmp_path / "s") + "/", "system")
    assert store.url == f"file://{tmp_path}/s" and store.is_local
    assert store.path("a", "/b/") == f"{tmp_path}/s/a/b" and store.path() == f"{tmp_path}/s"
    assert store.url_of("a/b") == f"file://{tmp_path}/s/a/b"
    store.write_text("jobs/1/x.txt", "héllo")
    store.write_bytes("jobs/1/y.bin", b"\x00\x01")
    local = tmp_path / "local.txt"
    local.write_text("copied")
    store.put_file(local, "jobs/2/z.txt")
    assert store.list() == ["jobs/1/x.txt", "jobs/1/y.bin", "jobs/2/z.txt"]  # no temporaries
    assert store.list("jobs/1") == ["jobs/1/x.txt", "jobs/1/y.bin"]
    assert store.list("nothing") == []
    assert store.read_text("jobs/1/x.txt") == "héllo"
    assert store.local_path("jobs", "2", "z.txt").read_text() == "copied"
    with store.open("logs/a.txt", "w") as fh:  # makes the folder
        fh.write("line\n")
    assert store.exists("logs", "a.txt")
    store.remove("jobs", recursive=True)
    store.remove("not-there")
    assert store.list() == ["logs/a.txt"]


def test_memory_store_is_not_local(memory):
    store = Store(f"memory://{memory}", "data")
    assert not store.is_local and store.read_text("b.txt") == "b.txt"
    store.write_text("new/x.txt", "x")
    assert store.list("new") == ["new/x.txt"]
    with pytest.raises(ValueError, match="not a local store"):
        store.local_path("b.txt")


def test_wildcards_skip_hidden_names_unless_the_pattern_has_them(tree):
    assert expand_inputs([f"{tree}/.*"]) == [f"file://{tree}/.hidden"]
    assert expand_inputs([f"{tree}/.cache/*"]) == [f"file://{tree}/.cache/e.txt"]
    assert f"file://{tree}/.cache/e.txt" not in expand_inputs([f"{tree}/**"])


def _fsspec_listing(pattern: str) -> list[str]:
    """What ``expand_inputs`` gave before it listed as a stream: fsspec's own ``glob`` and
    ``find`` (a record per file), kept here as the reference it must still equal."""
    url = to_url(pattern)
    fs, path = fsspec.core.url_to_fs(url)
    protocol = url.split("://", 1)[0]

    def hidden(rel: str) -> bool:
        return any(part.startswith(".") for part in rel.split("/") if part)

    if any(c in path for c in "*?["):
        parts = path.split("/")
        first = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
        base = "/".join(parts[:first])
        dots = any(part.startswith(".") for part in parts[first:])
        found = [p for p in fs.glob(path)
                 if fs.isfile(p) and (dots or not hidden(p[len(base):]))]
    elif fs.isdir(path):
        base = path.rstrip("/")
        found = [p for p in fs.find(path) if not hidden(p[len(base):])]
    elif fs.exists(path):
        found = [path]
    else:
        return []
    return sorted(f"{protocol}://{p}" for p in found)


GLOBS = ["*", "*.txt", "**", "**/*.txt", "*/*.txt", "sub/**", "sub/**/*.txt", "s*/d*/*",
         "?.txt", "[ab].txt", "[!a].txt", ".*", "**/.*", ".cache/*", "*/.*", "**/*",
         "sub/*", "*/", "link*", "link/*", "**/g.txt", "sub/deeper/**/*.txt", "x*"]


@pytest.fixture
def rich_tree(tmp_path: Path) -> Path:
    """Files at three depths, hidden files and folders, links to a file, to a folder and
    to nothing."""
    root = tmp_path / "rich"
    for rel in ("b.txt", "a.txt", "c.csv", ".dot.txt", "sub/d.txt", "sub/.e.txt",
                "sub/deeper/f.txt", "sub/deeper/g.bin", ".cache/h.txt", ".cache/deep/i.txt",
                "other/j.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "g.txt").write_text("x")
    (root / "link").symlink_to(tmp_path / "outside")
    (root / "linkfile.txt").symlink_to(root / "a.txt")
    (root / "broken.txt").symlink_to(root / "nothing")
    return root


@pytest.mark.parametrize("glob", GLOBS)
def test_a_streamed_glob_lists_what_fsspecs_glob_listed(rich_tree: Path, glob: str):
    reference = _fsspec_listing(f"{rich_tree}/{glob}")
    if reference:
        assert expand_inputs([f"{rich_tree}/{glob}"]) == reference
    else:
        with pytest.raises(InputError, match="matches no file"):
            expand_inputs([f"{rich_tree}/{glob}"])


def test_a_streamed_folder_lists_what_fsspecs_find_listed(rich_tree: Path):
    for folder in (str(rich_tree), f"{rich_tree}/", f"{rich_tree}/sub", f"{rich_tree}/.cache"):
        assert expand_inputs([folder]) == _fsspec_listing(folder)
    # links to folders and to nothing are entries of the folder, as find gave them
    names = [u.rsplit("/", 1)[-1] for u in expand_inputs([str(rich_tree)])]
    assert {"link", "broken.txt", "linkfile.txt"} <= set(names)
    assert expand_inputs([f"{rich_tree}/*.txt"]) == [  # a wildcard: files only
        f"file://{rich_tree}/{n}" for n in ("a.txt", "b.txt", "linkfile.txt")]


@pytest.mark.parametrize("glob", ["*", "*.txt", "**", "**/*.txt", "sub/*", "[ab].txt", ".*",
                                  "**/.*", "*/*"])
def test_a_remote_glob_is_walked_to_the_same_list(glob: str):
    fs = fsspec.filesystem("memory")
    root = f"/g-{uuid.uuid4().hex[:8]}"
    for rel in ("b.txt", "a.txt", "c.csv", ".d.txt", "sub/e.txt", "sub/.f.txt",
                "sub/deeper/g.txt", ".cache/h.txt"):
        fs.pipe_file(f"{root}/{rel}", rel.encode())
    try:
        for pattern in (f"memory://{root}/{glob}", f"memory://{root}"):
            assert expand_inputs([pattern]) == _fsspec_listing(pattern)
    finally:
        fs.rm(root, recursive=True)


def test_a_folder_that_cannot_be_read_is_left_out_as_fsspec_left_it(rich_tree: Path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    (rich_tree / "sub").chmod(0)
    try:
        for pattern in (str(rich_tree), f"{rich_tree}/**/*.txt"):
            assert expand_inputs([pattern]) == _fsspec_listing(pattern)
    finally:
        (rich_tree / "sub").chmod(0o755)
