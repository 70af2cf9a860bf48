"""``takt audit``: the audit log of PII reads, exports and erasures (same as ``takt privacy audit``)."""

from takt.cli.privacy import audit_cmd as command

__all__ = ["command"]
