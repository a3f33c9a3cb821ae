"""Local services (Elasticsearch, PostgreSQL) that boeflow installs and runs on loopback."""

from boeflow_ops.services.common import ServiceError, ServiceStatus

__all__ = ["ServiceError", "ServiceStatus"]
