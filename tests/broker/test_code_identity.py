"""A run's code identity as the broker computes it, and the workspace it ships when a
dataset requires approved code: only the files of the identity, whatever the job tries."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
from archives import tgz

from dshare_chaincode.approvals import code_identity
from dshare_hub.broker.approvals import code_of, read_snapshot, unified_diff
from dshare_hub.broker.errors import ApiError
from dshare_hub.executor.workspace import snapshot
from dshare_server.workflow.spec import parse

HOME = "/home/jovyan"
LEASES = {"L-1": {"id": "L-1", "asset_id": "ds-visits"}}


def _names(workspace: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(workspace), mode="r:*") as tar:
        return sorted(m.name for m in tar if m.isfile())


def _code(yaml_text: str, files: dict[str, bytes], working_dir: str = "", **kw):
    spec = parse(yaml_text, leases=None, home_path=HOME)
    return code_of(
        spec, LEASES, tgz(files, **kw), image="dshare-job", working_dir=working_dir, home_path=HOME
    )


HOME_FILES = {
    "count.py": b"print(1)\n",
    "b.py": b"import os; os.system('cat /data/*')\n",
    "lib/words.py": b"WORD = 'x'\n",
    "notes.ipynb": b"{}",
    "sub/run.sh": b"echo hi\n",
}


def test_files_are_those_the_commands_name():
    code = _code("jobs:\n  - python count.py\n  - sh sub/run.sh --out=/home/jovyan/x\n", HOME_FILES)
    assert sorted(code.files) == ["count.py", "sub/run.sh"]
    assert _names(code.workspace) == ["count.py", "sub/run.sh"]
    assert code.contents["count.py"] == "print(1)\n"
    assert code.code_sha256 == code_identity(code.job_sha256, code.files)


def test_shell_c_strings_and_home_paths_are_searched():
    code = _code(
        'jobs:\n  - sh -c "cd /home/jovyan && python count.py; python ~/lib/words.py"\n',
        HOME_FILES,
    )
    assert sorted(code.files) == ["count.py", "lib/words.py"]


def test_a_file_run_indirectly_is_not_shipped():
    # The attacker's trick: name b.py in a way no word of the command shows. The identity
    # does not cover it, so it is not in the sandbox to be run.
    code = _code('jobs:\n  - sh -c "python $(echo b).py"\n', HOME_FILES)
    assert code.files == {}
    assert _names(code.workspace) == []


def test_listed_code_and_folders_are_included():
    code = _code("code: [lib/, count.py]\njobs:\n  - python count.py\n", HOME_FILES)
    assert sorted(code.files) == ["count.py", "lib/words.py"]
    with pytest.raises(ApiError) as info:
        _code("code: [missing.py]\njobs:\n  - python count.py\n", HOME_FILES)
    assert (info.value.code, info.value.message) == (
        "INVALID_ARGUMENT",
        "spec: code: missing.py is not a file or folder of your home (symbolic links are not "
        "followed); fix the path or remove it from `code:`",
    )


def test_working_dir_resolves_relative_names():
    code = _code("jobs:\n  - sh run.sh\n", HOME_FILES, working_dir="sub")
    assert sorted(code.files) == ["sub/run.sh"]


def test_symlinks_are_not_code():
    code = _code("jobs:\n  - python link.py\n", HOME_FILES, links={"link.py": "b.py"})
    assert code.files == {}


def test_what_ships_unpacks_to_the_bytes_that_were_hashed(tmp_path):
    # The scientist writes the archive. A pax GNU sparse map on count.py: read, it expands
    # to holes + the approved text; had the shipped archive kept that header, the executor
    # would unpack other bytes than the ones hashed (here: all zeros). Unpacked as the
    # executor does it (tarfile's data filter), the shipped file is what the owner approved.
    approved = b"print('approved')\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        body = approved + b"print('not approved')\n"
        info = tarfile.TarInfo("count.py")
        info.size = len(body)
        info.pax_headers = {
            "GNU.sparse.map": f"{len(approved)},{len(approved)}",
            "GNU.sparse.size": str(2 * len(approved)),
        }
        tar.addfile(info, io.BytesIO(body))
        extra = tarfile.TarInfo("sub")
        extra.type = tarfile.DIRTYPE
        extra.pax_headers = {"size": "999"}
        tar.addfile(extra)
        script = tarfile.TarInfo("sub/run.sh")
        script.size = 8
        tar.addfile(script, io.BytesIO(b"echo hi\n"))
    spec = parse("jobs:\n  - python count.py\n  - sh sub/run.sh\n", leases=None, home_path=HOME)
    code = code_of(spec, LEASES, raw.getvalue(), image="dshare-job", working_dir="", home_path=HOME)
    assert code.files["count.py"] == hashlib.sha256(b"\x00" * len(approved) + approved).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(code.workspace), mode="r:*") as tar:
        tar.extractall(tmp_path, filter="data")
    unpacked = {path: info.sha256 for path, info in snapshot(tmp_path).items()}
    assert unpacked == code.files


def test_identity_changes_with_file_content_and_jobs():
    a = _code("jobs:\n  - python count.py\n", HOME_FILES)
    b = _code("jobs:\n  - python count.py\n", {**HOME_FILES, "count.py": b"print(2)\n"})
    c = _code("jobs:\n  - python count.py -v\n", HOME_FILES)
    d = _code("jobs:\n  - python count.py\n", {**HOME_FILES, "notes.ipynb": b"[1]"})
    assert a.job_sha256 == b.job_sha256 != c.job_sha256
    assert len({a.code_sha256, b.code_sha256, c.code_sha256}) == 3
    # A file the jobs do not run may change freely: it is not shipped either.
    assert d.code_sha256 == a.code_sha256


def test_binary_and_large_files_are_hashed_not_shown():
    code = _code(
        "jobs:\n  - python count.py model.bin\n",
        {"count.py": b"print(1)\n", "model.bin": b"\x00\x01\x02"},
    )
    assert code.contents == {"count.py": "print(1)\n", "model.bin": None}
    assert set(code.files) == {"count.py", "model.bin"}


def test_unreadable_workspace_is_refused():
    with pytest.raises(ApiError) as info:
        read_snapshot(b"not a tar")
    assert (info.value.code, info.value.message, info.value.field) == (
        "INVALID_ARGUMENT",
        "workspace: is not a readable gzip tar of the home",
        "workspace",
    )
    with pytest.raises(ApiError) as info:
        read_snapshot(tgz({"big": b"x" * 2000}), max_raw_bytes=1000)
    assert info.value.message == (
        "workspace: unpacks to more than 1,000 bytes; move what the jobs do not need out of "
        "the home"
    )


def test_diff_against_the_earlier_approved_version():
    old = {
        "spec": "jobs:\n  - python count.py\n",
        "files": {"count.py": "1" * 64},
        "contents": {"count.py": "print(1)\n"},
    }
    new = {
        "spec": "jobs:\n  - python count.py\n",
        "files": {"count.py": "2" * 64, "b.bin": "3" * 64},
        "contents": {"count.py": "print(2)\n", "b.bin": None},
    }
    assert unified_diff(old, new) == (
        "--- a/b.bin\n+++ b/b.bin\n"
        f"@@ binary or too large to show: sha256 - -> {'3' * 64}\n"
        "--- a/count.py\n+++ b/count.py\n@@ -1 +1 @@\n-print(1)\n+print(2)\n"
    )
