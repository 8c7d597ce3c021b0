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

from moto.server import main  # noqa: E402  (after patching)

if __name__ == "__main__":
    sys.exit(main())
