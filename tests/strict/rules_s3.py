"""S3 rules. moto dispatches S3 outside BaseResponse.call_action (S3Response.bucket_response /
key_response), so the generic model check does not see S3 requests; S3's model carries few
constraints anyway (no tag pattern). These named rules cover what the project relies on.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ETree
from typing import Any
from urllib.parse import parse_qsl

from moto.s3.exceptions import S3ClientError

from . import log_refusal, rule
from .model import java_pattern

TAG_PATTERN = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"
POLICY_MAX_BYTES = 20 * 1024


class S3StrictError(S3ClientError):
    """An S3 error with its HTTP status (moto's S3 model lacks most error shapes)."""

    def __init__(self, code: str, message: str, http_status: int = 400):
        super().__init__(code, message)
        self.http_status = http_status
        log_refusal(code, message)


@rule(
    "s3-tag-syntax",
    "s3",
    "InvalidTag",
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html ; "
    "https://docs.aws.amazon.com/AmazonS3/latest/API/API_Tag.html ; "
    "https://docs.aws.amazon.com/tag-editor/latest/userguide/best-practices-and-strats.html",
)
def check_tags(tags: list[tuple[str, str]], bucket: bool) -> None:
    """S3 tags: key 1-128 and value 0-256 Unicode characters of [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@],
    unique keys, no user tag key starting with aws:, at most 50 tags on a bucket (10 on an
    object, which moto already refuses). PutBucketTagging, PutObjectTagging, and x-amz-tagging
    on PutObject / CopyObject / CreateMultipartUpload. Source: Amazon S3 User Guide,
    "Categorizing your storage using tags"; S3 API Reference, "Tag"."""
    allowed = java_pattern(TAG_PATTERN)
    seen: set[str] = set()
    for key, value in tags:
        if key in seen:
            raise S3StrictError("InvalidTag", "Cannot provide multiple Tags with the same key")
        seen.add(key)
        if key.lower().startswith("aws:"):
            raise S3StrictError("InvalidTag", "System tags cannot be added/updated by requester")
        if not 1 <= len(key) <= 128:
            raise S3StrictError("InvalidTag", "The TagKey you have provided is too long, max 128")
        if len(value) > 256:
            raise S3StrictError("InvalidTag", "The TagValue you have provided is too long, max 256")
        if allowed.fullmatch(key) is None:
            raise S3StrictError("InvalidTag", "The TagKey you have provided is invalid")
        if allowed.fullmatch(value) is None:
            raise S3StrictError("InvalidTag", "The TagValue you have provided is invalid")
    if bucket and len(tags) > 50:
        raise S3StrictError("InvalidTag", "Bucket tag count cannot be greater than 50")


def _tags_in_body(body: Any) -> list[tuple[str, str]]:
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    root = ETree.fromstring(body)
    tags = []
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Tag":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
        tags.append((fields.get("Key", ""), fields.get("Value", "")))
    return tags


@rule(
    "s3-bucket-policy-size",
    "s3",
    "PolicyTooLarge",
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/add-bucket-policy.html",
)
def check_policy_size(policy: Any) -> None:
    """A bucket policy is at most 20 KB (20,480 bytes of the policy without insignificant
    whitespace). The code is the one S3-compatible servers copy from S3 (MinIO's
    PolicyTooLarge); the AWS page documents the limit, not the code. Source: Amazon S3 User
    Guide, "Adding a bucket policy by using the Amazon S3 console" ("limited to 20 KB")."""
    text = policy.decode("utf-8") if isinstance(policy, bytes) else str(policy)
    try:
        compact = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        compact = re.sub(r"\s+", "", text)
    if len(compact.encode("utf-8")) > POLICY_MAX_BYTES:
        raise S3StrictError("PolicyTooLarge", "Policies must be less than 20KB")


# Condition keys whose fixed value makes a statement non-public (S3 "The meaning of public").
_RESTRICTING_KEYS = {
    "aws:sourcearn", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceaccount", "aws:sourceowner",
    "aws:sourceorgid", "aws:sourceorgpaths", "aws:principalorgid", "aws:principalorgpaths",
    "aws:principalaccount", "aws:principalarn", "aws:userid", "aws:principalservicename",
    "s3:dataaccesspointarn", "s3:dataaccesspointaccount",
}


def _is_public_statement(statement: dict[str, Any]) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    principal = statement.get("Principal")
    if isinstance(principal, dict):
        principal = principal.get("AWS")
    principals = principal if isinstance(principal, list) else [principal]
    if "*" not in principals:
        return False
    for operator, pairs in (statement.get("Condition") or {}).items():
        if operator.lower().startswith(("stringnot", "arnnot", "notip")) or not isinstance(pairs, dict):
            continue
        for key, values in pairs.items():
            values = values if isinstance(values, list) else [values]
            fixed = all("*" not in str(v) and "?" not in str(v) for v in values)
            if key.lower() == "aws:sourceip":
                if fixed and not any(str(v).endswith("/0") for v in values):
                    return False
            elif key.lower() in _RESTRICTING_KEYS and fixed:
                return False
    return True


@rule(
    "s3-block-public-policy",
    "s3",
    "AccessDenied (403)",
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html",
)
def check_public_policy(backend: Any, bucket_name: str, policy: Any) -> None:
    """With BlockPublicPolicy on (bucket or account), PutBucketPolicy of a public policy
    (Allow to Principal * / {"AWS":"*"} without a fixed-value restricting condition, per
    "The meaning of public") is refused with 403 AccessDenied. Source: Amazon S3 User Guide,
    "Blocking public access to your Amazon S3 storage" (BlockPublicPolicy)."""
    bucket = backend.get_bucket(bucket_name)
    blocks = bool(bucket.public_access_block and bucket.public_access_block.block_public_policy)
    if not blocks:
        try:
            from moto.s3control.models import s3control_backends

            partition = getattr(backend, "partition", "aws")
            account_block = s3control_backends[backend.account_id][partition].public_access_block
            blocks = bool(account_block and account_block.block_public_policy)
        except Exception:  # noqa: BLE001 - no account-level block
            blocks = False
    if not blocks:
        return
    text = policy.decode("utf-8") if isinstance(policy, bytes) else str(policy)
    try:
        statements = json.loads(text).get("Statement", [])
    except (ValueError, AttributeError):
        return
    statements = statements if isinstance(statements, list) else [statements]
    if any(isinstance(s, dict) and _is_public_statement(s) for s in statements):
        raise S3StrictError(
            "AccessDenied",
            f"User: arn:aws:iam::{backend.account_id}:root is not authorized to perform: "
            f"s3:PutBucketPolicy on resource: \"arn:aws:s3:::{bucket_name}\" because public "
            "policies are blocked by the BlockPublicPolicy block public access setting.",
            403,
        )


_IAM_ARN = re.compile(r"^arn:[a-z-]+:iam::(\d{12}):(user|role)(/.*)?/([^/]+)$")


@rule(
    "s3-bucket-policy-principal",
    "s3",
    "MalformedPolicy",
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html",
)
def check_policy_principals(backend: Any, policy: Any) -> None:
    """S3 resolves every IAM user or role ARN in a bucket policy's Principal when the policy is
    put: an ARN naming no such principal (a role ARN without the role's path, e.g. an IAM
    Identity Center role under /aws-reserved/sso.amazonaws.com/, or a deleted user) is refused
    with MalformedPolicy "Invalid principal in policy". Checked for principals of the emulator's
    own account (another account's principals cannot be known here). Source: IAM User Guide,
    "AWS JSON policy elements: Principal" (role and user ARNs, paths)."""
    text = policy.decode("utf-8") if isinstance(policy, bytes) else str(policy)
    try:
        statements = json.loads(text).get("Statement", [])
    except (ValueError, AttributeError):
        return
    statements = statements if isinstance(statements, list) else [statements]
    from moto.iam.models import iam_backends

    iam = iam_backends[backend.account_id]["global"]
    for st in statements:
        principal = st.get("Principal") if isinstance(st, dict) else None
        arns = principal.get("AWS") if isinstance(principal, dict) else None
        for arn in arns if isinstance(arns, list) else [arns]:
            m = _IAM_ARN.match(str(arn or ""))
            if not m or m.group(1) != backend.account_id:
                continue
            kind, path, name = m.group(2), (m.group(3) or "") + "/", m.group(4)
            entities = iam.users if kind == "user" else iam.roles
            known = any(
                getattr(e, "name", None) == name and (getattr(e, "path", "/") or "/") == path
                for e in entities.values()
            )
            if not known:
                raise S3StrictError("MalformedPolicy", "Invalid principal in policy")


@rule(
    "s3-logging-same-region",
    "s3",
    "CrossLocationLoggingProhibitted",
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html",
)
def check_logging_region(backend: Any, bucket_name: str, logging_config: Any) -> None:
    """Server access logs go to a bucket in the same Region as the source bucket: PutBucketLogging
    with a target bucket elsewhere is refused with CrossLocationLoggingProhibitted (S3's own
    spelling). Source: Amazon S3 User Guide, "Enabling Amazon S3 server access logging"
    ("The source bucket and destination bucket must be in the same AWS Region")."""
    target = (logging_config or {}).get("TargetBucket") if isinstance(logging_config, dict) else None
    if not target:
        return
    try:
        source_region = backend.get_bucket(bucket_name).region_name
        target_region = backend.get_bucket(target).region_name
    except Exception:  # noqa: BLE001 - moto answers NoSuchBucket itself
        return
    if source_region != target_region:
        raise S3StrictError(
            "CrossLocationLoggingProhibitted",
            "Cross S3 location logging not allowed. ",
            403,
        )


def install() -> None:
    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    original_bucket_body = S3Response._bucket_tagging_from_body
    original_xml = S3Response._tagging_from_xml
    original_headers = S3Response._tagging_from_headers
    original_policy = S3Backend.put_bucket_policy

    def bucket_tagging_from_body(self: Any) -> dict[str, str]:
        check_tags(_tags_in_body(self.body), bucket=True)
        return original_bucket_body(self)

    def tagging_from_xml(self: Any) -> dict[str, str]:
        check_tags(_tags_in_body(self.body), bucket=False)
        return original_xml(self)

    def tagging_from_headers(self: Any, headers: Any) -> dict[str, str]:
        raw = headers.get("x-amz-tagging")
        if raw:
            check_tags(parse_qsl(raw, keep_blank_values=True), bucket=False)
        return original_headers(self, headers)

    def put_bucket_policy(self: Any, bucket_name: str, policy: Any) -> None:
        check_policy_size(policy)
        check_policy_principals(self, policy)
        check_public_policy(self, bucket_name, policy)
        return original_policy(self, bucket_name, policy)

    original_logging = S3Backend.put_bucket_logging

    def put_bucket_logging(self: Any, bucket_name: str, logging_config: Any) -> None:
        check_logging_region(self, bucket_name, logging_config)
        return original_logging(self, bucket_name, logging_config)

    S3Backend.put_bucket_logging = put_bucket_logging

    S3Response._bucket_tagging_from_body = bucket_tagging_from_body
    S3Response._tagging_from_xml = tagging_from_xml
    S3Response._tagging_from_headers = tagging_from_headers
    S3Backend.put_bucket_policy = put_bucket_policy
