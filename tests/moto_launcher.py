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
                read_timeout=120,
            ),
        )
    return _original_client_for(region, service, state_credentials)


lambda_eval_utils.boto_client_for = _client_for

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

from moto.server import main  # noqa: E402  (after patching)

if __name__ == "__main__":
    sys.exit(main())
