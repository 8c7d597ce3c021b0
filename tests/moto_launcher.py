"""Start moto's server with fixes for moto bugs that misreport AWS state.

Used by the Rust test harness (tests/src/lib.rs) instead of plain `moto_server`; takes the same
arguments. Each patch below names the bug and what real AWS does. Product code never depends on
these patches: they only make the emulator report what AWS would.
"""

import sys

from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.s3.responses import S3Response


def _eni_groups(self):
    # moto 5.2.1 reports every attached ENI with the union of its own groups and the
    # instance's launch groups, so a security-group swap on an ENI never shows as complete.
    # In AWS, security groups belong to each ENI; the instance view is the primary ENI's.
    return self._group_set


NetworkInterface.group_set = property(_eni_groups)


def _bucket_versioning(self):
    # moto 5.2.1 answers GetBucketVersioning with a <GetBucketVersioningResponse> root, which
    # SDKs reject; S3's root is <VersioningConfiguration> (empty for a never-versioned bucket).
    status = self.backend.get_bucket_versioning(self.bucket_name)
    inner = f"<Status>{status}</Status>" if status else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"{inner}</VersioningConfiguration>"
    )
    return 200, {"Content-Type": "application/xml"}, body


S3Response.get_bucket_versioning = _bucket_versioning


import copy  # noqa: E402
import os  # noqa: E402

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto.stepfunctions.models import StateMachine  # noqa: E402
from moto.stepfunctions.parser.asl.component.state.exec.state_task import (  # noqa: E402
    lambda_eval_utils,
)


def _state_machine_deepcopy(self, memo):
    # moto 5.2.1 deep-copies the state machine on every StartExecution; from the second one on
    # the copy reaches the backend's lock and fails with "cannot pickle '_thread.RLock'" (moto
    # issue 10077, fixed upstream). Share the backend, do not copy past executions.
    clone = copy.copy(self)
    for key, value in self.__dict__.items():
        if key == "backend":
            continue
        if key == "executions":
            clone.executions = []
            continue
        setattr(clone, key, copy.deepcopy(value, memo))
    return clone


StateMachine.__deepcopy__ = _state_machine_deepcopy

_LAMBDA_ENDPOINT = os.environ.get("IR_LAMBDA_ENDPOINT")
_original_client_for = lambda_eval_utils.boto_client_for


def _client_for(region, service, state_credentials=None):
    # moto's own Lambda needs Docker. When the harness runs the Rust handlers behind a local
    # Invoke API (IR_LAMBDA_ENDPOINT), Step Functions' Lambda tasks call that instead, exactly as
    # they would call the Lambda service.
    if service == "lambda" and _LAMBDA_ENDPOINT:
        return boto3.client(
            "lambda",
            region_name=region,
            endpoint_url=_LAMBDA_ENDPOINT,
            aws_access_key_id="ak",
            aws_secret_access_key="sk",
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                # Lambda's synchronous Invoke answers when the function ends, at most its
                # timeout (900 s at most) later; the invoke server stops a handler at its own.
                read_timeout=960,
            ),
        )
    return _original_client_for(region, service, state_credentials)


lambda_eval_utils.boto_client_for = _client_for

from botocore.exceptions import ConnectionError as NoConnection, HTTPClientError  # noqa: E402
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (  # noqa: E402
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (  # noqa: E402
    FailureEvent,
)
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails  # noqa: E402
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails  # noqa: E402
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (  # noqa: E402
    StateTaskServiceLambda,
)

_lambda_from_error = StateTaskServiceLambda._from_error


def _lambda_transport_error(self, env, ex):
    # moto 5.2.1 turns a Lambda call that got no answer (connection refused or reset, read
    # timeout) into `States.Runtime`: no Retry names it, and out of a Parallel branch moto's
    # executor fails the whole execution ("Custom Error Names MUST NOT begin with 'States.'").
    # Step Functions reports a failed call to the Lambda service as a `Lambda.*` error
    # (`Lambda.SdkClientException` for one the client could not complete), which the state
    # machine retries (Step Functions Developer Guide, "Handle Lambda service exceptions").
    # Only transport failures: any other client error stays a harness bug, loudly.
    if isinstance(ex, (NoConnection, HTTPClientError)):
        return FailureEvent(
            env=env,
            error_name=CustomErrorName("Lambda.SdkClientException"),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    error="Lambda.SdkClientException",
                    cause=str(ex),
                    resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type(),
                )
            ),
        )
    return _lambda_from_error(self, env, ex)


