"""The gateway's error hierarchy: one base, few leaves, each saying what to do about it.

    GatewayError
    ├── BackendError              the backend did not take a request
    │   ├── BackendUnavailable    transient: connect error, timeout, 5xx, 429 -> retry with backoff
    │   ├── BackendAuthRejected   fatal: 401/403 -> the gateway's token is wrong or revoked; stop
    │   └── BackendRefusedBatch   422: our message broke the contract (a bug) -> dead-letter it
    └── LockLinkError             no usable BLE link to a lock
        ├── LockNotFound          the lock is not advertising within the scan window
        └── LockUnreachable       found, but connecting / discovering / reading INFO failed
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class BackendError(GatewayError):
    pass


class BackendUnavailable(BackendError):
    pass


class BackendAuthRejected(BackendError):
    pass


class BackendRefusedBatch(BackendError):
    pass


class LockLinkError(GatewayError):
    pass


class LockNotFound(LockLinkError):
    pass


class LockUnreachable(LockLinkError):
    pass
