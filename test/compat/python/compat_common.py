"""Shared part of the Python drivers of the compatibility matrix (test/compat/compat.test.ts).

Every driver takes one JSON argument (the shape of test/compat/drivers/protocol.ts), runs each variant against the
managed-identity endpoint that the process environment selects (exactly what the webhook injects for one profile)
and prints one JSON line per variant: status "ok", "unsupported" (the client refused or failed on its first token
request; the error is the client's own text) or "fail" (a token came back but a check failed).
"""
import base64
import json
import sys
import time
import urllib.request
from importlib.metadata import version


def versions(*dists):
    out = {name: version(name) for name in dists}
    out["python"] = sys.version.split()[0]
    return out


def count(url):
    with urllib.request.urlopen(url, timeout=5) as res:
        return json.load(res)["count"]


def requests_log(url):
    with urllib.request.urlopen(url, timeout=5) as res:
        return json.load(res).get("requests", [])


def claims(token):
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("access token is not a JWT (%d segments)" % len(parts))
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def one_line(err):
    text = " ".join(("%s: %s" % (type(err).__name__, err)).split())
    return text if len(text) <= 1500 else text[:1500] + "…"


def scope_of(resource):
    return resource + ".default" if resource.endswith("/") else resource + "/.default"


def check(resource, expected_app_id, o, expiry_tolerance=0, process_per_call=False):
    """The matrix's acceptance rules, the same in every driver (test/compat/drivers/protocol.ts)."""
    p = []
    now = int(time.time())
    if o["requests1"] < 1:
        p.append("first call did not reach the endpoint under test")
    # A CLI starts a new process per command, so its in-process cache cannot serve the second command;
    # there the rule is the other half of the criterion: the same token and expiry, far in the future.
    if not process_per_call and o["requests2"] != 0:
        p.append("second call was not served from the client's cache (%d more token requests reached the endpoint)" % o["requests2"])
    if not o["sameToken"] or abs(o["expiresOn1"] - o["expiresOn2"]) > expiry_tolerance:
        p.append("second call returned a different token or expiry")
    if o["expiresOn1"] < now + 300:
        p.append("expiry %d is not far in the future (now %d)" % (o["expiresOn1"], now))
    if abs(o["expiresOn1"] - o["exp"]) > 120:
        p.append("expiry %d differs from the token's exp %d" % (o["expiresOn1"], o["exp"]))
    if o["aud"] not in (resource, resource.rstrip("/")):
        p.append('aud "%s", expected "%s"' % (o["aud"], resource))
    if o["appid"] != expected_app_id:
        p.append('appid "%s", expected "%s"' % (o["appid"], expected_app_id))
    return p


def run_two_calls(spec, variant, make, get, expiry_tolerance=0):
    """make() builds the client, get(client) returns (token, expires_on_epoch_seconds)."""
    result = {"variant": variant["id"]}
    try:
        before = count(spec["counterUrl"])
    except Exception as err:  # noqa: BLE001 - reported, not hidden
        return dict(result, status="fail", error="driver: request counter: " + one_line(err))
    try:
        client = make()
        t1, e1 = get(client)
    except Exception as err:  # noqa: BLE001
        return dict(result, status="unsupported", error=one_line(err))
    try:
        mid = count(spec["counterUrl"])
        t2, e2 = get(client)
        after = count(spec["counterUrl"])
        c = claims(t1)
        o = {
            "requests1": mid - before,
            "requests2": after - mid,
            "expiresOn1": int(e1),
            "expiresOn2": int(e2),
            "sameToken": t1 == t2,
            "aud": c.get("aud", ""),
            "appid": c.get("appid", ""),
            "exp": int(c.get("exp", 0)),
        }
    except Exception as err:  # noqa: BLE001
        return dict(result, status="fail", error="after a first token: " + one_line(err))
    # A release without a token cache in its credential: the second-call rule is the CLIs' one (same token and expiry).
    problems = check(spec["resource"], variant["expectedAppId"], o, expiry_tolerance,
                     process_per_call=spec.get("clientCache") is False)
    result.update(status="fail" if problems else "ok", observed=o)
    if problems:
        result["error"] = "; ".join(problems)
    return result


def main(run_variant, dists):
    spec = json.loads(sys.argv[1])
    vers = versions(*dists)
    for variant in spec["variants"]:
        line = run_variant(spec, variant)
        line["versions"] = vers
        print(json.dumps(line), flush=True)
