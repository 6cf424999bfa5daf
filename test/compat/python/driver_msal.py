"""msal-python driver: ManagedIdentityClient with SystemAssignedManagedIdentity / UserAssignedManagedIdentity
(client_id, resource_id, object_id). See compat_common.py for the protocol."""
import time

import msal
import requests

import compat_common


class BoundedSession(requests.Session):
    """requests has no default timeout; a cell that falls back to the unreachable 169.254.169.254 must fail
    within seconds, not hang (only the timeout is added; MSAL sees a plain requests.Session)."""

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", 10)
        return super().request(*args, **kwargs)


def make_client(variant):
    sel = variant.get("selector")
    if not sel:
        identity = msal.SystemAssignedManagedIdentity()
    else:
        key = {"client-id": "client_id", "resource-id": "resource_id", "object-id": "object_id"}[sel["kind"]]
        identity = msal.UserAssignedManagedIdentity(**{key: sel["value"]})
    return msal.ManagedIdentityClient(identity, http_client=BoundedSession())


def run_variant(spec, variant):
    resource = spec["resource"]

    def get(client):
        result = client.acquire_token_for_client(resource=resource)
        if "access_token" not in result:
            raise RuntimeError("%s: %s" % (result.get("error"), result.get("error_description")))
        # MSAL returns a relative expires_in (recomputed from the cache entry on a cache hit), so the absolute
        # expiry derived from it may move by a second between the two calls.
        return result["access_token"], round(time.time() + int(result["expires_in"]))

    return compat_common.run_two_calls(spec, variant, lambda: make_client(variant), get, expiry_tolerance=2)


if __name__ == "__main__":
    compat_common.main(run_variant, ["msal", "requests"])
