"""Strict mode for the local AWS emulator (moto 5.2.1): refuse what real AWS refuses.

moto is lax where AWS is strict (it stores a tag value of {"k":1}, a 30 KB bucket policy, a
catchable States.DataLimitExceeded...). Imported by tests/moto_launcher.py before the server
starts; active unless the environment says STRICT=0 (a debug switch, not a mode to test in).

What it adds (details and AWS sources in tests/strict/):
- model constraints for every request of every service moto answers through
  BaseResponse.call_action (all services but S3): required members, patterns (Java regexes
  over the whole value), lengths, value ranges, enums, answered in the service's protocol
  with AWS's code (ValidationError, ValidationException, InvalidParameterValue...);
- named rules for documented limits the models lack (S3 tags and bucket policies, IAM inline
  policy quotas and tag counts, EC2 tags and Spot termination protection, DynamoDB item size,
  Step Functions data limit, Lambda function URL access);
- GET /strict-api/rules (the active rules), /strict-api/models, /strict-api/function-url/<fn>.

Needs the `regex` package (Java-style \\p{L} classes); moto[server] brings it via cfn-lint.
"""

from __future__ import annotations

import os
import sys

ENABLED = os.environ.get("STRICT", "1") != "0"


def install() -> bool:
    """Patch moto; returns whether strict mode is on."""
    if not ENABLED:
        return False
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from strict import (  # noqa: F401 - rules_sts registers its rule on import
        api, install_status_override, model, rules_data, rules_iam_ec2, rules_org, rules_s3, rules_sts,
    )

    install_status_override()
    model.install()
    rules_s3.install()
    rules_iam_ec2.install()
    rules_data.install()
    api.install()
    return True


ACTIVE = install()
