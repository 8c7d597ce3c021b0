"""STS: AssumeRole is refused unless the role exists and its trust policy lets the caller in.

moto assumes any role ARN, existing or not, whatever its trust policy says, so a cross-account
response would "work" against a member account that never deployed the role.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from . import StrictError, rule
from .model import on_request


def _caller(response: Any) -> tuple[str, str]:
    """(account, ARN) of the caller, from its access key."""
    from moto.iam.models import iam_backends

    key = response.get_access_key()
    account = response.current_account
    access_key = iam_backends[account]["aws"].access_keys.get(key)
    if access_key is None:
        return account, f"arn:aws:iam::{account}:root"
    role_arn = getattr(access_key, "role_arn", None)
    if role_arn:
        return account, role_arn
    return account, f"arn:aws:iam::{account}:user/{access_key.user_name}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principal_matches(statement: dict[str, Any], account: str, arn: str) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    aws = principal.get("AWS") if isinstance(principal, dict) else None
    return any(
        p in ("*", arn, account, f"arn:aws:iam::{account}:root") for p in _as_list(aws or [])
    )


def _conditions_hold(statement: dict[str, Any], external_id: str | None) -> bool:
    """sts:ExternalId is compared (StringEquals); other keys (aws:PrincipalOrgID, ...) are not
    evaluated and count as met (tests/README.md says so)."""
    for operator, pairs in (statement.get("Condition") or {}).items():
        for key, wanted in (pairs or {}).items():
            if key.lower() == "sts:externalid":
                if operator != "StringEquals" or external_id not in _as_list(wanted):
                    return False
    return True


@rule(
    "sts-assume-role-trust",
    "sts",
    "AccessDenied (403)",
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html",
)
@on_request("sts", "AssumeRole")
def check_trust(response: Any, params: dict[str, Any]) -> None:
    """AssumeRole succeeds only for a role that exists and whose trust policy allows
    sts:AssumeRole to the caller (its ARN, its account or `*`), with the ExternalId the
    policy's `sts:ExternalId` condition names; otherwise AccessDenied, "User: <caller> is not
    authorized to perform: sts:AssumeRole on resource: <role>". Sources: IAM User Guide, "AWS
    JSON policy elements: Principal" and "Access to AWS accounts owned by third parties"
    (ExternalId); STS API Reference, AssumeRole."""
    from moto.iam.models import iam_backends

    role_arn = params.get("RoleArn") or ""
    account, arn = _caller(response)
    denied = StrictError(
        "AccessDenied",
        f"User: {arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        403,
    )
    parts = role_arn.split(":")
    if len(parts) < 6 or not parts[5].startswith("role/"):
        raise denied
    name = parts[5].split("/")[-1]
    roles = iam_backends[parts[4]]["aws"].roles.values()
    role = next((r for r in roles if r.name == name), None)
    if role is None:
        raise denied
    document = role.assume_role_policy_document
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    for statement in _as_list(document.get("Statement") or []):
        actions = [a.lower() for a in _as_list(statement.get("Action") or [])]
        if (
            statement.get("Effect") == "Allow"
            and any(a in ("sts:assumerole", "sts:*", "*") for a in actions)
            and _principal_matches(statement, account, arn)
            and _conditions_hold(statement, params.get("ExternalId"))
        ):
            return
    raise denied


@rule(
    "sts-region-enabled",
    "sts",
    "RegionDisabledException (403)",
    "https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html",
)
@on_request("sts", "AssumeRole")
def check_region_enabled(response: Any, params: dict[str, Any]) -> None:
    """AssumeRole at the STS endpoint of a Region the role's account has not enabled is refused
    with RegionDisabledException ("STS is not activated in the requested region for the account
    that is being asked to generate credentials"). moto enables every Region in every account;
    the launcher's STRICT_DISABLED_REGIONS (`<account>:<region>,...`) names the ones a test
    turns off. Source: STS API Reference, AssumeRole, Errors."""
    import os

    disabled = {
        tuple(item.split(":", 1))
        for item in os.environ.get("STRICT_DISABLED_REGIONS", "").split(",")
        if ":" in item
    }
    parts = (params.get("RoleArn") or "").split(":")
    account = parts[4] if len(parts) > 4 else ""
    if (account, response.region) in disabled:
        raise StrictError(
            "RegionDisabledException",
            f"STS is not activated in this region for account:{account}. Your account "
            "administrator can activate STS in this region using the IAM Console.",
            403,
        )
