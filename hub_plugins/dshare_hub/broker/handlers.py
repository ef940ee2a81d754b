"""Tornado handlers for /api/v1: authenticate with the hub, call the Broker, shape errors."""

from __future__ import annotations

import logging

from jupyterhub.services.auth import HubAuth, HubAuthenticated, UserNotAllowed
from tornado import web

from ..webapi import ApiError, JsonHandler, ServiceRootHandler
from .mockruns import MockRuns, is_mock_run
from .runs import RunService
from .service import Broker
from .views import (
    Caller,
    caller_from_hub,
    check_finish_request,
    check_lease_request,
    check_run_request,
)

log = logging.getLogger("dshare.broker")


class BaseHandler(HubAuthenticated, JsonHandler):
    """The hub's user behind every call; JSON errors as everywhere (webapi.JsonHandler)."""

    needs_user = True
    service = "broker"
    log = log

    @property
    def broker(self) -> Broker:
        broker: Broker = self.settings["broker"]
        return broker

    @property
    def hub_auth(self) -> HubAuth:
        auth: HubAuth = self.settings["hub_auth"]
        return auth

    async def prepare(self) -> None:
        if not self.needs_user:
            return
        # Asynchronously: HubAuth's synchronous lookup would block the event loop.
        model = await self.hub_auth.get_user(self, sync=False)
        if not model:
            raise ApiError(
                "UNAUTHENTICATED",
                "send a JupyterHub token: 'Authorization: token <token>'",
            )
        try:
            self.check_hub_user(model)
        except UserNotAllowed:
            raise ApiError(
                "FORBIDDEN",
                f"{model.get('kind', 'user')} {model.get('name')!r} may not use this service "
                "(the token lacks access to it)",
            ) from None
        self.current_user = model

    @property
    def caller(self) -> Caller:
        return caller_from_hub(self.current_user)

    def params(self) -> dict[str, str]:
        return {name: self.get_query_argument(name) for name in self.request.query_arguments}


class MeHandler(BaseHandler):
    async def get(self) -> None:
        self.reply(self.broker.me(self.caller))


class DatasetsHandler(BaseHandler):
    async def get(self) -> None:
        # Already encoded: a cached page is sent as the bytes it was kept as.
        self.finish(await self.broker.list_datasets_json(self.caller, self.params()))

    async def post(self) -> None:
        self.reply(await self.broker.register_dataset(self.caller, self.body()), 201)


class DatasetHandler(BaseHandler):
    async def get(self, asset_id: str) -> None:
        self.reply(await self.broker.get_dataset(self.caller, asset_id))

    async def patch(self, asset_id: str) -> None:
        self.reply(await self.broker.update_dataset(self.caller, asset_id, self.body()))

    async def delete(self, asset_id: str) -> None:
        self.reply(await self.broker.retire_dataset(self.caller, asset_id))


class HistoryHandler(BaseHandler):
    async def get(self, asset_id: str) -> None:
        self.reply(await self.broker.dataset_history(self.caller, asset_id))


class LeasesHandler(BaseHandler):
    async def get(self) -> None:
        self.reply(await self.broker.list_leases(self.caller, self.params()))

    async def post(self) -> None:
        dataset_id, duration_s, purpose = check_lease_request(self.body())
        self.reply(
            await self.broker.request_lease(self.caller, dataset_id, duration_s, purpose), 201
        )


class LeaseActionHandler(BaseHandler):
    async def post(self, lease_id: str, action: str) -> None:
        if action == "release":
            self.reply(await self.broker.release_lease(self.caller, lease_id))
        else:
            self.reply(await self.broker.decide_lease(self.caller, lease_id, action == "approve"))


class _RunsBase(BaseHandler):
    @property
    def runs(self) -> RunService | None:
        runs: RunService | None = self.settings.get("runs")
        return runs

    @property
    def mock_runs(self) -> MockRuns | None:
        mock_runs: MockRuns | None = self.settings.get("mock_runs")
        return mock_runs

    def runs_for(self, run_id: str) -> RunService | MockRuns:
        """Mock runs are the broker's own records, every other run is on the ledger."""
        if is_mock_run(run_id) and self.mock_runs is not None:
            return self.mock_runs
        return self.executor_runs()

    def executor_runs(self) -> RunService:
        if self.runs is None:
            raise ApiError(
                "NOT_FOUND",
                "this broker runs no jobs: it has no executor (BrokerApp.executor_url) and, "
                "on Kubernetes, no image for its gate (BrokerApp.kube_gate_image); ask your "
                "administrator",
            )
        return self.runs


