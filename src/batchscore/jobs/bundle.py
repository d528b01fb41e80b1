"""Script bundles: an entry script's code folder (and a small model folder) packed to travel to
a service, and kept there in the **system** store.

A bundle is a gzip-compressed tar archive holding ``code/...`` (the files of
``code_configuration.code``, or the scoring script alone) and, optionally, ``model/<name>/...``
(the model folder; ``<name>`` is kept because ``AZUREML_MODEL_DIR`` is its parent). The client
packs it deterministically (:func:`pack_bundle`); the service checks every member (regular
files only, no ``..``, no absolute names, no links, size limits counted on the bytes actually
unpacked, as they are read; extended headers only as PAX headers of at most
:data:`MAX_HEADER_BYTES`, read after their size is checked: GNU long names, sparse files and
global headers are refused) and stores the files under
``scripts/<sha256>/`` of its system store (:func:`store_bundle`), where ``<sha256>`` hashes
the files' names and contents: the same code gives the same folder, hence the same job spec
and the same job key, so submitting the same command again finds the same job.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import BundleTooLargeError, InputError, ScriptError, SpecError
from ..paths import script_bundle
from ..storage import Store
from ..workspace import machine_dir
from .spec import JobSpec

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_UNPACKED_BYTES",
    "Bundle",
    "BundleTooLargeError",
    "StoredScript",
    "bundle_model",
    "check_bundle",
    "pack_bundle",
    "store_bundle",
]

MiB = 1024 * 1024
MAX_BUNDLE_BYTES = 50 * MiB  # the archive as sent (code and model, compressed)
MAX_UNPACKED_BYTES = 200 * MiB  # its files once unpacked
MAX_MEMBERS = 10_000
MAX_HEADER_BYTES = 64 * 1024  # a PAX extended header (long or non-ASCII names need one)
_CHUNK = 1024 * 1024
# Member types a bundle may hold: files, folders, and PAX headers; links and special files are
# read (they carry no data) only to be refused by name below.
_PLAIN_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE)
_COMPLETE = ".complete"


@dataclass(frozen=True)
class Bundle:
    """A packed bundle: the archive, the entry script's path inside ``code/``, its files."""

    archive: bytes
    scoring_script: str
    files: int
    unpacked_bytes: int


@dataclass(frozen=True)
class StoredScript:
    """A bundle kept in the system store, and where a job spec finds it on this machine."""

    digest: str
    prefix: str  # system-store path: scripts/<digest>
    code: str  # a local folder holding the code (the spec's ``code``)
    scoring_script: str  # relative to ``code``
    model_dir: str | None  # local folder, or URL in the system store


def _code_files(spec: JobSpec) -> tuple[Path, list[Path]]:
    from .script import _code_files as code_files  # the files a local job ships, the same way

    return code_files(spec)


def _model_files(location: str) -> tuple[Path, list[Path]]:
    if "://" in location:
        raise SpecError(f"model folder {location!r} is a URL; a job submitted to a service "
                        "takes a local --model-dir (it travels with the script)")
    root = Path(location)
    if root.is_file():
        return root.parent, [root]
    if not root.is_dir():
        raise ScriptError(f"model folder {location!r} does not exist")
    return root, [p for p in sorted(root.rglob("*"))
                  if p.is_file() and "__pycache__" not in p.relative_to(root).parts]


