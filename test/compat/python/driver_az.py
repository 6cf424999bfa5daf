"""Azure CLI driver: `az login --identity` (system-assigned and --client-id) and `az account get-access-token`.

`az login --identity` gets an ARM token from the managed-identity endpoint, decodes it for `tid`, then lists
subscriptions at ARM (docs/protocols.md §10). ARM is unreachable here, so a login cell is OK when the token request
reached the endpoint under test and answered 200 with the right `aud`/`appid` (seen by the harness's counting
proxy), and the command then failed at the ARM step (its error names management.azure.com) — or succeeded.

`az account get-access-token` needs an account in the profile. The harness's AZURE_CONFIG_DIR is seeded with the
tenant-level managed-identity account that `az login --identity --allow-no-subscriptions` writes after its ARM
call, so the command runs its real managed-identity token path (MSAL's ManagedIdentityClient) without a login.
Every az command is a new process, so az's in-process MSAL cache cannot serve a second command: the second-call
rule there is "same token, same expiry, far in the future" (the endpoint's own cache).
"""
import datetime
import json
import os
import subprocess
import sys
import time
import uuid

import compat_common

ARM_RESOURCE = "https://management.core.windows.net/"
AZ_TIMEOUT = 60


def az(spec, *args):
    env = dict(os.environ)
    # Isolated profile; no telemetry upload and no survey/upgrade prompts (network-free CLI runs).
    env.update(AZURE_CONFIG_DIR=spec["azureConfigDir"], AZURE_CORE_COLLECT_TELEMETRY="false",
               AZURE_CORE_SURVEY_MESSAGE="false", AZURE_CORE_CHECK_FOR_UPGRADE="false")
    exe = os.path.join(os.path.dirname(sys.executable), "az")
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=AZ_TIMEOUT, check=False)


def tail(text, n=1500):
    """az's own error: its `ERROR:` lines, else the last line of a traceback (the exception), never the whole dump."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    text = " ".join(errors or lines[-1:])
    return text if len(text) <= n else "…" + text[-n:]


def seed_profile(spec, variant):
    os.makedirs(spec["azureConfigDir"], exist_ok=True)
    sel = variant.get("selector")
    info = "MSI" if not sel else {"client-id": "MSIClient", "object-id": "MSIObject", "resource-id": "MSIResource"}[
        sel["kind"]] + "-" + sel["value"]
    tenant = spec["tenantId"]
    profile = {"installationId": str(uuid.uuid4()), "subscriptions": [{
        "id": tenant, "name": "N/A(tenant level account)", "state": "Enabled",
        "user": {"name": "userAssignedIdentity" if sel else "systemAssignedIdentity", "type": "servicePrincipal",
                 "assignedIdentityInfo": info},
        "isDefault": True, "tenantId": tenant, "environmentName": "AzureCloud"}]}
    with open(os.path.join(spec["azureConfigDir"], "azureProfile.json"), "w", encoding="utf-8") as f:
        json.dump(profile, f)


def login(spec, variant):
    result = {"variant": variant["id"]}
    args = ["login", "--identity", "--allow-no-subscriptions", "--output", "none"]
    sel = variant.get("selector")
    if sel:
        args += ["--" + sel["kind"], sel["value"]]
    before = compat_common.count(spec["counterUrl"])
    try:
        proc = az(spec, *args)
        if sel and "unrecognized arguments: --" + sel["kind"] in proc.stderr:
            # Before `--client-id` (2.69) a user-assigned identity was named with `--username` (Debian's 2.45 too).
            proc = az(spec, *args[:-2], "--username", sel["value"])
    except subprocess.TimeoutExpired:
        return dict(result, status="fail", error="az login did not finish within %d s" % AZ_TIMEOUT)
    tokens = [r for r in compat_common.requests_log(spec["counterUrl"]) if r.get("aud")][before:]
    err = tail(proc.stderr)
    if not tokens:
        return dict(result, status="unsupported", error=err or "az login made no successful token request")
    t = tokens[-1]
    o = {"requests1": len(tokens), "exitCode": proc.returncode, "aud": t["aud"], "appid": t["appid"]}
    problems = []
    if t["aud"] not in (ARM_RESOURCE, ARM_RESOURCE.rstrip("/")):
        problems.append('aud "%s", expected "%s"' % (t["aud"], ARM_RESOURCE))
    if t["appid"] != variant["expectedAppId"]:
        problems.append('appid "%s", expected "%s"' % (t["appid"], variant["expectedAppId"]))
    # The ARM host is unreachable here; newer CLIs name it, older ones (msrestazure) print only the resolver error.
    arm_step = any(s in proc.stderr for s in ("management.azure.com", "Name or service not known", "Failed to resolve"))
    if proc.returncode != 0 and not arm_step:
        problems.append("az login failed after its token request, but not at the ARM step: " + err)
    result.update(status="fail" if problems else "ok", observed=o, armStep=err if proc.returncode else "succeeded")
    if problems:
        result["error"] = "; ".join(problems)
    return result


def get_access_token(spec, variant):
    seed_profile(spec, variant)
    resource = spec["resource"]

    def get(_):
        proc = az(spec, "account", "get-access-token", "--resource", resource, "--output", "json")
        if proc.returncode != 0:
            raise RuntimeError(tail(proc.stderr))
        out = json.loads(proc.stdout)
        if "expires_on" in out:
            return out["accessToken"], int(out["expires_on"])
        # Older CLIs print only `expiresOn`, local time without a zone.
        when = datetime.datetime.strptime(out["expiresOn"], "%Y-%m-%d %H:%M:%S.%f")
        return out["accessToken"], int(time.mktime(when.timetuple()))

    result = compat_common.run_two_calls(spec, variant, lambda: None, get, expiry_tolerance=2)
    if result.get("observed"):
        # Re-check with the CLI rule (see the module docstring).
        problems = compat_common.check(resource, variant["expectedAppId"], result["observed"], 2, process_per_call=True)
        result["status"] = "fail" if problems else "ok"
        result.pop("error", None)
        if problems:
            result["error"] = "; ".join(problems)
    return result


def get_access_token_no_login(spec, variant):
    """Without an account in the profile: does the CLI fall back to the managed identity on its own?"""
    result = {"variant": variant["id"]}
    before = compat_common.count(spec["counterUrl"])
    proc = az(spec, "account", "get-access-token", "--resource", spec["resource"], "--output", "json")
    served = compat_common.count(spec["counterUrl"]) - before
    if proc.returncode != 0:
        return dict(result, status="unsupported", error=tail(proc.stderr))
    return dict(result, status="fail", error="az account get-access-token succeeded without an account (%d tokens from the endpoint); "
                "the matrix has no rule for that yet" % served)


def run_variant(spec, variant):
    if variant["credential"] == "az-login":
        return login(spec, variant)
    if variant["credential"] == "az-get-access-token-no-login":
        return get_access_token_no_login(spec, variant)
    return get_access_token(spec, variant)


if __name__ == "__main__":
    compat_common.main(run_variant, ["azure-cli", "azure-cli-core", "msal"])
