"""Local services (Elasticsearch, PostgreSQL) that boeflow installs and runs on loopback."""

from boeflow.services.common import ServiceError, ServiceStatus

__all__ = ["ServiceError", "ServiceStatus"]
