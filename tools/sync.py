"""Compare generated files with a folder, or write them there (used by export.py and
make_exercises.py, and by tests/test_sync.py)."""
from __future__ import annotations

from pathlib import Path


def differences(files: dict[str, str], folder: Path, pattern: str) -> tuple[list[str], list[str]]:
    """(names whose content differs or is missing, names on disk that are not generated)."""
    on_disk = {p.name: p.read_text() for p in folder.glob(pattern)}
    stale = sorted(n for n in files if on_disk.get(n) != files[n])
    extra = sorted(set(on_disk) - set(files))
    return stale, extra


def write(files: dict[str, str], folder: Path, pattern: str) -> None:
    """Make folder hold exactly these files among those matching pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in {p.name for p in folder.glob(pattern)} - set(files):
        (folder / name).unlink()
    for name, text in files.items():
        (folder / name).write_text(text)


def check(files: dict[str, str], folder: Path, pattern: str, stale_says: str,
          extra_says: str, fix: str) -> int:
    """Print what is out of date ("{name}" in the messages) and the command that fixes it;
    return the exit status: 0 when folder is up to date, 1 otherwise."""
    stale, extra = differences(files, folder, pattern)
    for name in stale:
        print(stale_says.format(name=name))
    for name in extra:
        print(extra_says.format(name=name))
    if stale or extra:
        print(fix)
        return 1
    return 0


def check_or_write(files: dict[str, str], folder: Path, pattern: str, only_check: bool, *,
                   stale_says: str, extra_says: str, fix: str, wrote: str) -> int:
    """A generator's last step: with only_check, `check` (exit status 1 when stale);
    otherwise `write` and print `wrote` ("{n}" files, "{folder}"). Returns the exit status."""
    if only_check:
        return check(files, folder, pattern, stale_says, extra_says, fix)
    write(files, folder, pattern)
    print(wrote.format(n=len(files), folder=folder))
    return 0
