"""IAM, EC2 and Elastic Load Balancing limits that the botocore models do not carry."""

from __future__ import annotations

import re
from typing import Any

from . import StrictError, log_refusal, rule
from .model import on_request

INLINE_POLICY_QUOTA = {"user": 2048, "role": 10240, "group": 5120}


def _size(document: str) -> int:
    return len(re.sub(r"\s", "", document))


@rule(
    "iam-inline-policy-aggregate-size",
    "iam",
    "LimitExceeded (409)",
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html",
)
def check_inline_quota(kind: str, name: str, entity: Any, policy_name: str, document: str) -> None:
    """The sum of all inline policies of a user is at most 2,048 characters, of a role 10,240,
    of a group 5,120; IAM does not count white space (IAM and AWS STS quotas, "IAM and STS
    character limits")."""
    others = sum(_size(doc) for pname, doc in entity.policies.items() if pname != policy_name)
    limit = INLINE_POLICY_QUOTA[kind]
    if others + _size(document) > limit:
        from moto.iam.exceptions import LimitExceededException

        message = f"Maximum policy size of {limit} bytes exceeded for {kind} {name}"
        log_refusal("LimitExceeded", message)
        raise LimitExceededException(message)


@rule(
    "iam-tags-per-resource",
    "iam",
    "LimitExceeded (409)",
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html",
)
@on_request("iam", "TagUser", "TagRole")
def check_iam_tag_count(response: Any, params: dict[str, Any]) -> None:
    """An IAM user or role has at most 50 tags: TagUser/TagRole that would leave more
    (existing keys plus new ones, keys compared case-insensitively) is refused. A single
    request with more than 50 tags is already a ValidationError from the model. Source: IAM
    User Guide, "IAM and AWS STS quotas" (tags per IAM resource: 50); the exact message is
    modelled on IAM's other quota messages."""
    from moto.iam.models import iam_backends

    backend = iam_backends[response.current_account][response.partition]
    try:
        if "UserName" in params:
            kind, current = "User", backend.list_user_tags(params["UserName"])
        else:
            kind, current = "Role", backend.get_role(params["RoleName"]).tags
    except Exception:  # noqa: BLE001 - let moto answer NoSuchEntity
        return
    keys = {t["Key"].lower() for t in current} | {t["Key"].lower() for t in params.get("Tags", [])}
    if len(keys) > 50:
        raise StrictError("LimitExceeded", f"Cannot exceed quota for TagsPer{kind}: 50", 409)


def _ec2_tag_problem(tags: list[dict[str, Any]]) -> StrictError | None:
    if len(tags) > 50:
        return StrictError(
            "TagLimitExceeded", "The maximum number of Tags for a resource has been reached."
        )
    for tag in tags:
        key, value = tag.get("Key") or "", tag.get("Value") or ""
        if key.lower().startswith("aws:"):
            return StrictError(
                "InvalidParameterValue",
                f"Value ( {key} ) for parameter key is invalid. "
                "Tag keys starting with 'aws:' are reserved for internal use",
            )
        if len(key) > 128:
            return StrictError(
                "InvalidParameterValue", "Tag key exceeds the maximum length of 128 characters"
            )
        if len(value) > 256:
            return StrictError(
                "InvalidParameterValue", "Tag value exceeds the maximum length of 256 characters"
            )
    return None


@rule(
    "ec2-tag-restrictions",
    "ec2",
    "InvalidParameterValue / TagLimitExceeded",
    "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html#tag-restrictions ; "
    "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html",
)
def check_ec2_tags(response: Any, params: dict[str, Any]) -> None:
    """EC2 tags: key at most 128 and value at most 256 characters, no aws: key prefix, at most
    50 tags per resource; for CreateTags and for TagSpecifications of any action (moto itself
    refuses CreateTags that would bring a resource over 50). Source: Amazon EC2 User Guide,
    "Tag your Amazon EC2 resources", "Tag restrictions"."""
    groups = [params.get("Tags") or []] if response._get_action() == "CreateTags" else []
    groups += [spec.get("Tags") or [] for spec in params.get("TagSpecifications") or []]
    for tags in groups:
        problem = _ec2_tag_problem(tags)
        if problem:
            raise problem


