"""The manifest of a compiled folder: which files ``convc compile`` wrote, and their hashes.

``convc compile`` writes ``manifest.json`` last, over every other file it wrote;
:func:`convc.compiler.program.load_program` checks it before it trusts the folder, so
a file that is missing, truncated, damaged or left from another compile is refused
with one message naming the folder and the file.  ``manifest.json``::

    {
     "format": "convc-manifest",
     "version": 1,
     "convc": "0.1.0",                        the convc that wrote the folder
     "model": {"path": "/abs/model.npz",      the model it was compiled from
               "size": 123456, "sha256": "..."}  (or null; size and sha256 null
                                                 when the file could not be read)
     "files": {"program.json": {"size": 2765, "sha256": "..."},
               "ise/convc_ml605.ucf": {"size": 900, "sha256": "...",
                                       "editable": true},
               ...},
     "seal": "..."
    }

A compile writes the folder beside it first and swaps it in whole; the names of
those folders are :func:`sidecars`'s.

File names are relative, ``/``-separated, and never leave the folder.  Files marked
``editable`` (the ISE project, which its README asks the user to edit) are listed for
the record but not checked when the folder is loaded.  ``seal`` is the SHA-256 of the
file's bytes before it (see :func:`_seal_split`): any changed byte of the manifest
itself is refused too, so a manifest cannot be edited by hand without hashing it
again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Iterable

from convc import __version__
from convc.errors import ConvcError

__all__ = ["MANIFEST_NAME", "MANIFEST_FORMAT", "MANIFEST_VERSION", "file_sha256", "model_record",
           "write_manifest", "read_manifest", "listed_files", "is_manifest", "check_files", "sidecars", "sealed"]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "convc-manifest"
MANIFEST_VERSION = 1

#: a manifest larger than this is not one convc wrote (it lists a few dozen files)
MAX_MANIFEST_BYTES = 1 << 20

STAGING_SUFFIX = ".convc-staging"
BACKUP_SUFFIX = ".convc-backup"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_SEAL_TAIL = re.compile(rb',\n "seal": "([0-9a-f]{64})"\n}\n\Z')
_CHUNK = 1 << 20


def sidecars(folder: str | Path) -> tuple[Path, Path]:
    """The staging and backup folders a compile of ``folder`` uses beside it.

    Hidden, in the same parent (so that renames are atomic), named after the folder
    (so that the next compile finds what a killed one left):
    ``.NAME.convc-staging`` and ``.NAME.convc-backup``.
    """
    folder = Path(folder)
    return (folder.with_name(f".{folder.name}{STAGING_SUFFIX}"),
            folder.with_name(f".{folder.name}{BACKUP_SUFFIX}"))


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB pieces (hex digest).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    OSError
        The file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(_CHUNK)
            if not block:
                return h.hexdigest()
            h.update(block)


def model_record(path: str | Path | None) -> dict | None:
    """What a manifest says about the model a folder was compiled from.

    Parameters
    ----------
    path : str or Path or None
        The model file (``model.npz`` or a spec).  ``None``: no model.

    Returns
    -------
    dict or None
        ``{"path", "size", "sha256"}`` with the absolute path; ``size`` and ``sha256``
        are ``None`` when ``path`` is not a readable file (a network built in memory).
    """
    if path is None:
        return None
    p = Path(path)
    try:
        if p.is_file():
            return {"path": os.path.abspath(p), "size": p.stat().st_size, "sha256": file_sha256(p)}
    except OSError:
        pass
    return {"path": str(path), "size": None, "sha256": None}


def write_manifest(folder: str | Path, files: Iterable[str], model: dict | None = None,
                   editable: Iterable[str] = ()) -> Path:
    """Hash ``files`` (relative to ``folder``) and write ``folder/manifest.json``.

    Parameters
    ----------
    folder : str or Path
    files : iterable of str
        Relative, ``/``-separated names of the files written (not the manifest).
    model : dict or None
        :func:`model_record` of the model compiled.
    editable : iterable of str
        Names among ``files`` the user may edit (listed, not checked on load).

    Returns
    -------
    Path
        The manifest written.
    """
    folder = Path(folder)
    editable = set(editable)
    entries = {}
    for name in sorted(set(files)):
        _check_name(name, folder / MANIFEST_NAME)
        path = folder / name
        entry = {"size": path.stat().st_size, "sha256": file_sha256(path)}
        if name in editable:
            entry["editable"] = True
        entries[name] = entry
    body = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "convc": __version__,
            "model": model, "files": entries}
    out = folder / MANIFEST_NAME
    out.write_bytes(sealed(body))
    return out


def sealed(body: dict) -> bytes:
    """The bytes of a manifest: ``body`` as indented JSON with the ``seal`` field, the
    SHA-256 of the text before it, last."""
    text = json.dumps(body, indent=1).encode()          # ends with "\n}"
    seal = hashlib.sha256(text).hexdigest()
    return text[:-2] + f',\n "seal": "{seal}"\n}}\n'.encode()


def _seal_split(raw: bytes) -> tuple[bytes, str] | None:
    """``(body, seal)`` of a manifest's bytes: the body is the JSON text before the
    ``seal`` field, closed again (what :func:`write_manifest` hashed); ``None`` when the
    file does not end in a seal."""
    m = _SEAL_TAIL.search(raw)
    if m is None:
        return None
    return raw[:m.start()] + b"\n}", m.group(1).decode()


def _check_name(name, where: Path) -> None:
    """A listed name must be a relative path inside the folder."""
    if not isinstance(name, str) or not name:
        raise ConvcError(f"{where}: files: {name!r} is not a file name")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\\" in name or name != p.as_posix() or name == MANIFEST_NAME:
        raise ConvcError(f"{where}: files: {name!r} is not a file inside the folder")


def _parse(raw: bytes) -> dict | None:
    """A JSON object from bytes, or ``None``."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def read_manifest(folder: str | Path) -> dict:
    """Read and check ``folder/manifest.json`` (not the files it lists).

    Parameters
    ----------
    folder : str or Path
        A compiled folder.

    Returns
    -------
    dict
        The manifest without its seal: ``format``, ``version``, ``convc``, ``model``
        and ``files`` (name -> ``{"size", "sha256"[, "editable"]}``).

    Raises
    ------
    ConvcError
        No manifest (a folder compiled by an older convc, or not a compiled folder),
        one that cannot be read, a broken seal, a newer format version, or a bad entry;
        the message names the folder and the file.
    """
    folder = Path(folder)
    where = folder / MANIFEST_NAME
    if not where.is_file():
        if (folder / "program.json").is_file():
            raise ConvcError(f"{folder}: no {MANIFEST_NAME}: the folder was compiled by an older convc "
                             f"(or its manifest was deleted); compile it again with this convc")
        raise ConvcError(f"{folder}: missing program.json and {MANIFEST_NAME}; is this a 'convc compile' "
                         f"output folder?")
    try:
        size = where.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ConvcError(f"{where}: {size} bytes, larger than any manifest convc writes "
                             f"({MAX_MANIFEST_BYTES}); compile the folder again")
        raw = where.read_bytes()
    except OSError as exc:
        raise ConvcError(f"{where}: cannot read ({exc.strerror})") from None
    split = _seal_split(raw)
    if split is None or hashlib.sha256(split[0]).hexdigest() != split[1]:
        raise ConvcError(f"{where}: damaged or edited (its seal does not match its contents); "
                         f"compile the folder again")
    body = _parse(split[0])
    if body is None or body.get("format") != MANIFEST_FORMAT:
        raise ConvcError(f"{where}: not a convc manifest (format {MANIFEST_FORMAT!r}); compile the folder again")
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConvcError(f"{where}: version {version!r} is not a manifest version")
    if version > MANIFEST_VERSION:
        raise ConvcError(f"{where}: manifest version {version} is newer than this convc reads "
                         f"({MANIFEST_VERSION}; written by convc {body.get('convc')!r}); update convc "
                         f"or compile the folder again")
    files = body.get("files")
    if not isinstance(files, dict):
        raise ConvcError(f"{where}: files: expected an object of file names")
    for name, entry in files.items():
        _check_name(name, where)
        if not isinstance(entry, dict):
            raise ConvcError(f"{where}: files.{name}: expected {{size, sha256}}")
        size = entry.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConvcError(f"{where}: files.{name}.size: {size!r} is not a size in bytes")
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ConvcError(f"{where}: files.{name}.sha256: {digest!r} is not a SHA-256 hex digest")
    model = body.get("model")
    if model is not None and not (isinstance(model, dict) and isinstance(model.get("path"), str)):
        raise ConvcError(f"{where}: model: expected null or {{path, size, sha256}}")
    return body