StateTaskServiceLambda._from_error = _lambda_transport_error

from moto.core.responses import ActionResult  # noqa: E402
from moto.stepfunctions.responses import StepFunctionResponse  # noqa: E402


def _validate_state_machine_definition(self):
    # Not implemented by moto 5.2.1; the Terraform AWS provider calls it before creating a state
    # machine. Grammar errors still fail at CreateStateMachine, which moto does check.
    return ActionResult({"result": "OK", "diagnostics": [], "truncated": False})


def _list_state_machine_versions(self):
    # Not implemented by moto 5.2.1; the provider reads it after creating a state machine.
    return ActionResult({"stateMachineVersions": []})


StepFunctionResponse.validate_state_machine_definition = _validate_state_machine_definition
StepFunctionResponse.list_state_machine_versions = _list_state_machine_versions


import datetime  # noqa: E402
import json  # noqa: E402
import uuid  # noqa: E402

from moto.events.models import EventPattern, Rule, events_backends  # noqa: E402
from moto.stepfunctions.responses import get_backend as sfn_backend  # noqa: E402


def _flatten_event(node, prefix="", result=None):
    # moto 5.2.1 does not descend into arrays of objects, so a pattern on
    # detail.findings.Severity.Label never matches a Security Hub event (findings is an array).
    # EventBridge flattens arrays: a field matches if any element's value matches.
    if result is None:
        result = {}

    def add(key, value):
        if key not in result:
            result[key] = value
            return
        before = result[key] if isinstance(result[key], list) else [result[key]]
        result[key] = before + (value if isinstance(value, list) else [value])

    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict) and v:
                _flatten_event(v, key, result)
            elif isinstance(v, list) and any(isinstance(x, dict) for x in v):
                for x in v:
                    if isinstance(x, dict):
                        _flatten_event(x, key, result)
                    else:
                        add(key, [x])
            else:
                add(key, v)
    return result


EventPattern._flatten_dict = staticmethod(_flatten_event)

_send_to_other_targets = Rule.send_to_targets


def _send_to_targets(self, original_event, transform_input=True):
    # moto 5.2.1 raises NotImplementedError for a Step Functions target (PutEvents answers 500).
    # EventBridge starts an execution whose input is the event (or the target's constant Input).
    # moto also stamps `time` as epoch seconds; EventBridge sends an ISO 8601 string.
    if isinstance(original_event.get("time"), (int, float)):
        original_event = dict(original_event)
        original_event["time"] = datetime.datetime.fromtimestamp(
            original_event["time"], tz=datetime.timezone.utc
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
    states = [t for t in self.targets if t["Arn"].split(":")[2:3] == ["states"]]
    if states and self.event_pattern.matches_event(original_event):
        for target in states:
            _, _, _, region, account, _ = target["Arn"].split(":", 5)
            payload = target.get("Input") or json.dumps(original_event)
            # The backend that executes ASL when stepfunctions.execute_state_machine is on;
            # EventBridge names each execution with a fresh id.
            sfn_backend(account, region).start_execution(
                target["Arn"], name=str(uuid.uuid4()), execution_input=payload
            )
    # moto 5.2.1 forwards to another Region's or account's bus by putting a new event there,
    # stamped with that bus's account and Region. EventBridge delivers the event raised
    # elsewhere with its `account` and `region` (whether `id` and `time` are kept is not
    # documented; nothing here depends on them).
    buses = [t for t in self.targets if ":event-bus/" in t["Arn"]]
    if buses and self.event_pattern.matches_event(original_event):
        for target in buses:
            _, _, _, region, account, resource = target["Arn"].split(":", 5)
            bus = events_backends[account][region].describe_event_bus(
                resource.split("/", 1)[1]
            )
            for rule in list(bus.rules.values()):
                rule.send_to_targets(dict(original_event))
    everything = self.targets
    self.targets = [t for t in everything if t not in states and t not in buses]
    try:
        _send_to_other_targets(self, original_event, transform_input)
    finally:
        self.targets = everything


Rule.send_to_targets = _send_to_targets

from moto.ec2.models.elastic_block_store import EBSBackend  # noqa: E402

_create_snapshot = EBSBackend.create_snapshot


def _create_snapshot_with_key(self, volume_id, *args, **kwargs):
    # moto 5.2.1 marks a snapshot of an encrypted volume encrypted but drops the volume's KMS
    # key; EBS encrypts a snapshot with its volume's key (EBS User Guide, snapshot encryption).
    snapshot = _create_snapshot(self, volume_id, *args, **kwargs)
    snapshot.kms_key_id = snapshot.volume.kms_key_id if snapshot.encrypted else None
    return snapshot


EBSBackend.create_snapshot = _create_snapshot_with_key

import threading  # noqa: E402

from moto.dynamodb.models import DynamoDBBackend  # noqa: E402

# moto 5.2.1 checks a write's condition and then applies it with no lock, on a threaded server:
# two concurrent `UpdateItem`s with `attribute_not_exists(...)` can both pass. DynamoDB applies
# each conditional write atomically (Developer Guide, "Condition expressions"; conditional
# writes are idempotent and serialised per item). One lock over the item writes does the same.
_ITEM_WRITES = threading.RLock()


def _serialised(write):
    def locked(self, *args, **kwargs):
        with _ITEM_WRITES:
            return write(self, *args, **kwargs)

    return locked


for _write in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _write, _serialised(getattr(DynamoDBBackend, _write)))