def _add(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    data = path.read_bytes()
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # deterministic: the same files give the same archive
    tar.addfile(info, io.BytesIO(data))


def pack_bundle(spec: JobSpec, limit: int | None = None) -> Bundle:
    """Pack ``spec``'s scoring code (and its model folder) for a service.

    Raises :class:`ScriptError` for a missing script or model folder, :class:`SpecError` for
    a model given as a URL, and :class:`BundleTooLargeError` over the limits."""
    limit = MAX_BUNDLE_BYTES if limit is None else limit
    script = spec.script_path
    if script is None:
        raise ScriptError("no scoring script given (--scoring-script or "
                          "code_configuration.scoring_script)")
    if not script.is_file():
        raise ScriptError(f"scoring script {str(script)!r} does not exist")
    root, files = _code_files(spec)
    if not script.resolve().is_relative_to(root.resolve()):
        raise ScriptError(f"scoring script {str(script)!r} is not inside the code folder "
                          f"{str(root)!r}")
    entries = [(f"code/{p.relative_to(root).as_posix()}", p) for p in files]
    if spec.model_dir:
        model_root, model_files = _model_files(spec.model_dir)
        name = Path(spec.model_dir).name
        if Path(spec.model_dir).is_file():
            entries += [(f"model/{name}", model_files[0])]
        else:
            entries += [(f"model/{name}/{p.relative_to(model_root).as_posix()}", p)
                        for p in model_files]
    unpacked = sum(p.stat().st_size for _, p in entries)
    if unpacked > MAX_UNPACKED_BYTES:
        raise BundleTooLargeError(
            f"the scoring code and model folder hold {unpacked / MiB:.1f} MiB, more than the "
            f"limit of {MAX_UNPACKED_BYTES // MiB} MiB a job submitted to a service may carry; "
            "put big models in the registry (batchscore model) instead")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in sorted(entries):
            _add(tar, name, path)
    archive = buffer.getvalue()
    if len(archive) > limit:
        raise BundleTooLargeError(
            f"the scoring code and model folder pack to {len(archive)} bytes, more than the "
            f"limit of {limit} bytes ({limit / MiB:g} MiB) for a job submitted to a service")
    return Bundle(archive, script.resolve().relative_to(root.resolve()).as_posix(),
                  len(entries), unpacked)


def _member_name(name: str, folder: bool = False) -> str:
    """A member's name, checked: ``code/<path>`` or ``model/<name>[/<path>]`` (a folder:
    any path without ``..``)."""
    if not name or len(name) > 1024:
        raise InputError(f"bundle member name {name[:80]!r} is empty or too long")
    if any(ord(c) < 32 for c in name) or "\\" in name:
        raise InputError(f"bundle member {name!r} holds control characters or backslashes")
    if name.startswith("/"):
        raise InputError(f"bundle member {name!r} is absolute; members lie below code/ or "
                         "model/")
    parts = name.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InputError(f"bundle member {name!r} leaves its folder ('..', '.' and empty "
                         "parts are not allowed)")
    if parts[0] not in ("code", "model") or (len(parts) < 2 and not folder):
        raise InputError(f"bundle member {name!r} is neither below code/ nor below model/")
    return "/".join(parts)


@dataclass(frozen=True)
class _Checked:
    digest: str
    files: list[str]
    model: str | None  # the model folder's (or file's) name


class _StrictInfo(tarfile.TarInfo):
    """A member header checked before tarfile reads what follows it: an extended header is
    read whole into memory, so its size is checked first, and kinds a bundle never needs are
    refused."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type == tarfile.XHDTYPE:
            if self.size > MAX_HEADER_BYTES:
                raise InputError(f"bundle holds an extended header of {self.size} bytes, more "
                                 f"than the {MAX_HEADER_BYTES} bytes a member's names need")
        elif self.type not in _PLAIN_TYPES:
            raise InputError(f"bundle member {self.name[:200]!r} has an extended header or "
                             f"member type {self.type!r} that is not accepted (bundles hold "
                             "regular files and folders, with PAX headers for long names)")
        return super()._proc_member(tar)  # type: ignore[misc]


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    try:
        yield from tar
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(f"bundle is not a valid .tar.gz archive: {exc}") from None


def _open(archive: bytes) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz", tarinfo=_StrictInfo)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(f"bundle is not a valid .tar.gz archive: {exc}") from None


def _digest(tar: tarfile.TarFile, member: tarfile.TarInfo, budget: int) -> tuple[str, int]:
    """The sha256 of a member's data and its length, read in bounded pieces; more than
    ``budget`` bytes is :class:`BundleTooLargeError` (counted as they are unpacked)."""
    fh = tar.extractfile(member)
    assert fh is not None  # a regular file
    digest = hashlib.sha256()
    read = 0
    try:
        while chunk := fh.read(_CHUNK):
            read += len(chunk)
            if read > budget:
                raise BundleTooLargeError(
                    f"the script bundle unpacks to more than the limit of "
                    f"{MAX_UNPACKED_BYTES // MiB} MiB")
            digest.update(chunk)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(f"bundle member {member.name!r} cannot be read: {exc}") from None
    return digest.hexdigest(), read


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(member)
    assert fh is not None  # a regular file
    try:
        return fh.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(f"bundle member {member.name!r} cannot be read: {exc}") from None


def check_bundle(archive: bytes, scoring_script: str, limit: int | None = None) -> str:
    """Check a bundle without storing anything; returns its digest. Raises
    :class:`BundleTooLargeError` over the limits, :class:`InputError` for a bad archive or
    member, :class:`ScriptError` when ``scoring_script`` is not among ``code/``'s files."""
    return _check(archive, scoring_script, limit).digest


def bundle_model(archive: bytes) -> str | None:
    """The name of the model folder a bundle holds (``model/<name>/...``), or None; the
    archive is read as :func:`check_bundle` reads it (check it first)."""
    with _open(archive) as tar:
        for member in _members(tar):
            parts = member.name.strip("/").split("/")
            if parts[0] == "model" and len(parts) > 1 and member.isfile():
                return parts[1]
    return None


def _script_name(scoring_script: str) -> str:
    try:
        return _member_name(f"code/{scoring_script}")[len("code/"):]
    except InputError:
        raise ScriptError(f"scoring_script {scoring_script!r} is not a plain path inside the "
                          "bundle's code/ folder") from None


def _check(archive: bytes, scoring_script: str, limit: int | None) -> _Checked:
    limit = MAX_BUNDLE_BYTES if limit is None else limit
    if len(archive) > limit:
        raise BundleTooLargeError(f"the script bundle is {len(archive)} bytes, more than the "
                                  f"limit of {limit} bytes ({limit / MiB:g} MiB)")
    script = _script_name(scoring_script)
    hashes: dict[str, str] = {}
    models: set[str] = set()
    total = 0
    with _open(archive) as tar:
        for member in _members(tar):
            if member.isdir():
                _member_name(member.name, folder=True)
                continue
            name = _member_name(member.name)
            if not member.isfile():
                raise InputError(f"bundle member {name!r} is a link or a special file; only "
                                 "regular files are accepted")
            if name in hashes:
                raise InputError(f"bundle member {name!r} appears twice")
            if len(hashes) >= MAX_MEMBERS:
                raise BundleTooLargeError(f"the script bundle holds more than {MAX_MEMBERS} "
                                          "files")
            total += member.size
            if total > MAX_UNPACKED_BYTES:
                raise BundleTooLargeError(
                    f"the script bundle unpacks to more than the limit of "
                    f"{MAX_UNPACKED_BYTES // MiB} MiB")
            parts = name.split("/")
            if parts[0] == "model":
                models.add(parts[1])
            hashes[name], read = _digest(tar, member,
                                         MAX_UNPACKED_BYTES - (total - member.size))
            total += read - member.size
    if len(models) > 1:
        raise InputError(f"bundle holds more than one model folder: {', '.join(sorted(models))}")
    if f"code/{script}" not in hashes:
        code = sorted(n[len("code/"):] for n in hashes if n.startswith("code/"))
        raise ScriptError(f"scoring script {scoring_script!r} is not in the bundle's code "
                          f"(it holds {', '.join(code[:10]) or 'no files'}"
                          f"{', ...' if len(code) > 10 else ''})")
    digest = hashlib.sha256("".join(f"{n}\0{h}\n" for n, h in sorted(hashes.items()))
                            .encode()).hexdigest()
    return _Checked(digest, sorted(hashes), next(iter(models), None))


def _cache_root() -> Path:
    return machine_dir("scripts")


def store_bundle(system: Store, archive: bytes, scoring_script: str,
                 limit: int | None = None) -> StoredScript:
    """Check ``archive`` (as :func:`check_bundle`) and keep its files under
    ``scripts/<digest>/`` of the system store; a digest stored before is not written again.

    A job's spec points at the code as a local folder (the kind copies it into the job's own
    folder of the system store when the job starts): the system store's folder when it is
    local, else a copy in this machine's temporary folder."""
    checked = _check(archive, scoring_script, limit)
    prefix = script_bundle(checked.digest)
    script = _script_name(scoring_script)
    if not system.exists(prefix, _COMPLETE):
        _write_files(archive, lambda rel, data: system.write_bytes(f"{prefix}/{rel}", data))
        system.write_text(f"{prefix}/{_COMPLETE}", "")
    if system.is_local:
        code = str(system.local_path(prefix, "code"))
        model = str(system.local_path(prefix, "model", checked.model)) if checked.model \
            else None
    else:
        local = _cache_root() / checked.digest
        if not (local / _COMPLETE).exists():
            _write_files(archive, lambda rel, data: _write_local(local / rel, data))
            (local / _COMPLETE).write_text("")
        code = str(local / "code")
        model = system.url_of(prefix, "model", checked.model) if checked.model else None
    return StoredScript(checked.digest, prefix, code, script, model)


def _write_local(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data)
    tmp.replace(path)


def _write_files(archive: bytes, write: Callable[[str, bytes], None]) -> None:
    with _open(archive) as tar:
        for member in _members(tar):
            if member.isfile():
                write(_member_name(member.name), _read(tar, member))