class RunsHandler(_RunsBase):
    # Workspaces (the files a run's jobs need) come with the run.
    body_limit = 96 * 1024 * 1024

    async def get(self) -> None:
        if self.runs is not None:
            listed = await self.runs.list(self.caller)
            if self.mock_runs is not None:
                listed["items"] += await self.mock_runs.list(self.caller)
            self.reply(listed)
        else:
            self.reply(await self.broker.list_runs(self.caller))

    async def post(self) -> None:
        body = self.body()
        if isinstance(body, dict) and body.get("mock") is True and self.runs is not None:
            if self.mock_runs is None:
                raise ApiError("NOT_FOUND", "this broker runs no mock runs", "mock")
            self.reply(await self.mock_runs.submit(self.caller, body), 201)
            return
        if self.runs is not None:
            # Embedded: the broker runs what it compiled itself; a bare list of leases
            # would hand out mounts, so it is not accepted here.
            if isinstance(body, dict) and "lease_ids" in body and "spec" not in body:
                raise ApiError(
                    "INVALID_ARGUMENT",
                    "lease_ids: this broker starts runs from their workflow, not from a list "
                    "of leases; send {spec, workspace} (what %dshare_run and dshare run do)",
                    "lease_ids",
                )
            self.reply(await self.runs.submit(self.caller, body), 201)
            return
        name, lease_ids, spec = check_run_request(body)
        self.reply(await self.broker.create_run(self.caller, name, lease_ids, spec), 201)


class RunHandler(_RunsBase):
    async def get(self, run_id: str) -> None:
        if self.runs is not None:
            self.reply(await self.runs_for(run_id).get(self.caller, run_id))
        else:
            self.reply(await self.broker.get_run(self.caller, run_id))


class RunLogHandler(_RunsBase):
    async def get(self, run_id: str, job: str) -> None:
        text = await self.runs_for(run_id).logs(self.caller, run_id, job)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text)


class RunCancelHandler(_RunsBase):
    async def post(self, run_id: str) -> None:
        self.reply(await self.runs_for(run_id).cancel(self.caller, run_id))


class OutputDecisionHandler(_RunsBase):
    async def post(self, run_id: str) -> None:
        self.reply(await self.executor_runs().decide(self.caller, run_id, self.body()))


class HeldOutputsHandler(_RunsBase):
    async def get(self) -> None:
        self.reply(await self.executor_runs().held(self.caller))


class RunFinishHandler(_RunsBase):
    async def post(self, run_id: str) -> None:
        if self.runs is not None:
            raise ApiError(
                "FORBIDDEN",
                "runs of this broker are finished by the broker when the executor reports "
                "their end; cancel one with POST runs/<id>/cancel",
            )
        outcome, result = check_finish_request(self.body())
        self.reply(await self.broker.finish_run(self.caller, run_id, outcome, result))


class ApprovalsHandler(_RunsBase):
    # A request carries the workspace, as a run does: the broker hashes what it would ship.
    body_limit = 96 * 1024 * 1024

    async def get(self) -> None:
        self.reply(await self.executor_runs().approvals.list_requests(self.caller, self.params()))

    async def post(self) -> None:
        self.reply(await self.executor_runs().request_approval(self.caller, self.body()), 201)


class ApprovalDecisionHandler(_RunsBase):
    async def post(self, approval_id: str) -> None:
        approvals = self.executor_runs().approvals
        self.reply(await approvals.decide(self.caller, approval_id, self.body()))


class PeerMountHandler(BaseHandler):
    """Broker-to-broker: authenticated by the org signature, not by a hub token."""

    needs_user = False

    def check_xsrf_cookie(self) -> None:
        return None

    async def post(self) -> None:
        self.reply(await self.broker.peer_mount(self.body()), 201)


class OpenApiHandler(BaseHandler):
    needs_user = False

    async def get(self) -> None:
        self.reply(self.settings["openapi"])


class NotFoundHandler(BaseHandler):
    needs_user = False

    async def prepare(self) -> None:
        raise ApiError("NOT_FOUND", f"no such API path: {self.request.path}")


def routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    api = prefix.rstrip("/") + "/api/v1"
    ident = r"([^/]+)"
    return [
        (f"{api}/openapi.json", OpenApiHandler),
        (f"{api}/me", MeHandler),
        (f"{api}/datasets", DatasetsHandler),
        (f"{api}/datasets/{ident}", DatasetHandler),
        (f"{api}/datasets/{ident}/history", HistoryHandler),
        (f"{api}/leases", LeasesHandler),
        (f"{api}/leases/{ident}/(approve|reject|release)", LeaseActionHandler),
        (f"{api}/runs", RunsHandler),
        (f"{api}/runs/{ident}", RunHandler),
        (f"{api}/runs/{ident}/finish", RunFinishHandler),
        (f"{api}/runs/{ident}/logs/{ident}", RunLogHandler),
        (f"{api}/runs/{ident}/cancel", RunCancelHandler),
        (f"{api}/runs/{ident}/outputs/decide", OutputDecisionHandler),
        (f"{api}/outputs/held", HeldOutputsHandler),
        (f"{api}/approvals", ApprovalsHandler),
        (f"{api}/approvals/{ident}/decision", ApprovalDecisionHandler),
        (f"{api}/peer/mounts", PeerMountHandler),
        (prefix.rstrip("/") + "/?", ServiceRootHandler),
        (f"{prefix.rstrip('/')}/.*", NotFoundHandler),
    ]
