"""`DShareLocalAuthenticator`: the embedded mode's login against the user directory."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Float, Integer, Unicode, default

from .base import DShareAuthenticatorMixin
from .directory import DirectoryError, DirectoryUser, default_directory_path, load_directory
from .lockout import FailureTracker
from .passwords import dummy_hash, verify_password


class DirectoryPasswordAuthenticator(Authenticator):
    """Checks user name and password against the dshare user directory file.

    Knows nothing about organizations; `DShareLocalAuthenticator` adds them. The file is
    re-read when it changes, so `dshare users add/remove/passwd` take effect without a
    hub restart.
    """

    directory_path = Unicode(
        config=True,
        help="""Path of the user directory (YAML written by `dshare users add`).
        Default: $DSHARE_USER_DIRECTORY, else dshare_users.yaml in the hub's working
        directory. The hub refuses to start when the file is missing or has a bad entry.""",
    )

    @default("directory_path")
    def _default_directory_path(self) -> str:
        return str(default_directory_path())

    max_failures = Integer(
        5,
        config=True,
        help="""Failed logins in a row after which a user name is locked out for
        `lockout_seconds`. 0 disables the lockout. Counted in the hub's memory, so a
        hub restart clears it.""",
    )

    lockout_seconds = Float(
        300.0,
        config=True,
        help="How long a user name stays locked after `max_failures` failed logins, in seconds.",
    )

    _users: dict[str, DirectoryUser]
    _stamp: tuple[int, int, int] | None = None
    _tracker: FailureTracker | None = None

    @property
    def failure_tracker(self) -> FailureTracker:
        if self._tracker is None:
            self._tracker = FailureTracker(self.max_failures, self.lockout_seconds)
        return self._tracker

    def directory(self) -> dict[str, DirectoryUser]:
        """The users, re-read when the file's identity, size or mtime changed."""
        path = Path(self.directory_path)
        try:
            st = os.stat(path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp is None or stamp != self._stamp:
            # on a bad edit, keep serving the last good directory rather than lock
            # everyone out; the error is logged for the operator
            try:
                self._users = load_directory(path)
                self._stamp = stamp
            except DirectoryError as exc:
                if self._stamp is None:
                    raise
                self.log.error("Keeping the previous user directory: %s", exc)
        return self._users

    def directory_user(self, username: str) -> DirectoryUser | None:
        return self.directory().get(username)

    async def authenticate(self, handler: Any, data: Any = None) -> dict[str, Any] | None:
        data = data or {}
        username = self.normalize_username(str(data.get("username", "")))
        password = str(data.get("password", ""))
        tracker = self.failure_tracker
        remaining = tracker.seconds_locked(username)
        if remaining > 0:
            message = (
                f"Too many failed logins for {username!r}: the account is locked for another "
                f"{math.ceil(remaining)} seconds. Wait, then try again."
            )
            self.log.warning("Login of %s refused: locked out", username)
            error = web.HTTPError(403, message)
            error.jupyterhub_message = message  # type: ignore[attr-defined]
            raise error
        user = self.directory_user(username)
        # verify against a dummy hash for unknown names so both cases take as long
        stored = user.password_hash if user is not None else dummy_hash()
        ok = await asyncio.to_thread(verify_password, stored, password)
        if user is None or not ok:
            if tracker.record_failure(username):
                self.log.warning(
                    "Locked out %s for %.0f seconds after %d failed logins",
                    username,
                    self.lockout_seconds,
                    self.max_failures,
                )
            else:
                self.log.info("Failed login for %s", username)
            return None
        tracker.record_success(username)
        return {"name": username}

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        # someone removed from the directory must log in again (and will be refused)
        if self.directory_user(user.name) is None:
            return False
        return {"name": user.name}


class DShareLocalAuthenticator(DShareAuthenticatorMixin, DirectoryPasswordAuthenticator):
    """Embedded-mode login: user name and password from the dshare user directory, whose
    entries also give each user's organization and roles.

    ``c.JupyterHub.authenticator_class = "dshare-local"`` and
    ``c.DShareLocalAuthenticator.directory_path = "/srv/dshare/users.yaml"``; manage
    users with ``dshare users add|list|remove|passwd``.
    """

    def org_for(self, auth_model: dict[str, Any]) -> str | None:
        user = self.directory_user(auth_model["name"])
        return user.org if user is not None else None

    def roles_for(self, auth_model: dict[str, Any]) -> list[str]:
        user = self.directory_user(auth_model["name"])
        return list(user.roles) if user is not None else []

    def no_org_message(self, username: str) -> str:
        return (
            f"User {username!r} has no organization in the dshare user directory, so this "
            "hub cannot let them in. Ask your dshare administrator to run "
            f"`dshare users add {username} --org ORG --role scientist`."
        )

    def dshare_settings_problems(self) -> list[str]:
        problems = super().dshare_settings_problems()
        cls = type(self).__name__
        if self.max_failures < 0:
            problems.append(f"{cls}.max_failures must be 0 (no lockout) or more")
        if self.max_failures > 0 and self.lockout_seconds <= 0:
            problems.append(
                f"{cls}.lockout_seconds must be more than 0 while {cls}.max_failures is "
                f"{self.max_failures}"
            )
        try:
            users = self.directory()
        except DirectoryError as exc:
            problems.append(f"{cls}.directory_path: {exc}")
        else:
            for user in users.values():
                # a warning, not an error: leaving an organization out may be on purpose
                if user.org and self.allowed_orgs and user.org not in self.allowed_orgs:
                    self.log.warning(
                        "%s.allowed_orgs does not include %r, so user %r in %s cannot log in",
                        cls,
                        user.org,
                        user.name,
                        self.directory_path,
                    )
        return problems
