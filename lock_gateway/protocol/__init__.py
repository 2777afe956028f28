"""The gateway <-> backend contract and the lock frame format, one versioned module each."""
