//! Signature verification installed as users install it: `k8s/` with the component `k8s/components/verify/`
//! applied by kubectl on a control plane of the test's own, the public key in the Secret or ConfigMap the
//! component mounts. The controller runs on the host (docs/testbed.md#how-tests-use-it), so the test does
//! the kubelet's part: it writes the mounted object's keys into a directory as the volume would show them
//! and points `VERIFY_KEYS` at the same place inside it. Everything else is read from the applied objects,
//! none of it assumed: a change of the component's names or paths is followed, a component that mounts no
//! keys fails here.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use serde_json::{Value, json};
use watch_cluster_testkit::cluster::CONTROLLER_NAMESPACE;
use watch_cluster_testkit::{KeyKind, Layout};

use crate::env::{Kind, Mode, RealEnv};
use crate::fixture::Signer;
use crate::{as_pairs, enabled};

/// The workspace's `k8s/`.
fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s")
}

/// An overlay as a user writes it: the install plus the verify component.
fn write_overlay(dir: &Path) -> PathBuf {
    let overlay = dir.join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    // kustomize takes relative paths only: up to `/` from the overlay, then down to the workspace's k8s/.
    let overlay = overlay.canonicalize().unwrap();
    let up = "../".repeat(overlay.components().count() - 1);
    let k8s = PathBuf::from(format!(
        "{up}{}",
        k8s_dir()
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
            .trim_start_matches('/')
    ));
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\n\
             components:\n  - {}\n",
            k8s.display(),
            k8s.join("components/verify").display()
        ),
    )
    .unwrap();
    overlay
}

/// Where the applied Deployment tells the controller to read its keys, and the object mounted there.
struct Mounted {
    /// `VERIFY_KEYS` as the Pod sees it.
    verify_keys: String,
    /// The volume's mount path.
    mount_path: String,
    /// `("Secret" | "ConfigMap", name)`.
    source: (&'static str, String),
    /// `items` of the volume source: key → path; empty means every key as a file of its name.
    items: Vec<(String, String)>,
}

/// Reads the applied Deployment: `VERIFY_KEYS` from the container's env or the ConfigMap it loads, the
/// volume mounted at (a parent of) that path, and the object behind the volume.
async fn mounted(env: &RealEnv) -> Mounted {
    let deployment: Deployment = Api::namespaced(env.admin.clone(), CONTROLLER_NAMESPACE)
        .get("watch-cluster")
        .await
        .expect("the applied Deployment");
    let deployment = serde_json::to_value(deployment).unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "watch-cluster")
        .expect("the watch-cluster container");
    let from_env = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "VERIFY_KEYS")
        .and_then(|e| e["value"].as_str().map(str::to_owned));
    let verify_keys = match from_env {
        Some(value) => value,
        None => env
            .settings()
            .await
            .into_iter()
            .find(|(k, _)| k == "VERIFY_KEYS")
            .map(|(_, v)| v)
            .expect("the verify component sets VERIFY_KEYS (container env or ConfigMap)"),
    };
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            let path = m["mountPath"].as_str().unwrap_or_default();
            Path::new(&verify_keys).starts_with(path)
        })
        .max_by_key(|m| m["mountPath"].as_str().unwrap_or_default().len())
        .unwrap_or_else(|| {
            panic!("no volume is mounted at VERIFY_KEYS={verify_keys}: {container:#}")
        })
        .clone();
    let volume = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume")
        .clone();
    let (source, spec) = if let Some(secret) = volume.get("secret") {
        (
            ("Secret", secret["secretName"].as_str().unwrap().to_owned()),
            secret,
        )
    } else if let Some(map) = volume.get("configMap") {
        (("ConfigMap", map["name"].as_str().unwrap().to_owned()), map)
    } else {
        panic!("the keys volume is neither a Secret nor a ConfigMap: {volume:#}");
    };
    let items = spec["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["key"].as_str().unwrap().to_owned(),
                i["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    Mounted {
        verify_keys,
        mount_path: mount["mountPath"].as_str().unwrap().to_owned(),
        source,
        items,
    }
}

