"""Writing the redacted copy of a tabular dataset that a lessee reads instead of the raw one.

The owner's broker reads its own data and writes, for one lease, a copy in which every
column the policy (redaction.py) does not allow is hashed, masked or removed. The copy lies
under the organization's storage root (the executor accepts nothing else) in a directory
that inherits the data's group from the setgid storage root, so job sandboxes read it as
they read the raw data, and no scientist can traverse it.

- hash: HMAC-SHA256 under a key derived from this organization's redaction secret and the
  lessee organization, as 64 hex digits: a lessee cannot hash candidate ids to find a
  value (it lacks the key), the same value hashes the same in every dataset and run of the
  same lessee organization (joins still work), and two lessee organizations cannot link
  their tables by the hashes.
- mask: every value becomes MASK, whatever its length (the length is not shown either).
- remove: the column is absent.

Only CSV (.csv) and TSV (.tsv) files with a header row can be redacted. When a plan
redacts anything, any other file of the dataset refuses the whole copy, naming the file:
a file the broker cannot read as a table must not pass raw.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from .redaction import Plan

MASK = "***"
HASH_INFO = b"dshare-redaction-v1\x00"
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}


class RedactedCopyError(Exception):
    """The copy cannot be made; `message` names files by their path inside the dataset only."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RedactionKeys:
    """This organization's redaction secret (32 random bytes in a 0600 file of its broker),
    made on first use; the per-lessee keys are derived from it, never stored."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _secret(self) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            self._create()
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            secret = f.read(64)
        if len(secret) != 32:
            raise RedactedCopyError(
                "this broker's redaction key is damaged; ask the operator to check "
                "BrokerApp.redaction_key_file"
            )
        return secret

    def _create(self) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        # Two brokers' first uses at once: the first link wins, the other reads it.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, self.path)
        tmp.unlink()

    def for_lessee(self, lessee_org: str) -> bytes:
        return hmac.new(self._secret(), HASH_INFO + lessee_org.encode(), hashlib.sha256).digest()


def hash_value(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _cell(action: str, key: bytes) -> Callable[[str], str]:
    if action == "hash":
        return lambda value: hash_value(key, value)
    return lambda _value: MASK


def _redact_table(src: Path, dst: Path, name: str, plan: Plan, key: bytes) -> None:
    delimiter = TABLE_SUFFIXES[src.suffix.lower()]
    with (
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
        src.open(newline="", encoding="utf-8-sig") as f_in,
        dst.open("x", newline="", encoding="utf-8") as f_out,
    ):
        # strict: a stray quote must not silently glue the rest of the file into one field.
        reader = csv.reader(f_in, delimiter=delimiter, strict=True)
        writer = csv.writer(f_out, delimiter=delimiter, lineterminator="\n")
        try:
            header = next(reader, None)
            if header is None:
                return
            _check_header(header, name, plan, delimiter)
            keep = [i for i, col in enumerate(header) if plan.actions.get(col) != "remove"]
            change = {
                i: _cell(plan.actions[col], key)
                for i, col in enumerate(header)
                if plan.actions.get(col) in ("hash", "mask")
            }
            writer.writerow([header[i] for i in keep])
            for row in reader:
                if len(row) != len(header):
                    raise RedactedCopyError(
                        f"row {reader.line_num} of {name!r} has {len(row)} fields where its "
                        f"header has {len(header)}; the broker does not guess which value is "
                        "which column: fix the file"
                    )
                writer.writerow([change[i](row[i]) if i in change else row[i] for i in keep])
        except UnicodeDecodeError:
            raise RedactedCopyError(
                f"{name!r} is not UTF-8 text; save it as UTF-8 CSV so it can be redacted"
            ) from None
        except csv.Error as error:
            raise RedactedCopyError(
                f"{name!r} is not valid CSV at line {reader.line_num} ({error}); fix the file: "
                "a value that holds the separator, a quote or a line break must be in double "
                "quotes, its own quotes doubled"
            ) from None
    os.chmod(dst, 0o640)  # the data group's, as the owner's files are: umask may say less


def _check_header(header: list[str], name: str, plan: Plan, delimiter: str) -> None:
    """The header says which values are hidden: a header the broker misreads (no header
    row, another separator, a column name spelled differently) must not let them pass."""
    if not set(header) & plan.columns:
        separator = "tabs" if delimiter == "\t" else "commas"
        raise RedactedCopyError(
            f"the first row of {name!r} names none of the dataset's columns, so the broker "
            "cannot tell which of its values the redaction policy hides and nothing is "
            f"mounted: give it a header row with the columns' names, separated by {separator}"
        )
    folded = {column.strip().casefold(): column for column in plan.actions}
    for cell in header:
        near = folded.get(cell.strip().casefold())
        if near is not None and cell != near and cell not in plan.columns:
            raise RedactedCopyError(
                f"the header of {name!r} has {cell!r}, not the dataset's column {near!r} "
                "whose values the redaction policy hides, so nothing is mounted: write the "
                "column's name exactly as the dataset's schema has it"
            )


def write_copy(source: Path, dest: Path, plan: Plan, key: bytes) -> None:
    """Write the redacted copy of the directory `source` as `dest` (which must not exist),
    through `<dest>.partial`, so `dest` exists only complete."""
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(mode=0o750)
    try:
        _check_group(partial, source)
        for here, dirs, files in os.walk(source, followlinks=False):
            rel = Path(here).relative_to(source)
            for d in dirs:
                inner = rel / d
                if (source / inner).is_symlink():
                    raise RedactedCopyError(_not_table(str(inner), "a symbolic link"))
                (partial / inner).mkdir(mode=0o750)
            for f in sorted(files):
                inner = rel / f
                info = os.lstat(source / inner)
                if not stat.S_ISREG(info.st_mode):
                    raise RedactedCopyError(_not_table(str(inner), "not a regular file"))
                if inner.suffix.lower() not in TABLE_SUFFIXES:
                    raise RedactedCopyError(_not_table(str(inner), "not a CSV or TSV file"))
                _redact_table(source / inner, partial / inner, str(inner), plan, key)
        _check_group(partial, source, recursive=True)
        os.rename(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def remove_copy(dest: Path) -> None:
    for path in (dest, dest.with_name(dest.name + ".partial")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def _not_table(name: str, what: str) -> str:
    return (
        f"file {name!r} of the dataset is {what}; its redaction policy hides columns and the "
        "broker can redact only CSV and TSV files, so nothing is mounted: ask the owner to "
        "move other files to another dataset"
    )


def _check_group(top: Path, source: Path, *, recursive: bool = False) -> None:
    """The copy must carry the data's group (inherited from the setgid storage root): job
    sandboxes read through it, and a copy in the broker's own group nobody could read."""
    want = os.stat(source).st_gid
    paths = [top, *(top.rglob("*") if recursive else [])]
    for path in paths:
        if os.lstat(path).st_gid != want:
            try:
                os.chown(path, -1, want, follow_symlinks=False)
            except PermissionError:
                raise RedactedCopyError(
                    "the redacted copy cannot be given the data's group; ask the operator to "
                    "make the storage root setgid to the organization's data group"
                ) from None
