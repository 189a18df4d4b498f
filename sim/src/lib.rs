//! A simulated Kubernetes API server with workload controllers, for testing watch-cluster.
//!
//! It shares no code with the controller: two independent implementations catch each other's mistakes.

pub mod store;

pub use store::{Change, ChangeType, Kind, Store, StoreError};
