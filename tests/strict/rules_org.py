"""Organizations: only the management account or a delegated administrator reads the tree.

moto answers ListParents from any account's own (empty) backend, so a deployment in an account
that is neither would look as if it could read where accounts sit.
"""

from __future__ import annotations

from typing import Any

from . import StrictError, rule
from .model import on_request


@rule(
    "organizations-management-or-delegated",
    "organizations",
    "AccessDeniedException / AWSOrganizationsNotInUseException",
    "https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListParents.html",
)
@on_request("organizations", "ListParents", "ListChildren")
def check_caller(response: Any, params: dict[str, Any]) -> None:
    """ListParents and ListChildren "can be called only from the organization's management
    account or by a member account that is a delegated administrator": an account outside any
    organization gets AWSOrganizationsNotInUseException, any other member AccessDeniedException.
    Source: AWS Organizations API Reference, ListParents and ListChildren. (moto then answers a
    delegated administrator from its own backend, not the organization's: the tests read the
    tree as the management account.)"""
    from moto.organizations.models import organizations_backends

    account = response.current_account
    if organizations_backends[account]["aws"].org is not None:
        return
    member = organizations_backends.master_accounts.get(account)
    if member is None:
        raise StrictError(
            "AWSOrganizationsNotInUseException",
            "Your account is not a member of an organization.",
        )
    management, partition = member
    admins = organizations_backends[management][partition].admins
    if any(a.account.id == account for a in admins):
        return
    raise StrictError(
        "AccessDeniedException", "You don't have permissions to access this resource."
    )