def listed_files(folder: str | Path) -> set[str] | None:
    """The names an intact ``folder/manifest.json`` lists (seal checked, entries not):
    what an earlier compile wrote, for replacing the folder.  ``None`` if there is no
    manifest or it is not an intact convc manifest."""
    where = Path(folder) / MANIFEST_NAME
    try:
        if where.stat().st_size > MAX_MANIFEST_BYTES:
            return None
        raw = where.read_bytes()
    except OSError:
        return None
    split = _seal_split(raw)
    if split is None or hashlib.sha256(split[0]).hexdigest() != split[1]:
        return None
    body = _parse(split[0])
    files = body.get("files") if body and body.get("format") == MANIFEST_FORMAT else None
    if not isinstance(files, dict):
        return None
    return {name for name in files if isinstance(name, str)}


def is_manifest(path: str | Path) -> bool:
    """Is ``path`` a convc manifest, even a damaged one (its ``format`` field read
    leniently)?  Tells a compiled folder from the user's own."""
    try:
        raw = Path(path).read_bytes()[:4096]
    except OSError:
        return False
    return re.search(rb'"format":\s*"' + MANIFEST_FORMAT.encode() + rb'"', raw) is not None


def check_files(folder: str | Path, manifest: dict, names: Iterable[str] | None = None,
                editable: bool = False) -> None:
    """Check that the listed files are in ``folder`` as the manifest says.

    Parameters
    ----------
    folder : str or Path
    manifest : dict
        :func:`read_manifest` of ``folder``.
    names : iterable of str, optional
        The files to check (each must be listed); default every listed file.
    editable : bool
        Check the files marked ``editable`` too (default: skip them).

    Raises
    ------
    ConvcError
        A file not listed, missing, of another size or with other contents; the
        message names the folder and the file.
    """
    folder = Path(folder)
    files = manifest["files"]
    where = folder / MANIFEST_NAME
    for name in (sorted(files) if names is None else names):
        entry = files.get(name)
        if entry is None:
            raise ConvcError(f"{where}: does not list {name}; the folder is incomplete: compile it again")
        if entry.get("editable") and not editable and names is None:
            continue
        path = folder / name
        if not path.is_file():
            raise ConvcError(f"{folder}: {name} is missing (listed in {MANIFEST_NAME}); the compiled folder "
                             f"is incomplete: compile it again")
        try:
            size = path.stat().st_size
            if size != entry["size"]:
                raise ConvcError(f"{path}: {size} bytes, {MANIFEST_NAME} of {folder} says {entry['size']}: "
                                 f"the file was changed, damaged or left by another compile; compile again")
            if file_sha256(path) != entry["sha256"]:
                raise ConvcError(f"{path}: contents differ from {MANIFEST_NAME} of {folder} (sha256): the file "
                                 f"was changed, damaged or left by another compile; compile again")
        except OSError as exc:
            raise ConvcError(f"{path}: cannot read ({exc.strerror})") from None
