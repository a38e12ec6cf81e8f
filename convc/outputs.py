"""The compiled folder on disk: :func:`write_outputs` and the Verilog it holds.

A compile's folder (program, schedule, report, ``manifest.json``, the accelerator's
Verilog in ``hdl/`` and the vendor project) is written into a staging folder beside
the output, checked, and swapped in as a whole (``renameat2`` exchange where the
system has it, else rename through a backup), under a lock on the parent folder; a
killed compile is finished or undone by the next one (:func:`_recover`), and files
the user put into the folder are carried over.  :func:`accelerator_verilog` exports
``Accelerator(hw)`` as Verilog (module ``convc_accel``).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:         # not on POSIX: compiles into one parent folder do not take turns
    fcntl = None

from convc.boards import get_board
from convc.compiler.isa import listing
from convc.compiler.manifest import MANIFEST_NAME, is_manifest, listed_files, model_record, sidecars, write_manifest
from convc.compiler.program import MAX_JSON_BYTES, PROGRAM_FILES, load_program, save_program
from convc.errors import ConvcError
from convc.hdl import boardtop, project, vendor_project
from convc.hdl.project import ACCEL_NAME, PROJECTS

from .pipeline import CompileResult
from .report import report_text

__all__ = ["write_outputs", "accelerator_verilog", "HDL_FOLDER", "ISE_FOLDER", "VIVADO_FOLDER", "PROJECT_FOLDERS",
           "OUR_FOLDERS", "REPORT_FILES"]

HDL_FOLDER = "hdl"
ISE_FOLDER = "ise"
VIVADO_FOLDER = "vivado"
PROJECT_FOLDERS = (ISE_FOLDER, VIVADO_FOLDER)   # vendor projects (boards whose flows include "project")
OUR_FOLDERS = (HDL_FOLDER, *PROJECT_FOLDERS)


def _convc_names() -> set[str]:
    """Every name a compile writes into its folder (for folders compiled before the
    manifest: their files are known by name only)."""
    return ({*PROGRAM_FILES, MANIFEST_NAME, *REPORT_FILES, f"{HDL_FOLDER}/{ACCEL_NAME}.v"}
            | {f"{p.folder}/{name}" for p in PROJECTS.values() for name in project.generated_files(p.board)})


REPORT_FILES = ("schedule.txt", "report.json", "report.txt")
OLD_STAGING_PREFIX = ".convc-"      # inside the folder, before whole-folder replacement


def _remove_tree(path: Path) -> None:
    """Delete a staging or backup folder (one function, so that tests can pretend
    the process was killed before it ran)."""
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _locked(folder: Path):
    """Hold an exclusive lock on ``folder`` (the output's parent) while a compile
    replaces its output: two compiles never clean up each other's staging folder."""
    try:
        fd = os.open(folder, os.O_RDONLY) if fcntl is not None else None
    except OSError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass
        yield
    finally:
        if fd is not None:
            os.close(fd)            # releases the lock


def _output_folder(out: Path) -> Path:
    """The real path of the output folder ``out`` (its parent created); a path that
    cannot be an output folder is a :class:`ConvcError` naming it."""
    if out.exists() and not out.is_dir():
        raise ConvcError(f"{out}: exists and is not a folder; give -o a folder (it is replaced as a whole)")
    real = Path(os.path.realpath(out))
    if real.parent == real:
        raise ConvcError(f"{out}: the root folder cannot be an output folder")
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        cwd = None
    if cwd is not None and (cwd == real or real in cwd.parents):
        raise ConvcError(f"{out}: is the current folder or holds it; convc replaces its output folder as a "
                         f"whole: run the compile from elsewhere, or give -o another folder")
    ancestor = real.parent
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConvcError(f"{out}: {ancestor} is a file, not a folder")
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvcError(f"{out}: cannot create the folder {real.parent} ({exc.strerror})") from None
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise ConvcError(f"{out}: cannot write into {real.parent} (permission denied); convc writes the "
                         f"compiled folder beside it first, then renames it")
    return real


def _recover(out: Path, say) -> None:
    """Finish or undo a compile that was killed while replacing ``out``.

    A killed compile leaves at most: its staging folder (deleted here: ``out`` is
    untouched until the swap), or the previous folder renamed to the backup name with
    ``out`` missing (put back here), or, killed while deleting the backup once ``out``
    was in place, part of the backup (deleted here)."""
    staging, backup = sidecars(out)
    if backup.is_dir() and not os.path.lexists(out):
        os.rename(backup, out)
        say(f"restored {out} from {backup.name}, left by an interrupted compile")
    elif backup.is_dir():
        if staging.is_dir():
            raise ConvcError(f"{out}: an interrupted compile left the previous folder as {backup} and the new "
                             f"one as {staging}, and {out} exists too; keep the one you want as {out}, delete "
                             f"the others, then compile again")
        _remove_tree(backup)
    if staging.is_dir():
        _remove_tree(staging)
    for path in (staging, backup):
        if os.path.lexists(path) and not path.is_dir():
            raise ConvcError(f"{path}: is in the way of the compile's {'staging' if path == staging else 'backup'}"
                             f" folder; move it away")


def _foreign_entries(out: Path) -> list[str]:
    """The entries of ``out`` (relative paths, files and empty folders) that convc
    did not write, which a compile carries into the new folder.  A folder that convc
    did not compile (no manifest, no ``program.json`` of a compile) and that is not
    empty is refused: its files are the user's."""
    if not out.is_dir():
        return []
    ours = listed_files(out)
    if ours is None:            # no intact manifest: convc's files are known by name
        try:
            path = out / "program.json"
            doc = json.loads(path.read_text()) if path.stat().st_size < MAX_JSON_BYTES else None
            compiled = isinstance(doc, dict) and doc.get("format") == "convc-program"
        except (OSError, ValueError, RecursionError):
            compiled = False
        compiled = compiled or is_manifest(out / MANIFEST_NAME)
        entries = sorted(p.name for p in out.iterdir())
        if not compiled and entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ConvcError(f"{out}: exists, is not empty ({shown}) and is not a folder 'convc compile' wrote "
                             f"(no {MANIFEST_NAME}); convc replaces its output folder as a whole and will not "
                             f"delete or mix in files it did not write: give -o a new or empty folder, or "
                             f"move those files away")
        ours = _convc_names()
    ours = set(ours) | {MANIFEST_NAME}
    keep = []
    def unreadable(exc: OSError):
        raise exc               # a folder that cannot be read: its files would be lost

    for root, dirs, files in os.walk(out, onerror=unreadable):
        rel_root = Path(root).relative_to(out)
        if rel_root == Path("."):       # staging folders of convc before the manifest: not kept
            dirs[:] = [d for d in dirs if not d.startswith(OLD_STAGING_PREFIX)]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = (rel_root / name).as_posix()
            if rel not in ours:
                keep.append(rel)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        if not files and not dirs and rel_root != Path(".") and rel_root.as_posix() not in OUR_FOLDERS:
            keep.append(rel_root.as_posix() + "/")
    return sorted(keep)


def _carry(out: Path, staging: Path, keep: list[str], written: set[str]) -> None:
    """Put the user's entries of ``out`` into the new folder: hard links (copies where
    the file system has none), so that ``out`` stays untouched until the swap."""
    for rel in keep:
        if rel.rstrip("/") in written:
            raise ConvcError(f"{out / rel}: not written by convc (not in its {MANIFEST_NAME}), and this compile "
                             f"writes a file of that name; move it away, then compile again")
    for rel in keep:
        src, dst = out / rel, staging / rel
        if rel.endswith("/"):
            dst.mkdir(parents=True, exist_ok=True)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
            continue
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _sync(folder: Path) -> None:
    """Flush a folder's files and folders to the disk before it is renamed into place."""
    for root, _, files in os.walk(folder):
        for name in files + ["."]:
            _sync_dir(Path(root) / name)


def _swap(out: Path, staging: Path) -> None:
    """Replace ``out`` by ``staging`` as a whole.

    Where the system can (Linux ``renameat2`` with ``RENAME_EXCHANGE``), the two
    folders trade places in one step, so ``out`` is always there, old or new; the
    staging name then holds the previous folder, which is deleted.  Elsewhere: ``out``
    -> backup, staging -> ``out``, delete the backup.  Killed at any point, the next
    compile's :func:`_recover` finds the old folder or the new one whole."""
    _, backup = sidecars(out)
    if not out.exists():
        os.rename(staging, out)
    elif _exchange(staging, out):
        _remove_tree(staging)           # the previous folder
    else:
        os.rename(out, backup)
        try:
            os.rename(staging, out)
        except OSError:
            os.rename(backup, out)
            raise
        _remove_tree(backup)
    _sync_dir(out.parent)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2():
    """libc's ``renameat2`` (Linux, glibc 2.28 and later), or ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` atomically; ``False`` where the system or
    the file system cannot (nothing is changed then)."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _sync_dir(folder: Path) -> None:
    """fsync one file or folder (best effort: not every file system can)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_outputs(result: CompileResult, out: str | Path, *, hdl: bool = True, accel_verilog: str | None = None,
                  log=None, model: str | Path | dict | None = None,
                  extra: dict[str, Path] | None = None) -> list[Path]:
    """Write the compiled folder ``out``; it is replaced as a whole, never mixed.

    Every file is generated into a staging folder beside ``out`` (``.OUT.convc-staging``,
    same parent, so renames are atomic), with ``manifest.json`` (sizes and hashes of
    every file, and the model) written last, and checked by
    :func:`~convc.compiler.program.load_program`; then the staging folder and ``out``
    trade places in one atomic step (or, where the system cannot, ``out`` is renamed
    to a backup and the staging folder to ``out``) and the previous folder is deleted
    (:func:`_swap`).  A failure or an interrupt (a model problem, the Verilog export,
    the ISE project, a full disk, Ctrl-C) leaves ``out`` as it was; a compile killed
    at any point leaves the old folder or the new one whole, and the next compile
    cleans up what it left (or puts the old folder back, see :func:`_recover`).
    Compiles into the same parent folder take turns (a lock on the parent).

    Files in ``out`` that convc did not write (not in its manifest: the user's
    constraints in ``ise/``, a ``verify/`` report) are carried into the new folder.
    An existing ``out`` that convc did not compile and that is not empty is refused.

    With ``hdl`` (default) the folder holds ``hdl/convc_accel.v`` (the accelerator's
    Verilog: ``accel_verilog`` if given) and, for the ML605, the ISE project in
    ``ise/`` (marked editable in the manifest: its README asks the user to edit it);
    without it, neither (those of an earlier compile are not carried over).

    Parameters
    ----------
    result : CompileResult
    out : str or Path
        The output folder.
    hdl : bool
        Write the Verilog and the ISE project.
    accel_verilog : str, optional
        The accelerator's Verilog, if already exported.
    log : callable, optional
        Takes a progress message.
    model : str or Path or dict, optional
        The model file compiled (hashed into the manifest), or its
        :func:`~convc.compiler.manifest.model_record` taken when it was read; default
        ``result.program.meta["model"]`` when that names a file.
    extra : dict of str to Path, optional
        Folders copied in whole under these names (the ``--bitstream`` build).

    Returns
    -------
    list of Path
        The files written (``out / name``, the manifest included), sorted.

    Raises
    ------
    ConvcError
        ``out`` is a file, a folder convc did not compile, inside an unwritable or
        missing place, or cannot be written.
    """
    shown = Path(out)
    say = log or (lambda msg: None)
    prog = result.program
    board = prog.meta.get("board", prog.hw.board)
    if model is None:
        where = prog.meta.get("model")
        model = where if isinstance(where, str) and Path(where).is_file() else None
    record = model if isinstance(model, dict) or model is None else model_record(model)
    try:
        real = _output_folder(shown)
        staging, _ = sidecars(real)
        with _locked(real.parent):
            _recover(real, say)
            keep = _foreign_entries(real)
            staging.mkdir()
            try:
                written = _stage(result, staging, hdl, accel_verilog, board, say, record, extra or {})
                _carry(real, staging, keep, set(written))
                _sync(staging)
                _swap(real, staging)
            finally:            # after an error or an interrupt too: the old folder or the new, whole
                try:
                    _recover(real, lambda msg: None)
                except (ConvcError, OSError):
                    pass
    except OSError as exc:
        raise ConvcError(f"{shown}: cannot write the compiled folder ({exc.strerror or exc}"
                         f"{': ' + str(exc.filename) if exc.filename else ''})") from None
    return [shown / name for name in written]


def _stage(result: CompileResult, staging: Path, hdl: bool, accel_verilog: str | None, board: str, say,
           model: dict | None, extra: dict[str, Path]) -> list[str]:
    """Write every file of the compiled folder into ``staging``, the manifest last,
    and check that the folder loads.  Returns the names written, sorted."""
    prog = result.program
    editable = []
    if hdl:
        if accel_verilog is None:
            say(f"exporting the accelerator's Verilog ({ACCEL_NAME}) ...")
            accel_verilog = accelerator_verilog(prog.hw)
        (staging / HDL_FOLDER).mkdir()
        (staging / HDL_FOLDER / f"{ACCEL_NAME}.v").write_text(accel_verilog)
        hdl_info = {"verilog": f"{HDL_FOLDER}/{ACCEL_NAME}.v", "module": ACCEL_NAME, "ise": None, "project": None}
        b = get_board(board)
        if "project" in b.flows:
            proj = project.project_for(b)
            say(f"writing the {proj.tool} project for the {b.title} into {proj.folder}/ ({proj.tool} is not run) ...")
            info = vendor_project.write_vendor_project(b, staging / proj.folder, prog.hw,
                                                       accel_verilog=accel_verilog, model=prog.meta.get("model"))
            editable = [p.relative_to(staging).as_posix() for p in info.folder.rglob("*") if p.is_file()]
            hdl_info["project"] = info.to_json(staging)
            if info.tool == "ISE":      # the keys of earlier report.json files
                hdl_info.update({"ise": info.to_json(staging)["folder"], "ise_top": info.top, "ise_run": False,
                                 "black_boxes": list(info.black_boxes), "readme": info.to_json(staging)["readme"]})
        result.report["hdl"] = hdl_info
    else:
        result.report["hdl"] = None
    for name, folder in extra.items():
        shutil.copytree(folder, staging / name)
    save_program(prog, staging, manifest=False)
    (staging / "schedule.txt").write_text(listing(prog.instrs, prog.names))
    (staging / "report.json").write_text(json.dumps(result.report, indent=1))
    (staging / "report.txt").write_text(report_text(result.report))
    names = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    write_manifest(staging, names, model, editable=editable)
    try:                       # a compile never leaves a folder that its readers refuse
        load_program(staging)
    except ConvcError as exc:
        raise ConvcError(f"internal error: the compiled folder fails its own checks, nothing was written "
                         f"({exc}); please report this with the model") from None
    return sorted(names + [MANIFEST_NAME])


def accelerator_verilog(hw) -> str:
    """The Verilog of ``Accelerator(hw)`` (module ``convc_accel``); a configuration it
    cannot be built for is a ConvcError."""
    try:
        return boardtop.accelerator_verilog(hw)
    except (ValueError, TypeError) as exc:
        raise ConvcError(f"cannot generate the accelerator for this configuration: {exc}") from None
