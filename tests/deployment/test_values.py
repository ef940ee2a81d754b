"""The zero-to-jupyterhub values: valid for chart 4.4.0, wired to dshare, free of secrets."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from traitlets.config import Config

from .conftest import SCHEMAS, Z2JH, helm_merge, load_yaml

OVERLAYS = ["local", "production"]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return load_yaml(SCHEMAS / "z2jh-4.4.0-values.schema.json")


@pytest.fixture(scope="module")
def defaults() -> dict[str, Any]:
    return load_yaml(SCHEMAS / "z2jh-4.4.0-values.yaml")


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load_yaml(Z2JH / "values.yaml")


def merged(defaults: dict[str, Any], *layers: dict[str, Any]) -> dict[str, Any]:
    out = defaults
    for layer in layers:
        out = helm_merge(out, layer)
    return out


def test_base_values_pass_the_chart_schema(schema, defaults, base):
    jsonschema.validate(merged(defaults, base), schema)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_on_base_passes_the_chart_schema(schema, defaults, base, overlay):
    layer = load_yaml(Z2JH / "overlays" / f"{overlay}.yaml")
    jsonschema.validate(merged(defaults, base, layer), schema)


def test_schema_check_rejects_a_misspelt_key(schema, defaults, base):
    # proves the validation above can fail: the chart forbids unknown keys
    bad = merged(defaults, base, {"singleuser": {"imagee": {"name": "x"}}})
    with pytest.raises(jsonschema.ValidationError, match="'imagee' was unexpected"):
        jsonschema.validate(bad, schema)


def test_hub_runs_the_dshare_authenticator_and_spawner(base):
    config = base["hub"]["config"]
    assert base["hub"]["image"] == {"name": "dshare/hub", "tag": "0.1.0"}
    assert config["JupyterHub"]["authenticator_class"] == (
        "dshare_hub.auth.oauth.DShareOAuthenticator"
    )
    assert config["JupyterHub"]["spawner_class"] == "dshare_hub.spawner.kube.DShareKubeSpawner"
    assert config["DShareOAuthenticator"]["org_claim_key"] == "org"
    assert config["DShareOAuthenticator"]["roles_claim_key"] == "roles"
    assert config["DShareOAuthenticator"]["admin_role_names"] == ["dshare-admin"]
    # Every key set for DShareKubeSpawner is one of its traits (a typo is only a warning
    # in JupyterHub's log, and the setting silently does nothing).
    from dshare_hub.spawner.kube import DShareKubeSpawner

    traits = DShareKubeSpawner.class_trait_names(config=True)
    assert sorted(set(config["DShareKubeSpawner"]) - set(traits)) == []
    assert config["DShareKubeSpawner"]["broker_url_template"] == (
        "http://dshare-{org_lower}.dshare.svc:8080"
    )


def test_users_get_their_own_namespace_and_no_service_account_token(base, manifests_module):
    kube = base["hub"]["config"]["KubeSpawner"]
    assert kube["enable_user_namespaces"] is True
    assert kube["user_namespace_template"].startswith(manifests_module.USER_NAMESPACE_PREFIX)
    assert kube["user_namespace_labels"][manifests_module.USER_NAMESPACE_LABEL] == "true"
    assert kube["automount_service_account_token"] is False
    assert base["singleuser"]["extraPodConfig"]["automountServiceAccountToken"] is False
    assert base["singleuser"]["serviceAccountName"] is None
    assert base["singleuser"]["image"] == {"name": "dshare/singleuser", "tag": "0.1.0"}


def test_every_org_broker_is_a_hub_service(base):
    assert base["hub"]["services"] == {
        f"dshare-{org}": {
            "url": f"http://dshare-{org}:8080",
            "oauth_no_confirm": True,
            "display": False,
        }
        for org in ("uis", "uio", "uib")
    }


def test_roles_snippet_loads_dshare_roles_into_a_hub_config(base):
    # run the hub.extraConfig snippet as the chart's jupyterhub_config.py would
    c = Config()
    c.JupyterHub.load_roles = [{"name": "jupyterhub-idle-culler", "services": ["culler"]}]
    exec(base["hub"]["extraConfig"]["10-dshare-roles"], {"c": c})
    names = [role["name"] for role in c.JupyterHub.load_roles]
    assert names[0] == "jupyterhub-idle-culler"
    assert {
        "dshare-scientist",
        "dshare-admin",
        "dshare-member-uis",
        "dshare-member-uio",
        "dshare-member-uib",
    } <= set(names)
    assert set(c.JupyterHub.custom_scopes) == {
        "custom:dshare:read",
        "custom:dshare:lease",
        "custom:dshare:admin",
    }
    assert "custom:dshare:lease" in c.Spawner.server_token_scopes


SECRETISH_KEY = re.compile(r"(token|secret|password|passwd|key)$", re.IGNORECASE)
ALLOWED_SECRETISH = {"org_claim_key", "roles_claim_key", "key"}


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
            yield f"{path}.{k}", k, v
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


@pytest.mark.parametrize("name", ["values.yaml", "overlays/local.yaml", "overlays/production.yaml"])
def test_no_secret_is_set_in_values(name):
    values = load_yaml(Z2JH / name)
    for path, key, value in _walk(values):
        # a literal string under such a key is a secret in clear; a secretKeyRef is not
        literal = isinstance(value, str)
        if SECRETISH_KEY.search(str(key)) and key not in ALLOWED_SECRETISH and literal:
            pytest.fail(f"{name}: {path} looks like a secret ({value!r}); use a Secret")
        # secretKeyRef's `key` names a key in a Secret, it is not a value
        if key == "key":
            assert "secretKeyRef" in path, f"{name}: {path}"


def test_secret_check_catches_a_token_in_clear():
    leaked = {"hub": {"services": {"dshare-uis": {"apiToken": "0123abcd"}}}}
    found = [p for p, k, v in _walk(leaked) if SECRETISH_KEY.search(k) and isinstance(v, str)]
    assert found == [".hub.services.dshare-uis.apiToken"]


def test_production_serves_users_on_subdomains_with_a_wildcard_certificate():
    prod = load_yaml(Z2JH / "overlays" / "production.yaml")
    host = prod["hub"]["config"]["JupyterHub"]["subdomain_host"]
    assert host == "https://dshare.example.org"
    assert prod["ingress"]["hosts"] == ["dshare.example.org", "*.dshare.example.org"]
    assert prod["ingress"]["tls"][0]["hosts"] == ["dshare.example.org", "*.dshare.example.org"]
    assert prod["hub"]["extraEnv"]["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "dshare-oauth",
        "key": "client-secret",
    }


def test_local_overlay_needs_no_identity_provider():
    local = load_yaml(Z2JH / "overlays" / "local.yaml")
    assert local["hub"]["config"]["JupyterHub"]["authenticator_class"] == "dshare-local"
    assert local["proxy"]["service"] == {"type": "NodePort", "nodePorts": {"http": 30080}}
