//! What one watch remembers between its events.
//!
//! Input: the events of one watch (a kind in one namespace, or in all). Output: calls that forget the
//! workloads that are gone (their memory, their `watched` gauge, their remembered Event conditions) and the
//! count of watches that have synced (readiness).

use std::{collections::HashSet, sync::atomic::Ordering};

use kube::{ResourceExt, runtime::watcher};

use super::{Context, ManagedKind, Watched, WorkloadKey, key_of, reference_of};

/// The state of one watch.
pub(super) struct WatchState {
    namespace: Option<String>,
    synced: bool,
    /// While a (re)list is under way: what it has listed so far.
    listing: Option<Listed>,
}

/// The workloads one list returned: their keys (for the memory) and their uids and names (for the Event
/// conditions, which are remembered by uid, or by name while the uid is unknown).
#[derive(Default)]
struct Listed {
    keys: HashSet<WorkloadKey>,
    ids: HashSet<String>,
}

impl WatchState {
    /// A watch of `namespace` (`None`: all namespaces).
    pub(super) fn new(namespace: Option<String>) -> Self {
        Self {
            namespace,
            synced: false,
            listing: None,
        }
    }

    /// Takes in one event of the watch, before the reflector's store does.
    pub(super) fn observe<K: ManagedKind>(
        &mut self,
        ctx: &Context,
        event: &watcher::Event<Watched<K>>,
    ) {
        match event {
            watcher::Event::Delete(obj) => {
                let key = key_of::<K>(obj);
                ctx.forget(&key);
                ctx.events.forget(&reference_of::<K>(&key, obj.uid()));
            }
            watcher::Event::Init => self.listing = Some(Listed::default()),
            watcher::Event::InitApply(obj) => {
                if let Some(listed) = self.listing.as_mut() {
                    listed.keys.insert(key_of::<K>(obj));
                    listed.ids.extend(obj.uid());
                    listed.ids.insert(obj.name_any());
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.listing.take() {
                    self.forget_unlisted::<K>(ctx, &listed);
                }
                self.count_synced::<K>(ctx);
            }
            watcher::Event::Apply(_) => {}
        }
    }

    /// A relist follows a watch error or an expired resourceVersion; a workload deleted in between never
    /// gets a Delete event, so whatever of this watch's scope the list did not return is gone.
    fn forget_unlisted<K: ManagedKind>(&self, ctx: &Context, listed: &Listed) {
        let namespace = self.namespace.as_deref();
        ctx.forget_unlisted(K::KIND, namespace, &listed.keys);
        ctx.events
            .retain_listed(&K::kind(&()), namespace, &listed.ids);
    }

    /// Counted from the stream, not with `Store::wait_until_ready`: that future is backed by a oneshot
    /// receiver that wakes only its last poller, which is the Controller's own.
    fn count_synced<K: ManagedKind>(&mut self, ctx: &Context) {
        if std::mem::replace(&mut self.synced, true) {
            return;
        }
        let count = ctx.synced.fetch_add(1, Ordering::AcqRel);
        tracing::info!(kind = %K::KIND, synced = count + 1, of = ctx.watch_count(), "watch synced");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::ObjectMeta;
    use prometheus_client::{encoding::text::encode, registry::Registry};

    use super::*;
    use crate::{
        config::{Config, RunArgs},
        notify::events::Reason,
    };

    fn context() -> (Context, Registry) {
        crate::install_crypto_provider();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let mut registry = Registry::with_prefix("watch_cluster");
        let ctx = Context::build(
            kube::Client::try_from(config).unwrap(),
            Config::from_args(&RunArgs::default()).unwrap(),
            crate::notify::WebhookConfig::disabled(),
            "test".into(),
            tokio::sync::watch::channel(true).1,
            crate::record::RecordKey::from_bytes(&[7; 32]).unwrap(),
            &mut registry,
        )
        .unwrap();
        (ctx, registry)
    }

    fn deployment(namespace: &str, name: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{namespace}-{name}")),
                ..ObjectMeta::default()
            },
            ..Deployment::default()
        }
    }

    /// Gives `obj` what a reconcile gives it: memory (counted as watched) and a remembered Warning.
    async fn known(ctx: &Context, obj: &Deployment) {
        let key = key_of::<Deployment>(obj);
        ctx.with_memory(&key, |_| ());
        let reference = reference_of::<Deployment>(&key, obj.uid());
        ctx.events
            .publish_once(&reference, Reason::RegistryError, "unreachable".into())
            .await;
    }

    fn watched(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text.lines()
            .find(|l| l.starts_with("watch_cluster_watched_workloads{kind=\"Deployment\"}"))
            .unwrap_or_default()
            .to_owned()
    }

    fn remembers(ctx: &Context, obj: &Deployment) -> bool {
        let key = key_of::<Deployment>(obj);
        ctx.memory.lock().unwrap().contains_key(&key)
    }

    #[tokio::test]
    async fn a_deleted_workload_is_forgotten_with_its_event_conditions() {
        let (ctx, registry) = context();
        let web = deployment("shop", "web");
        known(&ctx, &web).await;
        let mut state = WatchState::new(None);
        state.observe(&ctx, &watcher::Event::Delete(web.clone().into()));
        assert!(!remembers(&ctx, &web));
        assert_eq!(
            watched(&registry),
            "watch_cluster_watched_workloads{kind=\"Deployment\"} 0"
        );
        assert_eq!(
            ctx.events.remembered(),
            0,
            "no Event condition outlives its workload"
        );
    }

    #[tokio::test]
    async fn workloads_deleted_while_the_watch_was_down_are_forgotten_when_its_relist_ends() {
        let (ctx, registry) = context();
        let (web, gone, elsewhere) = (
            deployment("shop", "web"),
            deployment("shop", "gone"),
            deployment("other", "db"),
        );
        for obj in [&web, &gone, &elsewhere] {
            known(&ctx, obj).await;
        }
        let mut state = WatchState::new(Some("shop".into()));
        state.observe(&ctx, &watcher::Event::<Watched<Deployment>>::InitDone);
        // The watch failed and relists: `gone` was deleted meanwhile, so no Delete event ever comes.
        state.observe(&ctx, &watcher::Event::<Watched<Deployment>>::Init);
        state.observe(&ctx, &watcher::Event::InitApply(web.clone().into()));
        assert!(
            remembers(&ctx, &gone),
            "nothing is forgotten before the relist ends"
        );
        state.observe(&ctx, &watcher::Event::<Watched<Deployment>>::InitDone);
        assert!(remembers(&ctx, &web));
        assert!(!remembers(&ctx, &gone));
        assert!(
            remembers(&ctx, &elsewhere),
            "another namespace's watch owns it"
        );
        assert_eq!(
            watched(&registry),
            "watch_cluster_watched_workloads{kind=\"Deployment\"} 2"
        );
        assert_eq!(ctx.events.remembered(), 2);
        assert_eq!(
            ctx.synced.load(Ordering::Acquire),
            1,
            "synced once, not per relist"
        );
    }
}