def install_ec2_tag_rule() -> None:
    from moto.core.utils import get_service_model

    model = get_service_model("ec2")
    for action in model.operation_names:
        members = model.operation_model(action).input_shape
        if action == "CreateTags" or (members and "TagSpecifications" in members.members):
            on_request("ec2", action)(check_ec2_tags)


@rule(
    "ec2-share-default-key-snapshot",
    "ec2",
    "InvalidParameter (the refusal is documented, its code is not)",
    "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifySnapshotAttribute.html",
)
@on_request("ec2", "ModifySnapshotAttribute")
def check_snapshot_share(response: Any, params: dict[str, Any]) -> None:
    """"Snapshots encrypted with your default KMS key cannot be shared with other accounts",
    and "encrypted snapshots ... cannot be made public": ModifySnapshotAttribute adding a
    create-volume permission (an account or the group `all`) to a snapshot encrypted with the
    account's `aws/ebs` key, or `all` to any encrypted one, is refused. Source: EC2 API
    Reference, ModifySnapshotAttribute."""
    modifications = params.get("CreateVolumePermission") or {}
    adds = list(modifications.get("Add") or [])
    if (params.get("OperationType") or "").lower() == "add":
        adds += [{"UserId": u} for u in params.get("UserIds") or []]
        adds += [{"Group": g} for g in params.get("GroupNames") or []]
    if not adds:
        return
    from moto.ec2.models import ec2_backends
    from moto.kms.models import kms_backends

    account, region = response.current_account, response.region
    try:
        snapshot = ec2_backends[account][region].get_snapshot(params.get("SnapshotId"))
    except Exception:  # noqa: BLE001 - moto answers InvalidSnapshot.NotFound
        return
    if not snapshot.encrypted:
        return
    if any(a.get("Group") == "all" for a in adds):
        raise StrictError("InvalidParameter", "Encrypted snapshots cannot be made public.")
    kms = kms_backends[account][region]
    try:
        default = kms.describe_key("alias/aws/ebs").arn if kms.alias_exists("alias/aws/ebs") else None
    except Exception:  # noqa: BLE001
        default = None
    key = snapshot.kms_key_id or default
    if key is not None and key in (default, (default or "").split("/")[-1]):
        raise StrictError(
            "InvalidParameter",
            "Snapshots encrypted with the AWS managed key (aws/ebs) cannot be shared.",
        )


@rule(
    "ec2-spot-termination-protection",
    "ec2",
    "UnsupportedOperation",
    "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_ChangingDisableAPITermination.html",
)
@on_request("ec2", "ModifyInstanceAttribute")
def check_spot_termination(response: Any, params: dict[str, Any]) -> None:
    """Termination protection cannot be set on a Spot Instance: ModifyInstanceAttribute of
    disableApiTermination on one is refused (AWS refuses the attribute on Spot Instances
    whatever its value). Source: Amazon EC2 User Guide, "Enable termination protection"
    ("You can't enable termination protection for Spot Instances")."""
    touches = params.get("DisableApiTermination") is not None or (
        (params.get("Attribute") or "") == "disableApiTermination"
    )
    if not touches:
        return
    from moto.ec2.models import ec2_backends

    try:
        instance = ec2_backends[response.current_account][response.region].get_instance(
            params.get("InstanceId")
        )
    except Exception:  # noqa: BLE001 - moto answers InvalidInstanceID.NotFound
        return
    if getattr(instance, "lifecycle", None) == "spot":
        raise StrictError(
            "UnsupportedOperation",
            "Modifying 'disableApiTermination' is not supported for spot instances.",
        )


NACL_RULES_PER_DIRECTION = 20


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("true", "1")


def _network_acl(response: Any, params: dict[str, Any]) -> Any:
    from moto.ec2.models import ec2_backends

    try:
        return ec2_backends[response.current_account][response.region].get_network_acl(
            params.get("NetworkAclId")
        )
    except Exception:  # noqa: BLE001 - moto answers InvalidNetworkAclID.NotFound
        return None


