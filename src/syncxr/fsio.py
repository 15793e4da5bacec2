"""Files in and out, one way each: the atomic writer, filesystem errors as UserError, the safe
YAML loader, the CSV reader, and the optional-import helper (one install-hint format).

Every file syncxr writes goes through `atomic_path` (temp file in the same folder, fsync, rename;
the temp file is removed on any failure; the final file gets the permissions the umask allows,
like any file the user creates). A filesystem failure (read-only folder, disk full, a file where
a folder should be) becomes one UserError naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Iterator

from syncxr.errors import UserError

# ----------------------------------------------------------------------------- filesystem errors

_HINTS = {
    errno.ENOSPC: "the disk is full; free some space or choose another folder",
    errno.EDQUOT: "the disk quota is exhausted; free some space or choose another folder",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.ENOTDIR: "a file is in the way where a folder is expected; choose another path",
    errno.EISDIR: "a folder is in the way where a file is expected; give a file path",
    errno.EEXIST: "a file is in the way where a folder is expected; choose another path",
    errno.ENAMETOOLONG: "the file name is too long; choose a shorter path",
}


def is_filesystem_error(exc: OSError) -> bool:
    """An OSError about a file or folder (not, say, a refused network connection)."""
    return exc.filename is not None or exc.errno in _HINTS or exc.errno == errno.ENOENT


def fs_error(exc: OSError, path: str | Path, action: str = "write") -> UserError:
    """One clear message for a failed filesystem operation: path, cause, how to fix it."""
    cause = exc.strerror or type(exc).__name__
    hint = _HINTS.get(exc.errno or -1, "check the path and the disk")
    where = exc.filename if exc.filename and str(exc.filename) != str(path) else None
    extra = f" (at {where})" if where else ""
    return UserError(f"{path}: cannot {action} ({cause}{extra}); {hint}")


def missing_dirs(path: str | Path) -> list[Path]:
    """The folders `ensure_dir(path)` would create, deepest first (to remove them again on failure)."""
    out, p = [], Path(path)
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def remove_empty_dirs(dirs: Iterable[Path]) -> None:
    """Remove folders this run created, deepest first, where they are still empty."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return


def ensure_dir(path: str | Path) -> Path:
    """mkdir -p, with a UserError (path and cause) instead of an OSError."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{p}: is an existing file, not a folder; give a folder path (or remove the file)")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise fs_error(e, p, "create the folder") from None
    return p


def is_inside(path: str | Path, root: str | Path) -> bool:
    """Whether `path` resolves (symlinks and '..' followed) to `root` or below it."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


OUTSIDE_ROOT_HINT = "pass --allow-outside-root (or allow_outside_root: true in the source config) to read them"


# ----------------------------------------------------------------------------- atomic writer

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to `path`; when the block succeeds, fsync it and rename it over
    `path`. On any failure the temp file is removed and `path` is untouched; an OSError becomes a
    UserError naming `path` and the cause.

        with atomic_path(out / "x.parquet") as tmp:
            pq.write_table(table, tmp)
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is an existing folder; give a file path")
    created = missing_dirs(path.parent)
    ensure_dir(path.parent)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        remove_empty_dirs(created)
        raise fs_error(e, path) from None
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        remove_empty_dirs(created)
        raise fs_error(e, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        remove_empty_dirs(created)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 2, sort_keys: bool = True) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON file that must hold an object: anything else (list, truncated file) is a UserError."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: not valid JSON ({e}); is it a {what}? It may be truncated: rewrite it") from None
    except OSError as e:
        raise fs_error(e, p, "read") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: expected a JSON object (a {what}), got a {type(data).__name__}; the file is not a {what}")
    return data


# ----------------------------------------------------------------------------- safe YAML

YAML_MAX_BYTES = 4 * 1024 * 1024  # configs are a few KB
YAML_MAX_NODES = 200_000  # after alias expansion (a billion-laughs file expands to ~10^9)
YAML_MAX_DEPTH = 64


