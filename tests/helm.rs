#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Helm chart `charts/watch-cluster` (docs/helm.md) with the real helm v4.2.4 that
//! `testbed/helm/build` builds (`.ci/test` runs it; without the binary every test here fails naming the
//! script, none skips):
//!
//! - `lint`: `helm lint --strict`, and the schema refusing a misspelt value;
//! - `objects`: `helm template` with default values against `kubectl kustomize k8s/`, object by object, the
//!   same for the namespaced mode, the events and verify components and the PrometheusRule, with only the
//!   differences `objects` names;
//! - `settings`: every value of a controller setting reaches the container as the variable it names, and
//!   every variable the controller reads has a value; docs/helm.md's values table is values.yaml's;
//! - `install`: `helm install` on the test bed's kube-apiserver, the controller run on the host with the
//!   settings and ServiceAccount of the objects the chart installed, an annotated Deployment updated and
//!   rolled out, then `helm uninstall` leaving nothing of the chart behind. Needs the test bed:
//!   `.ci/test -E 'binary(helm)'`.

#[path = "helm/chart.rs"]
mod chart;
#[path = "helm/install.rs"]
mod install;
#[path = "helm/lint.rs"]
mod lint;
#[path = "helm/objects.rs"]
mod objects;
#[path = "helm/settings.rs"]
mod settings;
