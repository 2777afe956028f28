"""ORM models, one module per aggregate. Importing the package registers every table on Base.metadata."""

from models.alerts import Alert, AlertDelivery
from models.audit import AuditEntry
from models.base import Base
from models.devices import Gateway, Lock
from models.events import LockEvent
from models.geography import PoliceStation, Town
from models.health import HealthCodeStatus, IsolationOrder
from models.housing import Property, Tenancy, Unit
from models.people import User, UserSession
from models.unlock import LockCommand, UnlockAttempt

__all__ = [
    "Alert", "AlertDelivery", "AuditEntry", "Base", "Gateway", "HealthCodeStatus", "IsolationOrder", "Lock",
    "LockCommand", "LockEvent", "PoliceStation", "Property", "Tenancy", "Town", "Unit", "UnlockAttempt", "User",
    "UserSession",
]
