"""Finding input bytes copied into an output: winnowing over the inputs of a run.

Winnowing is the document fingerprinting of MOSS: Schleimer, Wilkerson and Aiken,
"Winnowing: Local Algorithms for Document Fingerprinting", SIGMOD 2003. Hash every k-gram,
slide a window over w consecutive hashes and keep each window's minimum. Every run of
w consecutive k-grams has a kept one, so any common substring of at least w + k - 1
bytes contains a fingerprint of the input. With k = 32 and w = 33 that is 64 bytes.

Outputs are small (the gate caps them), so every k-gram of an output is looked up in the
input's fingerprints; a hit is checked byte for byte and grown in both directions, so a
hash collision never holds a file and the reported length is the real copied length.
The window minimum is van Herk / Gil-Werman's: block-wise prefix and suffix minima, which
`itertools.accumulate` computes at C speed (no numpy in this project's dependencies).
"""

from __future__ import annotations

import os
import stat
import zlib
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

K = 32  # k-gram length in bytes
W = 33  # window of k-grams; W + K - 1 = 64: every copy of 64 bytes or more is found
GUARANTEE = W + K - 1
_CHUNK = 1 << 18  # window starts per pass, bounding memory to a few tens of MB
_POS = (1 << 32) - 1


def winnow(data: bytes) -> list[tuple[int, int]]:
    """The (hash, offset) fingerprints of ``data``: the leftmost minimum of each window."""
    n = len(data) - K + 1
    if n <= 0:
        return []
    width = min(W, n)  # a text shorter than one window still gets its minimum
    picked: set[int] = set()
    for start in range(0, n - width + 1, _CHUNK):
        stop = min(start + _CHUNK, n - width + 1)
        # hash << 32 | offset: `min` picks the smallest hash, the leftmost on ties
        hashes = [(zlib.crc32(data[i : i + K]) << 32) | i for i in range(start, stop + width - 1)]
        pre: list[int] = []
        suf: list[int] = []
        for b in range(0, len(hashes), width):
            block = hashes[b : b + width]
            pre.extend(accumulate(block, min))
            suf.extend(reversed(list(accumulate(reversed(block), min))))
        # the window at i spans the tail of one block and the head of the next
        picked.update(map(min, suf[: len(hashes) - width + 1], pre[width - 1 :]))
    return [(v >> 32, v & _POS) for v in picked]


@dataclass
class Copy:
    """A verbatim copy: ``length`` bytes of input file ``name`` at ``offset``."""

    name: str
    offset: int
    length: int
    output_offset: int


@dataclass
class Corpus:
    """The files of one mounted input, as far as the scan cap allowed, fingerprinted."""

    files: list[tuple[str, bytes]] = field(default_factory=list)
    index: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    rows: set[bytes] = field(default_factory=set)
    scanned: int = 0
    cap: int = 0
    truncated: bool = False
    # What checks derive from the files (the gate's tables), made once per run, not per output.
    derived: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, data: bytes) -> None:
        number = len(self.files)
        self.files.append((name, data))
        for h, offset in winnow(data):
            self.index.setdefault(h, []).append((number, offset))
        if name.lower().endswith((".csv", ".tsv")):
            self.rows.update(data_rows(data))

    def find_copy(self, output: bytes) -> Copy | None:
        """The longest copy of at least GUARANTEE bytes found, or None."""
        best: Copy | None = None
        index = self.index
        hashes = [zlib.crc32(output[j : j + K]) for j in range(len(output) - K + 1)]
        hits = [j for j, h in enumerate(hashes) if h in index]
        skip_to = 0
        for j in hits:
            if j < skip_to:
                continue  # inside a copy already measured: it would only be found again
            grown = 0
            for number, offset in index[hashes[j]]:
                name, data = self.files[number]
                if data[offset : offset + K] != output[j : j + K]:
                    continue  # a crc32 collision
                left = _common_suffix(data, offset, output, j)
                length = left + _common_prefix(data, offset, output, j)
                if length >= GUARANTEE and (best is None or length > best.length):
                    best = Copy(name, offset - left, length, j - left)
                grown = max(grown, length - left)
            if grown >= GUARANTEE:
                skip_to = j + grown - K + 1
        return best

    def find_row(self, output: bytes, budget: int = 50_000_000) -> bytes | None:
        """A whole data row of a CSV/TSV input that appears in ``output``, or None."""
        if not self.rows:
            return None
        for line in output.splitlines():
            if line.strip() in self.rows:
                return line.strip()
        # Rows embedded in longer lines: a substring search per row while that stays cheap
        # (rows of GUARANTEE bytes or more are found by the fingerprints anyway).
        short = [r for r in self.rows if len(r) < GUARANTEE]
        if len(short) * max(1, len(output)) <= budget:
            for row in short:
                if row in output:
                    return row
        return None


MIN_ROW = 8  # shorter rows ("1,2", "yes") are too common to mean a copy


def data_rows(data: bytes) -> set[bytes]:
    lines = data.splitlines()[1:]  # the header names columns; it is not data
    return {s for s in (line.strip() for line in lines) if len(s) >= MIN_ROW}


def _common_prefix(a: bytes, i: int, b: bytes, j: int) -> int:
    """Length of the common prefix of a[i:] and b[j:], by galloping then bisecting."""
    limit = min(len(a) - i, len(b) - j)
    lo, step = 0, 64
    while lo + step <= limit and a[i + lo : i + lo + step] == b[j + lo : j + lo + step]:
        lo += step
        step *= 2
    hi = min(limit, lo + step)  # a[i:i+lo] matches; the mismatch is before hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[i + lo : i + mid] == b[j + lo : j + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: bytes, i: int, b: bytes, j: int) -> int:
    """Length of the common suffix of a[:i] and b[:j]."""
    limit = min(i, j)
    lo, step = 0, 64
    while lo + step <= limit and a[i - lo - step : i - lo] == b[j - lo - step : j - lo]:
        lo += step
        step *= 2
    hi = min(limit, lo + step)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[i - mid : i - lo] == b[j - mid : j - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def read_corpus(dir_fd: int, cap: int) -> Corpus:
    """Read the regular files below an open directory (never through a symlink), up to
    ``cap`` bytes in all; ``truncated`` says the cap cut the scan short."""
    corpus = Corpus(cap=cap)
    for dirpath, _dirs, files, fd in os.fwalk(".", dir_fd=dir_fd, follow_symlinks=False):
        for name in sorted(files):
            rel = os.path.normpath(os.path.join(dirpath, name))
            try:
                f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
            except OSError:
                continue
            try:
                st = os.fstat(f)
                if not stat.S_ISREG(st.st_mode):
                    continue
                room = cap - corpus.scanned
                if st.st_size > room:
                    corpus.truncated = True
                    return corpus
                with os.fdopen(os.dup(f), "rb") as stream:
                    data = stream.read(room + 1)
            finally:
                os.close(f)
            if len(data) > room:
                corpus.truncated = True
                return corpus
            corpus.scanned += len(data)
            corpus.add(rel, data)
    return corpus
