"""BLE plumbing below bleak's public API: the bumble backend used by the demo and the tests."""