def _expanded_size(node: Any, depth: int, memo: dict[int, int], where: str) -> int:
    """Nodes in the tree once aliases are expanded (memoised per node: linear in the graph)."""
    import yaml

    if depth > YAML_MAX_DEPTH:
        raise UserError(f"{where}: nested more than {YAML_MAX_DEPTH} levels deep; a config is a few levels of keys")
    if id(node) in memo:
        return memo[id(node)]
    n = 1
    if isinstance(node, yaml.MappingNode):
        n += sum(_expanded_size(k, depth + 1, memo, where) + _expanded_size(v, depth + 1, memo, where) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        n += sum(_expanded_size(v, depth + 1, memo, where) for v in node.value)
    memo[id(node)] = n
    if n > YAML_MAX_NODES:
        raise UserError(
            f"{where}: expands to more than {YAML_MAX_NODES:,} values (YAML aliases/anchors reused "
            "recursively, e.g. a 'billion laughs' file); refusing to load it"
        )
    return n


def parse_yaml(text: str, where: str, invalid_as_text: bool = False) -> Any:
    """Parse YAML text with the safe loader and the size/alias/depth limits. With
    `invalid_as_text` (a --set value), text that is not valid YAML is returned as the string."""
    import yaml

    if len(text) > YAML_MAX_BYTES:
        raise UserError(f"{where}: {len(text):,} characters; a YAML config is at most {YAML_MAX_BYTES:,}")
    if "\x00" in text:
        raise UserError(f"{where}: contains NUL bytes; expected a UTF-8 YAML text file")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None
        _expanded_size(node, 0, {}, where)
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        if invalid_as_text:
            return text
        raise UserError(f"{where}: not valid YAML: {e}") from None
    except RecursionError:
        raise UserError(f"{where}: nested too deeply to read; a config is a few levels of keys") from None


def read_yaml_text(path: str | Path) -> str:
    """A YAML file's text: must exist, be small and be UTF-8."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}. Pass an existing YAML file (see configs/).")
    try:
        if p.stat().st_size > YAML_MAX_BYTES:
            raise UserError(f"{p}: {p.stat().st_size:,} bytes; a YAML config is at most {YAML_MAX_BYTES:,} bytes")
        data = p.read_bytes()
    except OSError as e:
        raise fs_error(e, p, "read") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{p}: not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); YAML configs must be UTF-8 "
            "(re-save the file as UTF-8)"
        ) from None


def load_yaml(path: str | Path, empty_ok: bool = False) -> Any:
    """Read a YAML file safely. An empty file (or only comments) is refused unless `empty_ok`."""
    p = Path(path)
    data = parse_yaml(read_yaml_text(p), str(p))
    if data is None and not empty_ok:
        raise UserError(
            f"{p}: the file is empty (or holds only comments); a config needs at least one key. "
            "Start from a preset in configs/."
        )
    return data


# ----------------------------------------------------------------------------- CSV reader

def read_csv(path: str | Path, required: Iterable[str] = (), **kw: Any):
    """Read a CSV with pandas and check its columns; every failure is a UserError naming the file.

    Pass `dtype=str, keep_default_na=False` to read every cell as text."""
    import pandas as pd

    p = Path(path)
    required = list(required)
    try:
        df = pd.read_csv(p, **kw)
    except FileNotFoundError:
        raise UserError(f"{p}: file not found") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, ValueError) as e:
        raise UserError(f"{p}: cannot parse as CSV ({e}); expected a UTF-8 CSV with a header row") from None
    except OSError as e:
        raise fs_error(e, p, "read") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise UserError(
            f"{p}: missing column(s) {missing}; expected {required}; the file has {list(df.columns)}"
        )
    return df


# ----------------------------------------------------------------------------- optional imports

def install_hint(extra: str | None, package: str = "") -> str:
    """The one install-hint format: the syncxr extra when there is one, else the package."""
    return f"pip install 'syncxr[{extra}]'" if extra else f"pip install {package}"


def missing_dependency(what: str, exc: ImportError, extra: str | None, package: str = "") -> UserError:
    """The UserError for an optional dependency that is not installed."""
    name = exc.name or package or "a dependency"
    return UserError(f"{what} needs {name}, which is not installed; install it with: {install_hint(extra, name)}")


def optional_import(module: str, extra: str | None, what: str) -> ModuleType:
    """Import an optional dependency, or raise one UserError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise missing_dependency(what, e, extra, module.split(".")[0]) from None