/// Puts `pem` into the mounted object as the user would (`kubectl create secret generic … --from-file`),
/// then reads the object back and writes its keys under `root` as the volume shows them. Returns
/// `VERIFY_KEYS` mapped into `root`.
async fn mount_keys(
    env: &RealEnv,
    mounted: &Mounted,
    file_name: &str,
    pem: &str,
    root: &Path,
) -> PathBuf {
    let key = mounted
        .items
        .first()
        .map(|(k, _)| k.clone())
        .unwrap_or_else(|| file_name.to_owned());
    let (kind, name) = (&mounted.source.0, &mounted.source.1);
    let object = match *kind {
        "Secret" => json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": CONTROLLER_NAMESPACE},
            "stringData": {key.clone(): pem}}),
        _ => json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": CONTROLLER_NAMESPACE},
            "data": {key.clone(): pem}}),
    };
    env.testbed
        .apply(&object.to_string())
        .expect("the keys object applied");

    let data: Vec<(String, String)> = match *kind {
        "Secret" => Api::<Secret>::namespaced(env.admin.clone(), CONTROLLER_NAMESPACE)
            .get(name)
            .await
            .expect("the keys Secret")
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect(),
        _ => Api::<ConfigMap>::namespaced(env.admin.clone(), CONTROLLER_NAMESPACE)
            .get(name)
            .await
            .expect("the keys ConfigMap")
            .data
            .unwrap_or_default()
            .into_iter()
            .collect(),
    };
    let volume = root.join(mounted.mount_path.trim_start_matches('/'));
    for (k, v) in &data {
        let path = if mounted.items.is_empty() {
            Some(k.clone())
        } else {
            mounted
                .items
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, p)| p.clone())
        };
        if let Some(path) = path {
            let file = volume.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, v).unwrap();
        }
    }
    let relative = Path::new(&mounted.verify_keys)
        .strip_prefix(&mounted.mount_path)
        .unwrap();
    volume.join(relative)
}

/// `k8s/` + `components/verify`: a newer tag signed (Ed25519, `.sig` layout) is taken, an unsigned newest
/// one refused with `SignatureRejected`, with the key mounted as the component mounts it.
#[tokio::test]
async fn verify_component_mounts_the_keys_the_controller_checks_with() {
    let mut env = RealEnv::start_in("verify-component", Mode::ClusterWide).await;
    let dir = tempfile::tempdir().unwrap();
    let overlay = write_overlay(dir.path());
    env.testbed
        .install_overlay(&overlay.display().to_string())
        .expect("kubectl apply -k of k8s/ with components/verify");
    let mounted = mounted(&env).await;
    let signer = Signer::new(KeyKind::Ed25519).await;
    let pem = signer.key.public_pem().unwrap();
    let verify_keys =
        mount_keys(&env, &mounted, "release.pub", &pem, &dir.path().join("pod")).await;
    assert!(
        verify_keys.exists(),
        "VERIFY_KEYS={} names nothing the volume holds ({} {})",
        mounted.verify_keys,
        mounted.source.0,
        mounted.source.1
    );

    let repo = "team/verified";
    env.push(repo, "1.0.0").await;
    let signed = env.push(repo, "1.1.0").await;
    let unsigned = env.push(repo, "1.2.0").await;
    let rejected = format!(
        "container app: {}@{} not taken, signature rejected (Unsigned): no signature of {} found",
        env.image(repo, "1.2.0"),
        unsigned.digest,
        unsigned.digest
    );
    signer
        .sign(&env.registry, repo, &signed.digest, Layout::Sig)
        .await;
    let mut annotations = enabled("version");
    annotations.push(("watch-cluster.io/verify", "cosign".to_owned()));
    env.create(
        Kind::Deployment,
        "verified",
        &[("app", &env.image(repo, "1.0.0"))],
        &as_pairs(&annotations),
        json!({}),
    )
    .await;
    let mut settings = env.settings().await;
    settings.retain(|(k, _)| k != "VERIFY_KEYS");
    settings.push(("VERIFY_KEYS".into(), verify_keys.display().to_string()));
    let index = env.spawn_controller(&settings);

    let target = format!("{}@{}", env.image(repo, "1.1.0"), signed.digest);
    let wanted = target.clone();
    env.wait_for(
        Kind::Deployment,
        "verified",
        &format!("image {target}"),
        move |d: &Value| d["spec"]["template"]["spec"]["containers"][0]["image"] == wanted.as_str(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + crate::env::WAIT;
    loop {
        let events = env.events("verified").await;
        if events
            .iter()
            .any(|(r, n)| r == "SignatureRejected" && n.starts_with(&rejected))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no SignatureRejected for 1.2.0: {events:#?}\ncontroller log:\n{}",
            env.controller_log(index)
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(env.image_of(Kind::Deployment, "verified").await, target);
}
