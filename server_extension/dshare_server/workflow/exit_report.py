"""The Argo exit handler: tell the broker how the run ended so it releases and cleans up.

Runs as ``python -m dshare_server.workflow.exit_report`` in the workflow's exit pod with
DSHARE_BROKER_URL, DSHARE_RUN_ID, DSHARE_WORKFLOW_STATUS and DSHARE_BROKER_TOKEN (from a
Secret) in its environment. The token is never printed.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

# Argo's {{workflow.status}} values mapped to the broker's run outcomes.
OUTCOMES = {"Succeeded": "succeeded", "Failed": "failed", "Error": "failed"}


def outcome_for(status: str) -> str:
    return OUTCOMES.get(status, "cancelled")


def build_request(broker_url: str, run_id: str, status: str, token: str) -> urllib.request.Request:
    body = json.dumps({"outcome": outcome_for(status)}).encode()
    url = f"{broker_url.rstrip('/')}/runs/{run_id}/finish"
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    return urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310


def main(environ: dict[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    missing = [k for k in ("DSHARE_BROKER_URL", "DSHARE_RUN_ID") if not env.get(k)]
    if missing:
        print(f"dshare exit handler: {', '.join(missing)} not set; nothing reported")
        return 2
    request = build_request(
        env["DSHARE_BROKER_URL"],
        env["DSHARE_RUN_ID"],
        env.get("DSHARE_WORKFLOW_STATUS", ""),
        env.get("DSHARE_BROKER_TOKEN", ""),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - broker URL from the compiler
            print(f"dshare exit handler: run {env['DSHARE_RUN_ID']} reported ({response.status})")
    except urllib.error.HTTPError as exc:
        print(f"dshare exit handler: the broker answered {exc.code} for run {env['DSHARE_RUN_ID']}")
        return 1
    except OSError as exc:
        print(f"dshare exit handler: could not reach the broker: {exc.__class__.__name__}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
