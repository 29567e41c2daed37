"""Output files: checked before the work that fills them, written atomically, reported exactly.

Every file losslab writes (figures, experiment plots, the generated docs) goes through
``atomic_write``: the bytes go to a temporary file in the same folder, which is then renamed onto
the destination. A failure halfway (a full disk, an error while drawing) leaves no partial file and
leaves any previous file as it was.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` fills a temporary file beside ``path``, which then replaces ``path`` in one rename."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(_mode_for(path))  # mkstemp makes 0600; the result gets the mode a plain open() would give
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)  # replacing a file keeps its permissions
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it (os.umask sets it, for every thread, while it reads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with tempfile.TemporaryDirectory() as folder:  # elsewhere: the mode a plain open() gives a new file
        probe = Path(folder, "probe")
        probe.touch()
        return 0o666 & ~stat.S_IMODE(probe.stat().st_mode)


def output_file(out: str | Path, default_name: str, formats: Iterable[str], default_format: str = "png") -> Path:
    """The file that ``--out OUT`` names, checked before any work is done:

    - an existing folder: ``default_name`` inside it;
    - no extension: ``.png`` (``default_format``) added, so the name printed is the file written;
    - the extension must be one of ``formats``; the folder must exist and be writable.
    """
    path = Path(out)
    formats = sorted(formats)
    if path.is_dir():
        path = path / default_name
    if not path.suffix:
        path = path.with_name(f"{path.name}.{default_format}")
    if path.suffix[1:].lower() not in formats:
        raise ValueError(f"cannot write {path.suffix!r} files; name the output FILE.png, or use one of: "
                         + ", ".join("." + f for f in formats))
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"the folder {str(folder)!r} of {str(path)!r} does not exist; create it first (mkdir -p {folder})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into the folder {str(folder)!r}: permission denied")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder; give a file name")
    return path


def output_folder(out: str | Path) -> Path:
    """The folder ``--out DIR`` names, created now (with its parents) so that a long run cannot fail at its end."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file; --out takes a folder for the plots")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the folder {str(path)!r}: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into the folder {str(path)!r}: permission denied")
    return path


def wrote(paths: Iterable[Path], existed: Iterable[Path]) -> str:
    """'wrote a.png' / 'wrote a.png (replaced the previous file)': what the user's folder now holds."""
    existed = set(existed)
    parts = [f"{p} (replaced the previous file)" if p in existed else str(p) for p in paths]
    return "wrote " + ", ".join(parts)
