"""Bundles whose headers are bombs: a PAX extended header of tens of MiB (a few KiB once
gzipped) passed the checks, costing its whole size in memory. Headers the bundles do not need
are refused, a bundle is read in bounded pieces, and a refused bundle leaves nothing behind."""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc

import pytest

from batchscore.errors import InputError
from batchscore.jobs import bundle as bundles
from batchscore.storage import Store

BOMB = 48 * bundles.MiB  # bytes of the extended header


def _header(name: str, size: int, kind: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, 0o644, 0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _pax_record(keyword: str, value_len: int) -> bytes:
    """One valid PAX record ``"<len> <keyword>=<value>\\n"`` of about ``value_len`` bytes."""
    body = f" {keyword}=".encode() + b"a" * value_len + b"\n"
    digits = len(str(len(body)))
    while len(str(len(body) + digits)) != digits:
        digits += 1
    return str(len(body) + digits).encode() + body


def _bomb(kind: bytes = tarfile.XHDTYPE, size: int = BOMB) -> bytes:
    """A valid .tar.gz: a PAX header of ``size`` bytes (a comment), then code/score.py."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        record = _pax_record("comment", size - 40)
        gz.write(_header("././@PaxHeader", len(record), kind))
        for i in range(0, len(record), 1 << 20):
            gz.write(record[i:i + (1 << 20)])
        gz.write(b"\0" * (-len(record) % 512))
        script = b"def init():\n    pass\n\ndef run(batch):\n    return []\n"
        gz.write(_header("code/score.py", len(script), tarfile.REGTYPE))
        gz.write(script + b"\0" * (-len(script) % 512))
        gz.write(b"\0" * 1024)
    return out.getvalue()


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.XGLTYPE])
def test_a_pax_header_bomb_is_refused_without_reading_it(kind: bytes, tmp_path) -> None:
    archive = _bomb(kind)
    assert len(archive) < 1 * bundles.MiB  # tiny on the wire
    system = Store(str(tmp_path / "system"), "system")
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="extended header"):
            bundles.store_bundle(system, archive, "score.py")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * bundles.MiB, f"checking the bundle held {peak / bundles.MiB:.0f} MiB"
    assert not (tmp_path / "system").exists() or not list((tmp_path / "system").rglob("*"))


def test_gnu_long_names_and_sparse_files_are_refused(tmp_path) -> None:
    for kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.GNUTYPE_SPARSE):
        with pytest.raises(InputError, match=r"extended header|not accepted"):
            bundles.check_bundle(_bomb(kind, 64 * 1024), "score.py")


def test_a_member_that_unpacks_past_the_limit_stops_there(monkeypatch, tmp_path) -> None:
    """The bytes actually read are counted, not the sizes the headers claim."""
    monkeypatch.setattr(bundles, "MAX_UNPACKED_BYTES", 1 * bundles.MiB)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        script = b"def run(b):\n    return b\n"
        info = tarfile.TarInfo("code/score.py")
        info.size = len(script)
        tar.addfile(info, io.BytesIO(script))
        big = tarfile.TarInfo("code/blob.bin")
        big.size = 4 * bundles.MiB
        tar.addfile(big, io.BytesIO(b"\0" * big.size))
    system = Store(str(tmp_path / "system"), "system")
    with pytest.raises(bundles.BundleTooLargeError, match="unpacks to more than"):
        bundles.store_bundle(system, out.getvalue(), "score.py")
    assert not list((tmp_path / "system").rglob("*")) if (tmp_path / "system").exists() \
        else True


def test_a_normal_bundle_with_long_names_still_passes(tmp_path) -> None:
    """pack_bundle writes PAX headers for long names: small ones stay accepted."""
    out = io.BytesIO()
    long = "code/" + "/".join(["folder_with_a_long_name"] * 8) + "/module.py"
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("code/score.py", b"def run(b):\n    return b\n"),
                           (long, b"X = 1\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    system = Store(str(tmp_path / "system"), "system")
    stored = bundles.store_bundle(system, out.getvalue(), "score.py")
    assert system.exists(stored.prefix, long)
