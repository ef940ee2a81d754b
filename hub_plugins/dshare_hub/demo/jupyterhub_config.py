# JupyterHub configuration of the embedded deployment, loaded by `dshare demo`.
#
# Everything variable comes from the environment `dshare demo` sets (see layout.py), so
# the same file serves the demo, the integration tests (random ports, temp dirs) and a
# single-machine install. Secrets are read from files in the data directory, never from
# this file.

import os

from dshare_hub.auth.roles import broker_service_name, hub_roles
from dshare_hub.demo.content import ORGS
from dshare_hub.demo.layout import layout_from_env
from dshare_hub.demo.services import service_specs

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - the config loader's
layout = layout_from_env()
orgs = list(ORGS)

c.JupyterHub.ip = layout.ip
c.JupyterHub.port = layout.port
c.JupyterHub.hub_ip = layout.ip
c.JupyterHub.hub_port = layout.hub_port
c.JupyterHub.db_url = f"sqlite:///{layout.hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(layout.hub_dir / "cookie_secret")
c.JupyterHub.pid_file = str(layout.hub_dir / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(layout.hub_dir / "proxy.pid")
# The hub's own secret, made by the hub (its own user) in its own directory.
c.ConfigurableHTTPProxy.auth_token = layout.secret_file("proxy-token", where=layout.hub_dir)
c.ConfigurableHTTPProxy.api_url = f"http://{layout.ip}:{layout.proxy_api_port}"
c.ConfigurableHTTPProxy.command = [
    os.environ.get("DSHARE_PROXY_COMMAND", "configurable-http-proxy")
]
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

# Who may log in: the local user directory, with organizations and roles.
c.JupyterHub.authenticator_class = "dshare_hub.auth.local.DShareLocalAuthenticator"
c.DShareLocalAuthenticator.directory_path = str(layout.user_directory)
c.Authenticator.allow_all = True  # the directory is the allow list: no entry, no login

# What they may do: custom scopes through roles bound to org/role groups.
roles = hub_roles(orgs)
c.JupyterHub.custom_scopes = roles["custom_scopes"]
c.JupyterHub.load_roles = [
    *roles["load_roles"],
    {
        # The demo seeder registers sample data as each org's admin: it creates the admins
        # with the groups the authenticator would give them, and short-lived tokens.
        "name": "dshare-demo-seeder",
        "scopes": ["admin:users", "admin:groups", "groups", "tokens"],
        "services": ["dshare-demo-seeder"],
    },
]
c.Spawner.server_token_scopes = roles["server_token_scopes"]
c.JupyterHub.load_roles.append(
    {
        "name": "dshare-executor-clients",
        "scopes": ["access:services!service=dshare-executor"],
        "services": [broker_service_name(org) for org in orgs],
    }
)
# The executor asks the hub which organization a run's user is in (executor/accounts.py).
c.JupyterHub.load_roles.append(
    {
        "name": "dshare-executor-reads-orgs",
        "scopes": ["read:users:groups"],
        "services": ["dshare-executor"],
    }
)

# The brokers (each its own service user) and the executor (root) are started by the root
# launcher beside the hub (demo/services.py): for the hub they are external services with
# a URL and a token provisioning made, which only the service and the hub's group read.
services = [
    {
        "name": spec.name,
        "url": spec.url,
        "api_token": layout.service_token_file(spec.name).read_text().strip(),
        "oauth_no_confirm": True,
        "display": False,
    }
    for spec in service_specs(layout)
]
# The seeder is the launcher itself (root), registering the sample data after the start.
services.append(
    {
        "name": "dshare-demo-seeder",
        "api_token": layout.service_token_file("dshare-demo-seeder").read_text().strip(),
        "display": False,
    }
)
c.JupyterHub.services = services

# Users' servers: local processes, one OS user per hub user (as The Littlest JupyterHub
# does), JupyterLab with dshare. The hub is not root: it switches to them through sudo
# (sudospawner), with a rule limited to the dshare users group (demo/sudoers.py).
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 90
if layout.spawner == "system":
    c.JupyterHub.spawner_class = "dshare_hub.spawner.sudo.DShareSudoSpawner"
    c.DShareSudoSpawner.system_username_template = layout.user_template
    c.DShareSudoSpawner.home_root = str(layout.homes)
    c.DShareSudoSpawner.hub_url = layout.public_url
    c.DShareSudoSpawner.users_group = layout.users_group
    c.DShareSudoSpawner.account_helper_config = str(layout.accounts_config)
elif layout.spawner == "simple":
    # Evaluation only: every server as the hub's user (root here); it warns at every spawn.
    c.JupyterHub.spawner_class = "dshare_hub.spawner.local.DShareSimpleLocalSpawner"
    c.DShareSimpleLocalSpawner.data_dir = str(layout.homes)
    c.DShareSimpleLocalSpawner.hub_url = layout.public_url
else:
    raise SystemExit(
        f"DSHARE_SPAWNER is {layout.spawner!r}; use 'system' (one OS user per hub user) "
        "or 'simple' (everyone as the hub's user, for evaluation only)"
    )
