"""The output gate's checks on planted data, and how owners' policies combine."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from dshare_chaincode import validate
from dshare_hub.executor.gate import (
    CHECKS,
    Check,
    Output,
    fit_ledger,
    judge,
    name_copies,
    parse_policy,
    redacted_name,
)
from dshare_hub.executor.winnow import GUARANTEE, Corpus, read_corpus, winnow

RNG = random.Random(20031)
INPUT = bytes(RNG.randrange(256) for _ in range(5000))
CSV = b"name,org,score\nalice smith,UiS,91\nbob jones,UiO,77\n1,2\n"


def corpus(files: dict[str, bytes]) -> Corpus:
    c = Corpus(cap=10**9)
    for name, data in files.items():
        c.add(name, data)
    return c


def noise(n: int) -> bytes:
    return bytes(RNG.randrange(256) for _ in range(n))


def policy(lease: str = "abc", owner: str = "UiO", **release) -> dict:
    return {"owner_org": owner, "dataset_name": "x-data", "release": release}


def verdict(data: bytes, policies: dict, corpora: dict, path: str = "out.txt"):
    parsed = {k: parse_policy(k, v) for k, v in policies.items()}
    return judge(Output(path, data), parsed, corpora)


def test_winnowing_keeps_a_fingerprint_in_every_window() -> None:
    prints = winnow(INPUT)
    offsets = sorted(o for _h, o in prints)
    kgrams = len(INPUT) - 32 + 1
    gaps = [b - a for a, b in zip([-1, *offsets], [*offsets, kgrams], strict=True)]
    assert max(gaps) <= 33  # never a window of w k-grams without a pick
    assert len(prints) < kgrams / 8  # and far fewer than all k-grams (about 2/(w+1))


def test_64_copied_bytes_are_held_saying_which_input_but_not_where() -> None:
    out = b"summary: " + INPUT[1024 : 1024 + 64] + b" end"
    v = verdict(out, {"abc": policy()}, {"abc": corpus({"data/x.txt": INPUT})})
    assert v.decision == "held" and v.owners == ["UiO"]
    failed = [c for c in v.checks if not c.passed]
    assert [c.name for c in failed] == ["verbatim_input"]
    # The scientist reads this: offsets and lengths are the job's to choose, so they could
    # spell out the data; the message names the input file (the skeleton shows it) only.
    assert failed[0].message == (
        "out.txt contains a verbatim copy of lease abc's input (data/x.txt). Write results "
        "computed from the data, not parts of it; no 64 consecutive bytes of an input may "
        "appear in an output."
    )


def test_a_held_rows_message_quotes_nothing_of_it() -> None:
    c = corpus({"people.csv": CSV})
    held = verdict(b"result\nbob jones,UiO,77\n", {"abc": policy()}, {"abc": c})
    assert held.checks[0].message == (
        "out.txt contains a whole data row of lease abc's input. Write aggregates, not rows "
        "of the data."
    )


def test_a_name_that_copies_the_input_is_held_whatever_the_content() -> None:
    rng = random.Random(7)  # the module's RNG feeds other tests in order
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor"
    text = "".join(f"record {i}: {rng.randrange(10**9)} {words}\n" for i in range(200))
    c = corpus({"data/x.txt": text.encode()})
    named = "results/" + text.splitlines()[5] + ".txt"
    v = judge(Output(named, b"42\n"), {"abc": parse_policy("abc", policy())}, {"abc": c})
    assert v.decision == "held"
    assert v.checks[0].message.startswith("the name of this file copies lease abc's input")
    assert named not in v.checks[0].message
    assert name_copies(named, c) and not name_copies("results/count.txt", c)
    row = corpus({"people.csv": CSV})
    assert name_copies("out/bob jones,UiO,77", row)
    assert redacted_name(named) == redacted_name(named) != redacted_name("results/count.txt")
    assert redacted_name(named).startswith("redacted-") and "/" not in redacted_name(named)


def test_a_copy_is_found_at_every_alignment_and_length_is_measured() -> None:
    c = corpus({"x.bin": INPUT})
    for start in range(0, 80):
        for where in (0, 7, 33):
            out = noise(where) + INPUT[start : start + 64] + noise(5)
            found = c.find_copy(out)
            assert found is not None, (start, where)
            assert (found.offset, found.length, found.output_offset) == (start, 64, where)
    long = c.find_copy(noise(3) + INPUT[100:1100])
    assert long is not None and long.length == 1000


def test_63_bytes_are_not_reported_and_random_text_is_clean() -> None:
    c = corpus({"x.bin": INPUT})
    assert c.find_copy(INPUT[200:263]) is None
    assert c.find_copy(noise(20_000)) is None


def test_a_whole_csv_row_is_held_but_a_count_is_released() -> None:
    c = corpus({"people.csv": CSV})
    held = verdict(b"result\nbob jones,UiO,77\n", {"abc": policy()}, {"abc": c})
    assert held.decision == "held"
    assert "whole data row of lease abc's input" in held.checks[0].message
    embedded = verdict(b"row was: alice smith,UiS,91!", {"abc": policy()}, {"abc": c})
    assert embedded.decision == "held"
    header = verdict(b"name,org,score\n", {"abc": policy()}, {"abc": c})
    assert header.decision == "released"  # the header line is not data
    short = verdict(b"1,2\n", {"abc": policy()}, {"abc": c})
    assert short.decision == "released"  # rows under 8 bytes are too common to mean a copy
    count = verdict(b"UiS: 123\n", {"abc": policy()}, {"abc": c})
    assert count.decision == "released" and count.owners == []


def test_an_oversize_file_is_held_by_max_size() -> None:
    v = verdict(b"a" * 101, {"abc": policy(max_output_bytes=100)}, {"abc": corpus({})})
    assert v.decision == "held"
    (failed,) = [c for c in v.checks if not c.passed]
    assert failed.name == "max_size" and "is 101 bytes" in failed.message
    ok = verdict(b"a" * 100, {"abc": policy(max_output_bytes=100)}, {"abc": corpus({})})
    assert ok.decision == "released"


def test_review_holds_everything_and_auto_releases_everything() -> None:
    copied = INPUT[:500]
    c = {"abc": corpus({"x.bin": INPUT})}
    review = verdict(b"UiS: 1", {"abc": policy(mode="review")}, c)
    assert review.decision == "held" and "reviews every output" in review.checks[0].message
    auto = verdict(copied, {"abc": policy(mode="auto")}, c)
    assert auto.decision == "released"


def test_released_by_one_owner_but_held_by_another_is_held() -> None:
    c = {"abc": corpus({"x.bin": INPUT}), "def": corpus({"y.bin": noise(3000)})}
    out = INPUT[10:200]
    v = verdict(out, {"abc": policy(owner="UiO"), "def": policy(owner="UiB", mode="auto")}, c)
    assert v.decision == "held" and v.owners == ["UiO"]
    v2 = verdict(
        b"UiS: 123", {"abc": policy(owner="UiO"), "def": policy(owner="UiB", mode="review")}, c
    )
    assert v2.decision == "held" and v2.owners == ["UiB"]


def test_a_check_the_executor_does_not_know_holds_unless_told_to_skip() -> None:
    v = verdict(b"1", {"abc": policy(checks=["k_anonymity"])}, {})
    assert v.decision == "held" and "does not know" in v.checks[0].message
    skip = verdict(b"1", {"abc": policy(checks=["k_anonymity"], unknown="release")}, {})
    assert skip.decision == "released"


def test_checks_are_a_registry_new_checks_join(monkeypatch) -> None:
    class Never(Check):
        name = "never"

        def run(self, output, policy, corpus):
            return self.result(policy, False, "never released")

    monkeypatch.setitem(CHECKS, "never", Never())
    v = verdict(b"1", {"abc": policy(checks=["never", "max_size"])}, {})
    assert v.decision == "held" and [c.name for c in v.checks] == ["never", "max_size"]


def test_an_input_over_the_scan_cap_holds_and_says_so(world: Path) -> None:
    data = world / "input"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_bytes(INPUT)
    (data / "sub" / "b.csv").write_bytes(CSV)
    (data / "link").symlink_to("/etc/passwd")
    fd = os.open(data, os.O_PATH | os.O_DIRECTORY)
    try:
        full = read_corpus(fd, 10**6)
        assert not full.truncated and sorted(n for n, _ in full.files) == ["a.txt", "sub/b.csv"]
        assert full.rows  # the CSV's rows are known
        small = read_corpus(fd, 1000)
    finally:
        os.close(fd)
    assert small.truncated
    v = verdict(b"UiS: 1", {"abc": policy()}, {"abc": small})
    assert v.decision == "held" and "larger than the 1000 bytes the gate scans" in (
        v.checks[0].message
    )


@pytest.mark.parametrize(
    "bad", [{"mode": "maybe"}, {"checks": "max_size"}, {"max_output_bytes": -1}]
)
def test_a_bad_policy_is_refused(bad: dict) -> None:
    from dshare_hub.webapi import ApiError

    with pytest.raises(ApiError):
        parse_policy("abc", policy(**bad))


def test_guarantee_is_64() -> None:
    assert GUARANTEE == 64


def test_an_output_too_big_to_read_is_held_unread() -> None:
    parsed = {"abc": parse_policy("abc", policy())}
    v = judge(Output("big.bin", b"", 10**9), parsed, {"abc": corpus({"x.bin": INPUT})})
    assert v.decision == "held"
    assert {c.name for c in v.checks if not c.passed} == {"verbatim_input", "max_size"}


@pytest.mark.parametrize("mode", ["auto", "checks", "review"])
@pytest.mark.parametrize("unknown", ["hold", "release"])
def test_every_policy_the_ledger_accepts_the_executor_runs(mode: str, unknown: str) -> None:
    # The ledger validates what owners set; the executor must take every one of those
    # (a mismatch here once made every run over such a dataset fail at submit).
    release = validate.release_policy(
        {"mode": mode, "unknown": unknown, "checks": list(validate.RELEASE_CHECKS)},
        "policy.release",
    )
    parsed = parse_policy("L-1", {"owner_org": "UiS", "release": release})
    assert (parsed.mode, parsed.unknown, parsed.max_output_bytes) == (
        mode,
        unknown,
        release["max_output_bytes"],
    )
    assert set(parsed.checks) == set(validate.RELEASE_CHECKS)
    assert set(validate.RELEASE_CHECKS) <= set(CHECKS), "a check owners may ask for is unknown here"


def test_what_the_ledger_cannot_record_is_not_kept() -> None:
    # The contract refuses a run record with a path over 1024 characters or over 10,000
    # files; the executor keeps (and so delivers) only what the ledger can record.
    deep = "/".join(["d" * 200] * 6) + "/result.txt"
    kept, warnings = fit_ledger({"ok.txt": 1, deep: 2})
    assert kept == ["ok.txt"]
    assert warnings == [
        "1 files have paths longer than 1024 characters, the most the ledger records; they "
        "were not kept. Use shorter paths."
    ]
    many = {f"f{i:05d}": 0 for i in range(10_002)}
    kept, warnings = fit_ledger(many)
    assert kept == sorted(many)[:10_000]
    assert warnings[0].startswith("the run wrote 10002 files; only the first 10000")
