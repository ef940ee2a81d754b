"""A run whose gate holds files: a job copies a leased workflow-only corpus twice and counts
it once. The count is released at once; both copies wait for the owner's review."""

from __future__ import annotations

from hubclient import HubSession

WORKFLOW = """\
name: review-me
jobs:
- command: 'sh review.sh'
  volumes:
  - id: '{dataset}'
    name: 'lorem'
    path: '/data/lorem'
"""
SCRIPT = """\
mkdir -p review
cat /data/lorem/* > review/copy-a.txt
cp review/copy-a.txt review/copy-b.txt
ls /data/lorem | wc -l > review/count.txt
"""
HELD = ("review/copy-a.txt", "review/copy-b.txt")
RELEASED = "review/count.txt"


async def run_copying_workflow(scientist: HubSession, dataset: str) -> str:
    """Lease `dataset` from the scientist's kernel, run the workflow; the run's id."""
    for name, content in (
        ("review-workflow.yaml", WORKFLOW.format(dataset=dataset)),
        ("review.sh", SCRIPT),
    ):
        status, body = await scientist.api(
            f"api/contents/{name}", "PUT", {"type": "file", "format": "text", "content": content}
        )
        assert status in (200, 201), body
    out, errors = await scientist.run_code(
        "from dshare_server.session import lease\n"
        f"lease({dataset!r}, hours=1, purpose='output review')\n"
        "%load_ext dshare_server\n"
        "run = %dshare_run review-workflow.yaml\n"
        "print('RUN', run.id, run.state)\n"
    )
    assert not errors, (out, errors)
    _, run_id, state = next(line for line in out.splitlines() if line.startswith("RUN ")).split()
    assert state == "succeeded", out
    return run_id
