"""The workflow.yaml parser: good files, every refusal with its exact message, and fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dshare_server.workflow import LeaseView, Problem, SpecError, parse
from dshare_server.workflow.spec import MAX_BYTES

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASES = {
    "aaa111": LeaseView("aaa111", "active", "alice", NOW + timedelta(hours=2), asset_name="uis"),
    "bbb222": LeaseView("bbb222", "pending", "alice", None, owner_org="UiO"),
    "ccc333": LeaseView("ccc333", "active", "alice", NOW - timedelta(minutes=1)),
    "ddd444": LeaseView("ddd444", "active", "bob", NOW + timedelta(hours=2)),
    "eee555": LeaseView("eee555", "released", "alice", NOW + timedelta(hours=2)),
    "fff666": LeaseView("fff666", "expired", "alice", NOW - timedelta(hours=1)),
}


def check(text: str):
    return parse(text, leases=LEASES, user="alice", now=NOW)


def problems(text: str) -> list[tuple[int, int, str, str]]:
    with pytest.raises(SpecError) as info:
        check(text)
    return [(p.line, p.column, p.message, p.hint) for p in info.value.problems]


def test_listing_2_1_jupyterflow_example(listing):
    spec = parse(listing("listing_2_1"), leases=None)
    assert [j.command for j in spec.jobs] == [
        "bash hello.sh world",
        "bash hello.sh bob",
        "bash hello.sh foo",
        "ls",
        "echo 'jupyterflow is the best!'",
    ]
    assert spec.edges == (
        ("job-1", "job-4"),
        ("job-2", "job-4"),
        ("job-3", "job-4"),
        ("job-4", "job-5"),
    )


def test_listing_4_7_blank_volume_template_is_ignored_with_a_warning(listing):
    spec = parse(listing("listing_4_7"), leases={}, user="alice")
    assert spec.jobs[1].volumes == ()
    assert spec.warnings == (
        "line 5: volume 1 of job 2 is empty and was ignored; "
        "pick a dataset in the DataExplorer to fill it in",
    )


def test_listing_5_2_ids_wrapped_across_lines_are_joined(listing):
    ids = [
        "36b0c4d057e1bf9c0915e66330d18299d0f08c0c0f0340847cc879b3fbf73b4d",
        "c12e28fb1d8c4bb243d5e7622afd90fde92ddb53971be384b92c33a464c80451",
        "3011ffd02613bb0971fb14b3bcbfea54ab1141afcd78c06ca18337f29740abbc",
    ]
    leases = {i: LeaseView(i, "active", "alice", NOW + timedelta(hours=1)) for i in ids}
    spec = parse(listing("listing_5_2"), leases=leases, user="alice", now=NOW)
    assert spec.lease_ids == ids
    assert [(v.name, v.path) for j in spec.jobs for v in j.volumes] == [
        ("uis", "/home/jovyan/uis"),
        ("uio", "/home/jovyan/uio"),
        ("uib", "/home/jovyan/uib"),
    ]
    assert spec.dependencies("job-5") == ["job-2", "job-3", "job-4"]


def test_mapping_jobs_with_every_field_and_named_chains():
    spec = check(
        """
name: counts
deadline: 90m
env: {LANG: C, N: 3}
jobs:
- name: prepare
  command: python prep.py
  image: python:3.11
  env: {N: "4", EMPTY: }
  resources: {cpu: 500m, memory: 1Gi}
  timeout: 1h30m
  volumes:
  - {id: "aaa 111", name: uis, path: /home/jovyan/uis/}
- name: count
  command: python count.py
