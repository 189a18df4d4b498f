#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One scenario suite, two backends: every scenario of `scenarios/cases.rs` runs on the simulated API server
//! (`sim::…`) and on real kube-apiserver v1.36.3 (`real::…`, through the test bed the test wrapper starts,
//! docs/testbed.md). Filter one backend with `.ci/test -E 'binary(scenarios) and test(/^real::/)'`.

// Both environments are shared with other test binaries, which use other parts of them.
#[allow(dead_code)]
#[path = "scenarios/cases.rs"]
mod cases;
#[allow(dead_code)]
#[path = "scenarios/env.rs"]
mod env;
#[path = "scenarios/gates.rs"]
mod gates;
#[path = "scenarios/push.rs"]
mod push;
#[path = "scenarios/verify.rs"]
mod verify;
// The real cosign and the forgeries, shared with tests/signatures.rs.
#[allow(dead_code)]
#[path = "signatures/fixture.rs"]
mod fixture;
#[allow(dead_code)]
#[path = "real/env.rs"]
mod real_env;
#[allow(dead_code, unused_imports)]
#[path = "e2e/env.rs"]
mod sim_env;

pub use watch_cluster_testkit::annotations::{EVERY_SECOND, NEVER_SOON};

/// Generates each scenario as `sim::<name>` and `real::<name>`.
macro_rules! on_both_backends {
    ($($name:ident => $scenario:expr;)*) => {
        mod sim {
            use crate::env::{Backend, Kind};
            #[allow(unused_imports)]
            use crate::cases::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = Backend::Sim;
                    let _ = Kind::Deployment;
                    ($scenario)(backend).await;
                }
            )*
        }
        mod real {
            use crate::env::{Backend, Kind};
            #[allow(unused_imports)]
            use crate::cases::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = Backend::Real;
                    let _ = Kind::Deployment;
                    ($scenario)(backend).await;
                }
            )*
        }
    };
}

on_both_backends! {
    deployment_semver => |b| semver(b, Kind::Deployment);
    deployment_lock_major => |b| locked(b, "version-lock-major");
    deployment_lock_minor => |b| locked(b, "version-lock-minor");
    deployment_variant_kept => variant_kept;
    deployment_prerelease_only => prerelease_only;
    deployment_moving_tag => |b| moving_tag(b, Kind::Deployment);
    deployment_moving_tag_followed_within_its_schedule => moving_tag_followed_within_its_schedule;
    deployment_multi_arch => |b| multi_arch(b, Kind::Deployment);
    deployment_invalid_annotation => invalid_annotation;
    deployment_not_enabled => not_enabled;
    deployment_stuck_rolled_back_and_quarantined => |b| stuck(b, Kind::Deployment);
    deployment_check_now => |b| check_now(b, Kind::Deployment);
    deployment_selected_containers => selected_containers;
    deployment_signed_webhooks => signed_webhooks;
    deployment_dry_run => dry_run;
    deployment_another_writer_reverts => another_writer_reverts;
    deployment_paused => paused;
    deployment_leader_election => leader_election;
    deployment_leader_killed_mid_rollout => |b| leader_killed(b, Kind::Deployment);
    deployment_sigterm => sigterm;
    deployment_rollout_bound_with_a_leader_change => rollout_bound;
    deployment_gitops_managed => gitops_managed;
    gate_window_opens_during_the_test => crate::gates::window_opens;
    gate_min_age_expires => crate::gates::min_age_expires;
    gate_min_age_survives_a_restart => crate::gates::min_age_survives_a_restart;
    gate_min_age_under_a_stream_of_releases => crate::gates::min_age_release_stream;
    gate_hold_then_release => crate::gates::hold_then_release;
    gate_tag_filter_and_skip => crate::gates::filter_and_skip;
    gate_invalid_annotation => crate::gates::invalid_gate;
    push_from_the_registrys_own_notifications => crate::push::registry_notifications;
    push_payloads_of_each_provider => crate::push::provider_payloads;
    push_events_that_do_nothing_but_count => crate::push::events_that_do_nothing;
    push_follower_answers_503 => crate::push::follower_answers_503;
    verify_signed_taken_unsigned_refused_p256_sig => |b| crate::verify::signed_taken_unsigned_refused(b, watch_cluster_testkit::KeyKind::P256, watch_cluster_testkit::Layout::Sig);
    verify_signed_taken_unsigned_refused_ed25519_bundle => |b| crate::verify::signed_taken_unsigned_refused(b, watch_cluster_testkit::KeyKind::Ed25519, watch_cluster_testkit::Layout::Bundle);
    verify_wrongly_signed_refused_ed25519_sig => |b| crate::verify::wrongly_signed_refused(b, watch_cluster_testkit::KeyKind::Ed25519, watch_cluster_testkit::Layout::Sig);
    verify_wrongly_signed_refused_p256_bundle => |b| crate::verify::wrongly_signed_refused(b, watch_cluster_testkit::KeyKind::P256, watch_cluster_testkit::Layout::Bundle);
    statefulset_semver => |b| semver(b, Kind::StatefulSet);
    statefulset_moving_tag => |b| moving_tag(b, Kind::StatefulSet);
    statefulset_multi_arch => |b| multi_arch(b, Kind::StatefulSet);
    statefulset_stuck_rolled_back => |b| stuck(b, Kind::StatefulSet);
    statefulset_on_delete => |b| on_delete(b, Kind::StatefulSet);
    statefulset_check_now => |b| check_now(b, Kind::StatefulSet);
    statefulset_leader_killed_mid_rollout => |b| leader_killed(b, Kind::StatefulSet);
    daemonset_semver => |b| semver(b, Kind::DaemonSet);
    daemonset_moving_tag => |b| moving_tag(b, Kind::DaemonSet);
    daemonset_multi_arch => |b| multi_arch(b, Kind::DaemonSet);
    daemonset_stuck_rolled_back => |b| stuck(b, Kind::DaemonSet);
    daemonset_on_delete => |b| on_delete(b, Kind::DaemonSet);
    daemonset_check_now => |b| check_now(b, Kind::DaemonSet);
    daemonset_leader_killed_mid_rollout => |b| leader_killed(b, Kind::DaemonSet);
    cluster_quarantine_of_an_image_that_cannot_be_pulled => |b| cluster_quarantine(b, watch_cluster_testkit::ImageFault::Pull);
    cluster_quarantine_of_an_image_that_crashes => |b| cluster_quarantine(b, watch_cluster_testkit::ImageFault::Crash);
    cluster_quarantine_skips_an_image_that_only_never_gets_ready => |b| cluster_quarantine(b, watch_cluster_testkit::ImageFault::NeverReady);
}
