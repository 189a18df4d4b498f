//! Test support for watch-cluster: the real-registry harness, the fault-injecting fake registry and the webhook receiver.