from moto.dynamodb.responses import DynamoHandler  # noqa: E402

# moto's handlers read the item for `ReturnValues: ALL_OLD` / `UPDATED_OLD` before the write,
# outside that lock: a write between the read and this one goes missing from what it returns.
# DynamoDB returns the item exactly as this write found it (a lease taken just as its holder
# gave it back must see the holder's containment). The handler holds the same lock.
for _write in ("put_item", "update_item", "delete_item"):
    setattr(DynamoHandler, _write, _serialised(getattr(DynamoHandler, _write)))

# Strict mode: refuse what real AWS refuses (tests/strict_aws.py); STRICT=0 turns it off.
sys.dont_write_bytecode = True  # no __pycache__ for strict_aws / tests/strict in the work tree
import strict_aws  # noqa: E402,F401

from moto.s3.responses import ACTION_MAP as S3_ACTIONS  # noqa: E402

# moto 5.2.1 authorizes S3 requests under its own operation names where IAM's differ
# (`HeadBucket`, `GetPublicAccessBlock`), and its `public_access_block` key never matches the
# `publicAccessBlock` query, so those calls were checked as ListBucket/CreateBucket. These are the
# IAM actions AWS checks (Service Authorization Reference, Amazon S3).
S3_ACTIONS["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"
S3_ACTIONS["BUCKET"]["GET"].update(
    {
        "publicAccessBlock": "GetBucketPublicAccessBlock",
        "object-lock": "GetBucketObjectLockConfiguration",
        "encryption": "GetEncryptionConfiguration",
    }
)
S3_ACTIONS["BUCKET"]["PUT"].update(
    {
        "publicAccessBlock": "PutBucketPublicAccessBlock",
        "object-lock": "PutBucketObjectLockConfiguration",
        "encryption": "PutEncryptionConfiguration",
    }
)
S3_ACTIONS["BUCKET"]["DELETE"]["publicAccessBlock"] = "PutBucketPublicAccessBlock"
S3_ACTIONS["KEY"]["PUT"]["retention"] = "PutObjectRetention"
S3_ACTIONS["KEY"]["GET"]["retention"] = "GetObjectRetention"

from moto.iam.access_control import IAMRequestBase  # noqa: E402


def _check_signature(self):
    # When IAM is enforced (INITIAL_NO_AUTH_ACTION_COUNT), moto 5.2.1 recomputes the SigV4
    # signature from the request as Flask parsed it, not from the bytes the SDK signed: form
    # bodies with spaces or non-ASCII text, and S3's aws-chunked uploads, fail with
    # SignatureDoesNotMatch / AuthFailure although AWS accepts them. The access key still
    # identifies the caller, whose policies are still enforced; only the signature is trusted.
    return None


IAMRequestBase.check_signature = _check_signature

from moto.server import main  # noqa: E402  (after patching)

if __name__ == "__main__":
    sys.exit(main())