- echo done
dags:
- prepare >> count >> 3
- 1 >> 3
- 1 >> 3
"""
    )
    prep = spec.jobs[0]
    assert (prep.name, prep.image, prep.cpu, prep.memory, prep.timeout_s) == (
        "prepare",
        "python:3.11",
        "500m",
        "1Gi",
        5400,
    )
    assert dict(prep.env) == {"N": "4", "EMPTY": ""}
    assert dict(spec.env) == {"LANG": "C", "N": "3"}
    assert prep.volumes[0].lease_id == "aaa111"
    assert prep.volumes[0].path == "/home/jovyan/uis"
    assert spec.edges == (("prepare", "count"), ("count", "job-3"), ("prepare", "job-3"))
    assert spec.deadline == NOW + timedelta(minutes=90)
    assert spec.name == "counts"


def test_sha256_changes_with_what_runs_and_not_with_formatting():
    a = check("jobs: [ls, pwd]\ndags: ['1 >> 2']")
    b = check("jobs:\n- ls\n- pwd\ndags:\n- 1>>2\n")
    c = check("jobs: [ls, pwd -P]\ndags: ['1 >> 2']")
    assert a.sha256() == b.sha256()
    assert a.sha256() != c.sha256()


BAD = [
    (
        "jobs: [ls\n",
        [
            (
                2,
                1,
                "YAML syntax error: while parsing a flow sequence, "
                "did not find expected ',' or ']'",
                "check the indentation and quoting around this place",
            )
        ],
    ),
    ("", [(1, 1, "the workflow file is empty", "add a `jobs:` list of commands")]),
    (
        "- ls\n",
        [
            (
                1,
                1,
                "the workflow file must be a mapping with `jobs:` and `dags:`, not a list",
                "start the file with `jobs:` followed by a list of commands",
            )
        ],
    ),
    (
        "dags: []\n",
        [(1, 1, "the workflow has no jobs", "add a `jobs:` list with at least one command")],
    ),
    (
        "jobs: []\n",
        [(1, 7, "the workflow has no jobs", "add at least one command under `jobs:`")],
    ),
    (
        "jobs: [ls]\ndag: ['1 >> 1']\n",
        [
            (
                2,
                1,
                "unknown key `dag` in the workflow",
                "did you mean `dags`? valid keys: jobs, dags, name, deadline, env, code",
            )
        ],
    ),
    (
        "jobs:\n- comand: ls\n",
        [
            (2, 3, "job 1 has no `command`", "add `command: <what to run>`"),
            (
                2,
                3,
                "unknown key `comand` in job 1",
                "did you mean `command`? valid keys: command, name, image, env, resources, "
                "volumes, timeout",
            ),
        ],
    ),
    (
        "jobs:\n- command: 5\n",
        [(2, 12, "`command` of job 1 must be a string, not a number", "quote it")],
    ),
    (
        "jobs: ls\n",
        [
            (
                1,
                7,
                "`jobs` must be a list, not a string",
                "write each job on its own line starting with `- `",
            )
        ],
    ),
    (
        "jobs: [ls, pwd]\ndags:\n- 1 >> 3\n",
        [
            (
                3,
                8,
                "job 3 does not exist; the workflow has 2 jobs",
                "jobs are numbered from 1 in the order they are listed",
            )
        ],
    ),
    (
        "jobs: [ls, pwd]\ndags:\n- 0 >> 1\n",
        [
            (
                3,
                3,
                "job 0 does not exist; the workflow has 2 jobs",
                "jobs are numbered from 1 in the order they are listed",
            )
        ],
    ),
    (
        "jobs: [ls, pwd]\ndags:\n- 2 >> 2\n",
        [
            (
                3,
                3,
                "job `job-2` depends on itself in `2 >> 2`",
                "a job cannot wait for itself: remove this dependency",
            )
        ],
    ),
    (
        "jobs: [a, b, c]\ndags:\n- 1 >> 2\n- 2 >> 3\n- 3 >> 1\n",
        [
            (
                3,
                3,
                "the dependencies form a cycle: job-1 >> job-2 >> job-3 >> job-1",
                "a workflow must be acyclic: remove one of these dependencies",
            )
        ],
    ),
    (
        "jobs:\n- {name: prep, command: a}\n- b\ndags:\n- 'prp >> 2'\n",
        [(5, 4, "no job is named `prp`", "did you mean `prep`?")],
    ),
    (
        "jobs: [a, b]\ndags:\n- 1 2\n",
        [
            (
                3,
                3,
                "`1 2` is not a dependency",
                "write `<first job> >> <next job>`, for example `1 >> 2` or `1 >> 2 >> 3`",
            )
        ],
    ),
    (
        "jobs: [a, b]\ndags:\n- 1 >>\n",
        [
            (
                3,
                7,
                "a job is missing in `1 >>`",
                "write a job number or name on both sides of `>>`",
            )
        ],
    ),
    (
        "jobs:\n- {name: x, command: a}\n- {name: x, command: b}\n",
        [
            (
                3,
                1,
                "job name `x` is used by jobs 1 and 2",
                "give every job its own name (unnamed jobs are called job-<number>)",
            )
        ],
    ),
    (
        "jobs:\n- {name: Prep, command: a}\n",
        [
            (
                2,
                10,
                "job name `Prep` is not valid",
                "use at most 63 lower-case letters, digits and '-', starting with a letter",
            )
        ],
    ),
    (
        "jobs:\n- {name: dshare-exit, command: a}\n",
        [
            (
                2,
                10,
                "job name `dshare-exit` is reserved",
                "names starting with `dshare-` are used by dshare itself",
            )
        ],
    ),
    (
        "jobs:\n- command: ls\n  volumes:\n  - {id: aaa111, path: data}\n",
        [
            (
                4,
                24,
                "mount path `data` of volume 1 of job 1 is not absolute",
                "write the full path, for example `/home/jovyan/data`",
            )
        ],
    ),
    (
        "jobs:\n- command: ls\n  volumes:\n  - {id: aaa111, path: /home/jovyan/../etc}\n",
        [
            (
                4,
                24,
                "mount path `/home/jovyan/../etc` of volume 1 of job 1 contains `..`",
                "write the path without `..`",
            )
        ],
    ),
    (
        "jobs:\n- command: ls\n  volumes:\n  - {id: aaa111, path: /home}\n",
        [
            (
                4,
                24,
                "mount path `/home` of volume 1 of job 1 would hide the home directory "
                "/home/jovyan",
                "mount the dataset below it, for example `/home/jovyan/data`",
            )
        ],
    ),
    (
        "jobs:\n- command: ls\n  volumes:\n  - {id: aaa111, path: /d}\n"
        "  - {id: aaa111, path: /d/}\n",
        [
            (
                5,
                24,
                "mount path `/d` is used twice in the same job",
                "give each volume of a job its own path",
            )
        ],
    ),
    (
        "jobs:\n- command: ls\n  volumes:\n  - {id: zzz999, path: /d}\n",
        [
            (
                4,
                10,
                "volume id `zzz999` is not one of your leases",
                "lease the dataset in the DataExplorer and copy its volume snippet",
            )
        ],
    ),
    (
        "jobs:\n- command: ls\n  volumes:\n  - {id: bbb222, path: /d}\n",
        [
            (
                4,
                10,
                "lease `bbb222` is waiting for approval by UiO",
                "run the workflow once the owner organization has approved the lease",
            )
        ],
    ),
    (
        "jobs:\n- command: ls\n  volumes:\n  - {id: ccc333, path: /d}\n",
        [(4, 10, "lease `ccc333` expired at 2030-01-01T11:59:00+00:00", "lease the dataset again")],
    ),
    (
        "jobs:\n- command: ls\n  volumes:\n  - {id: fff666, path: /d}\n",
        [(4, 10, "lease `fff666` expired at 2030-01-01T11:00:00+00:00", "lease the dataset again")],
    ),
    (
        "jobs:\n- command: ls\n  volumes:\n  - {id: eee555, path: /d}\n",
        [(4, 10, "lease `eee555` is released", "lease the dataset again")],
    ),
    (
        "jobs:\n- command: ls\n  volumes:\n  - {id: ddd444, path: /d}\n",
        [
            (
                4,
                10,
                "lease `ddd444` belongs to another user",
                "only the user who leased a dataset can mount it: lease it yourself",
            )
        ],
    ),
    (
        "deadline: 3h\njobs:\n- command: ls\n  volumes:\n  - {id: aaa111, path: /d}\n",
        [
            (
                1,
                11,
                "`deadline` 2030-01-01T15:00:00+00:00 is after lease `aaa111` expires "
                "(2030-01-01T14:00:00+00:00)",
                "choose an earlier deadline or lease the dataset for longer",
            )
        ],
    ),
    (
        "deadline: 2029-12-31T00:00:00Z\njobs: [ls]\n",
        [
            (
                1,
                11,
                "`deadline` 2029-12-31T00:00:00+00:00 has already passed",
                "write a duration from now (`2h`, `90m`) or a time with its zone "
                "(`2030-01-31T18:00:00Z`)",
            )
        ],
    ),
    (
        "jobs:\n- {command: ls, timeout: soon}\n",
        [
            (
                2,
                26,
                "`timeout` of job 1 `soon` is not a duration",
                "write seconds (`600`) or a duration such as `30s`, `15m`, `2h`, `1h30m`, `1d`",
            )
        ],
    ),
    (
        "jobs:\n- {command: ls, resources: {cpu: lots}}\n",
        [(2, 34, "`cpu` of job 1 `lots` is not a quantity", "use `1`, `0.5` or `500m`")],
    ),
    (
        "jobs:\n- {command: ls, env: {1X: a}}\n",
        [
            (
                2,
                23,
                "`1X` is not a valid environment variable name",
                "use letters, digits and '_', not starting with a digit",
            )
        ],
    ),
    (
        "jobs: [ls]\njobs: [pwd]\n",
        [(2, 1, "`jobs` is given twice in the workflow", "keep only one of them")],
    ),
    (
        "jobs: [!!python/object:os.system ls]\n",
        [
            (
                1,
                8,
                "the YAML tag `tag:yaml.org,2002:python/object:os.system` is not allowed",
                "workflow files are plain YAML: remove the tag",
            ),
            (1, 8, "the command of job 1 must be a string, not a value", "quote the command"),
        ],
    ),
    (
        "jobs: [ls]\n---\njobs: [pwd]\n",
        [
            (
                2,
                1,
                "YAML syntax error: expected a single document in the stream, "
                "but found another document",
                "a workflow file holds one document: remove the `---` separator",
            )
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[e[1][0][2][:50] for e in BAD])
def test_refusals_point_at_the_line_and_column(text, expected):
    assert problems(text) == expected


def test_several_problems_are_reported_together():
    found = problems("jobs:\n- command: 5\n- {command: ls, imag: x}\n")
    assert [(p[0], p[2]) for p in found] == [
        (2, "`command` of job 1 must be a string, not a number"),
        (3, "unknown key `imag` in job 2"),
    ]


def test_str_renders_like_a_compiler_with_source_line_and_caret():
    with pytest.raises(SpecError) as info:
        check("jobs: [ls, pwd]\ndags:\n- 1 >> 3\n")
    assert str(info.value) == (
        "workflow.yaml:3:8: error: job 3 does not exist; the workflow has 2 jobs\n"
        "    - 1 >> 3\n"
        "           ^\n"
        "  hint: jobs are numbered from 1 in the order they are listed\n"
        "1 problem found in workflow.yaml"
    )


def test_size_cap():
    text = "jobs: [ls]\n#" + "x" * MAX_BYTES
    with pytest.raises(SpecError) as info:
        check(text)
    assert info.value.problems == [
        Problem(
            1,
            1,
            f"the workflow file is {len(text)} bytes; the limit is {MAX_BYTES} bytes",
            "keep data out of workflow.yaml: read it from a dataset or your home",
        )
    ]


def test_alias_expansion_is_bounded():
    lines = ["a0: &a0 {command: ls, volumes: []}"]
    # Each level doubles: 2**20 jobs if expanded naively.
    lines.append("jobs: &j0 [*a0, *a0]")
    for i in range(1, 20):
        lines.append(f"x{i}: &j{i} [*j{i - 1}, *j{i - 1}]")
    text = "\n".join(lines) + "\n"
    found = problems(text)
    # The unknown keys are reported; the expansion itself never runs away.
    assert found[0][2] == "unknown key `a0` in the workflow"


def test_alias_bomb_inside_volumes_hits_the_budget():
    lines = ["jobs:"]
    vol = "{id: aaa111, path: /d}"
    lines.append(f"- {{command: ls, volumes: &v0 [{vol}]}}")
    # 3,000 jobs sharing a list of 100 volumes: 300,000 volume nodes when expanded.
    lines.append("- {command: ls, volumes: &v [" + ", ".join([vol] * 100) + "]}")
    lines += ["- {command: ls, volumes: *v}"] * 3000
    with pytest.raises(SpecError) as info:
        check("\n".join(lines))
    assert info.value.problems == [
        Problem(
            1,
            1,
            "the workflow file expands to more than 200000 YAML values",
            "YAML aliases (`*name`) repeat whole sections: write the jobs out",
        )
    ]


def test_recursive_alias_does_not_hang():
    found = problems("jobs: &a [*a]\n")
    assert found == [(1, 7, "job 1 must be a command or a mapping with `command:`, not a list", "")]


def test_unicode_and_bytes_input():
    assert parse("jobs: ['echo ø']".encode(), leases=None).jobs[0].command == "echo ø"
    with pytest.raises(SpecError) as info:
        parse(b"jobs: [\xff]", leases=None)
    assert info.value.problems == [Problem(1, 1, "the workflow file is not UTF-8 text (byte 7)")]


yaml_text = st.recursive(
    st.one_of(
        st.sampled_from(["ls", "1 >> 2", "2>>1", "a >> b", "", "~", "!!str x", "*a", "&a x"]),
        st.text(max_size=12),
        st.integers(-3, 8).map(str),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(
            st.sampled_from(
                ["jobs", "dags", "command", "volumes", "id", "path", "name", "env", "x"]
            ),
            children,
            max_size=4,
        ).map(lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(yaml_text, st.text(max_size=200)))
def test_fuzz_only_spec_errors(text):
    try:
        spec = parse(text, leases=LEASES, user="alice", now=NOW)
    except SpecError as exc:
        assert exc.problems
        assert all(p.line >= 1 and p.column >= 1 for p in exc.problems)
        str(exc)
    else:
        assert spec.jobs


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["ls", "pwd", "echo hi"]), min_size=1, max_size=8),
    st.lists(st.tuples(st.integers(-1, 9), st.integers(-1, 9)), max_size=12),
)
def test_fuzz_random_dags_are_acyclic_or_refused(jobs, pairs):
    text = "jobs:\n" + "".join(f"- {j}\n" for j in jobs)
    text += "dags:\n" + "".join(f"- {a} >> {b}\n" for a, b in pairs) if pairs else ""
    try:
        spec = parse(text, leases=None)
    except SpecError as exc:
        assert exc.problems
        return
    order = {j.name: i for i, j in enumerate(spec.jobs)}
    # An acyclic graph admits a topological order; check by repeated removal.
    remaining = set(order)
    edges = set(spec.edges)
    while remaining:
        free = {n for n in remaining if not any(b == n and a in remaining for a, b in edges)}
        assert free
        remaining -= free


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # found by the proof suite's fuzzing: both used to crash instead of being refused
        (
            "jobs: [echo]\ndeadline: 251606976229\n",
            "`deadline` `251606976229` is more than a year away",
        ),
        ("jobs: [a, b]\ndags: ['1 >> ²']\n", "no job is named `²`"),
    ],
)
def test_inputs_that_once_crashed_are_refused(text, expected):
    with pytest.raises(SpecError) as info:
        check(text)
    assert expected in str(info.value)
