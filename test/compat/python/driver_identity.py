"""Python azure-identity driver: DefaultAzureCredential and ManagedIdentityCredential (system, client_id,
identity_config resource_id / object_id). See compat_common.py for the protocol."""
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

import compat_common

SELECTORS = {"client-id": "client_id", "resource-id": "resource_id", "object-id": "object_id"}


def make_credential(variant):
    if variant["credential"] == "default":
        return DefaultAzureCredential()
    sel = variant.get("selector")
    if not sel:
        return ManagedIdentityCredential()
    if sel["kind"] == "client-id":
        return ManagedIdentityCredential(client_id=sel["value"])
    return ManagedIdentityCredential(identity_config={SELECTORS[sel["kind"]]: sel["value"]})


def run_variant(spec, variant):
    scope = compat_common.scope_of(spec["resource"])

    def get(cred):
        t = cred.get_token(scope)
        return t.token, t.expires_on

    # Behind MSAL (App Service, Azure ML, Arc, IMDS), and in older releases' Cloud Shell path, the cached expiry is
    # derived from a relative expires_in plus the time the request started, so it may move by the request's latency
    # (a few seconds on a loaded machine) between a fresh and a cached answer.
    return compat_common.run_two_calls(spec, variant, lambda: make_credential(variant), get, expiry_tolerance=5)


if __name__ == "__main__":
    compat_common.main(run_variant, ["azure-identity", "azure-core", "msal"])
