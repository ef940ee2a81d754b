"""The authorization matrix: every broker endpoint by every kind of caller.

Each signed-in caller uses their own organization's broker (as their server extension
does); the objects belong to UiS. Anonymous calls go to UiS's broker. Expected statuses are
the promise written down; the test compares them with what the brokers answer.
"""

from __future__ import annotations

CALLERS = (
    "anonymous",
    "other-org scientist",
    "same-org scientist",
    "owner-org admin",
    "other-org admin",
)

# endpoint label -> expected status per caller, in CALLERS order
EXPECTED: dict[str, tuple[int, ...]] = {
    "GET /openapi.json": (200, 200, 200, 200, 200),
    "GET /me": (401, 200, 200, 200, 200),
    "GET /datasets": (401, 200, 200, 200, 200),
    "POST /datasets": (401, 403, 403, 201, 201),
    "GET /datasets/{id}": (401, 200, 200, 200, 200),
    "PATCH /datasets/{id}": (401, 403, 403, 200, 403),
    "DELETE /datasets/{id}": (401, 403, 403, 200, 403),
    "GET /datasets/{id}/history": (401, 200, 200, 200, 200),
    "GET /leases?scope=mine": (401, 200, 200, 200, 200),
    "GET /leases?scope=pending": (401, 403, 403, 200, 200),
    "POST /leases": (401, 201, 201, 201, 201),
    "POST /leases/{id}/approve": (401, 403, 403, 200, 403),
    "POST /leases/{id}/reject": (401, 403, 403, 200, 403),
    "POST /leases/{id}/release (another user's)": (401, 403, 403, 200, 403),
    "POST /runs (own lease)": (401, 201, 201, 201, 201),
    "POST /runs (another user's lease)": (401, 403, 403, 403, 403),
    "GET /runs": (401, 200, 200, 200, 200),
    "GET /runs/{id} (another user's)": (401, 404, 404, 404, 404),
    "POST /runs/{id}/finish (another user's)": (401, 403, 403, 403, 403),
    "POST /peer/mounts (unsigned)": (403, 403, 403, 403, 403),
    "POST /views": (401, 200, 200, 200, 200),
    "POST /peer/views (unsigned)": (403, 403, 403, 403, 403),
}
