"""The planning core: pure functions over plain data. No Kubernetes, no clock, no I/O."""
