"""The database door: the only package that imports sqlmodel/sqlalchemy. ``Engine`` is the
handle the stores share, passed through by those who make them."""

from sqlalchemy import Engine

from clusterctl.store.allocation_usage import AllocationUsageStore
from clusterctl.store.audit import AuditStore
from clusterctl.store.columns import utcnow
from clusterctl.store.db import UNAVAILABLE, make_engine, migrate, normalize_url, ping, revision
from clusterctl.store.inventory import CostStore, HardwareExists
from clusterctl.store.job_changes import HeldGpu
from clusterctl.store.jobs import JobStore, NewJob
from clusterctl.store.lease import Lease, LeaseHeld
from clusterctl.store.lease import acquire as acquire_lease
from clusterctl.store.models import Allocation, Job, JobEvent, User
from clusterctl.store.nodes import NodeStore
from clusterctl.store.report_data import ReportStore
from clusterctl.store.samples import Ingested, SampleStore
from clusterctl.store.service_tables import Service
from clusterctl.store.services import ServiceStore, Traffic
from clusterctl.store.telemetry_tables import GpuDevice
from clusterctl.store.users import UserExists, UserStore, installation_id
from clusterctl.store.web_sessions import SignedIn, WebSessionStore

__all__ = [
    "UNAVAILABLE",
    "Allocation",
    "AllocationUsageStore",
    "AuditStore",
    "CostStore",
    "Engine",
    "GpuDevice",
    "HardwareExists",
    "HeldGpu",
    "Ingested",
    "Job",
    "JobEvent",
    "JobStore",
    "Lease",
    "LeaseHeld",
    "NewJob",
    "NodeStore",
    "ReportStore",
    "SampleStore",
    "Service",
    "ServiceStore",
    "SignedIn",
    "Traffic",
    "User",
    "UserExists",
    "UserStore",
    "WebSessionStore",
    "acquire_lease",
    "installation_id",
    "make_engine",
    "migrate",
    "normalize_url",
    "ping",
    "revision",
    "utcnow",
]