@rule(
    "ec2-nacl-rules-per-acl",
    "ec2",
    "NetworkAclEntryLimitExceeded",
    "https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html#vpc-limits-nacls",
)
@on_request("ec2", "CreateNetworkAclEntry")
def check_nacl_rule_count(response: Any, params: dict[str, Any]) -> None:
    """A network ACL holds at most 20 inbound and 20 outbound rules per IP family (default
    quota; "enforced separately for IPv4 rules and IPv6 rules", "includes the default deny
    rules", 32767 and 32768): CreateNetworkAclEntry beyond that is refused. Source: Amazon VPC
    quotas, "Network ACLs", "Inbound or outbound rules per network ACL"; the code from the EC2
    API error codes."""
    acl = _network_acl(response, params)
    if acl is None:
        return
    egress = _truthy(params.get("Egress"))
    ipv6 = bool(params.get("Ipv6CidrBlock"))
    same_way = [
        e for e in acl.network_acl_entries
        if _truthy(e.egress) == egress and bool(getattr(e, "ipv6_cidr_block", None)) == ipv6
    ]
    if len(same_way) >= NACL_RULES_PER_DIRECTION:
        raise StrictError(
            "NetworkAclEntryLimitExceeded",
            f"The maximum number of {'egress' if egress else 'ingress'} entries for network ACL "
            f"'{params.get('NetworkAclId')}' has been reached.",
        )


@rule(
    "ec2-nacl-entry-not-found",
    "ec2",
    "InvalidNetworkAclEntry.NotFound",
    "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html",
)
@on_request("ec2", "DeleteNetworkAclEntry")
def check_nacl_entry_exists(response: Any, params: dict[str, Any]) -> None:
    """DeleteNetworkAclEntry of a rule number the ACL does not have (in that direction) is
    refused with InvalidNetworkAclEntry.NotFound (moto would answer 500). Source: EC2 API
    error codes."""
    acl = _network_acl(response, params)
    if acl is None:
        return
    egress = _truthy(params.get("Egress"))
    number = int(params.get("RuleNumber") or 0)
    if not any(
        _truthy(e.egress) == egress and int(e.rule_number) == number
        for e in acl.network_acl_entries
    ):
        raise StrictError(
            "InvalidNetworkAclEntry.NotFound",
            f"The network ACL entry identified by {number} could not be found.",
        )


@rule(
    "elbv2-register-target-vpc",
    "elbv2",
    "InvalidTarget",
    "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_RegisterTargets.html",
)
@on_request("elbv2", "RegisterTargets")
def check_target_vpc(response: Any, params: dict[str, Any]) -> None:
    """An instance can only be registered in a target group of its own VPC: RegisterTargets of
    an instance from another VPC is refused ("The specified target does not exist, is not in
    the same VPC as the target group, or has an unsupported instance type"). Source: Elastic
    Load Balancing API Reference, RegisterTargets, Errors: InvalidTarget."""
    from moto.ec2.models import ec2_backends
    from moto.elbv2.models import elbv2_backends

    group = elbv2_backends[response.current_account][response.region].target_groups.get(
        params.get("TargetGroupArn")
    )
    if group is None or group.target_type != "instance":
        return
    ec2 = ec2_backends[response.current_account][response.region]
    for target in params.get("Targets") or []:
        instance = ec2.get_instance_by_id(target.get("Id"))
        if instance is not None and instance.vpc_id != group.vpc_id:
            raise StrictError(
                "InvalidTarget",
                f"The following targets are not in the target group VPC '{group.vpc_id}': "
                f"'{target.get('Id')}'",
            )


def install() -> None:
    from moto.iam.models import IAMBackend

    def wrap(kind: str, method: str, getter: str) -> None:
        original = getattr(IAMBackend, method)

        def put_policy(self: Any, name: str, policy_name: str, policy_json: str) -> Any:
            entity = getattr(self, getter)(name)
            check_inline_quota(kind, name, entity, policy_name, policy_json)
            return original(self, name, policy_name, policy_json)

        setattr(IAMBackend, method, put_policy)

    wrap("user", "put_user_policy", "get_user")
    wrap("role", "put_role_policy", "get_role")
    wrap("group", "put_group_policy", "get_group")
    install_ec2_tag_rule()
