//! Running helm and kubectl's kustomize on the chart and `k8s/`, and reading what they render.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

/// The release the comparisons render: its objects get the names of `k8s/`.
pub const RELEASE: &str = "watch-cluster";
pub const NAMESPACE: &str = "watch-cluster";

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    workspace().join("charts/watch-cluster")
}

/// The helm `testbed/helm/build` linked; missing is a failure naming the script.
pub fn helm_path() -> PathBuf {
    let path = workspace().join("testbed/helm/bin/helm");
    assert!(
        path.is_file(),
        "helm not found at {}: run testbed/helm/build (the test command .ci/test does)",
        path.display()
    );
    path
}

/// Runs helm with its config, cache and data dirs in `home` (never the user's).
pub fn helm_in(home: &Path, args: &[&str]) -> Output {
    Command::new(helm_path())
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm")
}

pub fn helm(args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("tempdir");
    helm_in(home.path(), args)
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `helm template watch-cluster charts/watch-cluster -n watch-cluster` with `--set`-style `sets` (each
/// `key=value`, given to `--set`) as parsed documents.
pub fn template(sets: &[&str]) -> Vec<Value> {
    let output = template_output(sets);
    assert!(
        output.status.success(),
        "helm template {sets:?}: {}",
        text(&output)
    );
    parse(&String::from_utf8_lossy(&output.stdout))
}

pub fn template_output(sets: &[&str]) -> Output {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    helm(&args)
}

/// `kubectl kustomize DIR` with the test bed's kubectl (v1.36.3).
pub fn kustomize(dir: &Path) -> Vec<Value> {
    let kubectl = workspace().join("testbed/bin/kubectl");
    assert!(
        kubectl.is_file(),
        "kubectl not found at {}: run testbed/build (the test command .ci/test does)",
        kubectl.display()
    );
    let output = Command::new(&kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl");
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        text(&output)
    );
    parse(&String::from_utf8_lossy(&output.stdout))
}

pub fn parse(yaml: &str) -> Vec<Value> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("YAML");
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// `(kind, namespace, name)` → object.
pub fn by_key(documents: Vec<Value>) -> BTreeMap<(String, String, String), Value> {
    let mut map = BTreeMap::new();
    for document in documents {
        let key = key_of(&document);
        assert!(map.insert(key.clone(), document).is_none(), "{key:?} twice");
    }
    map
}

pub fn key_of(object: &Value) -> (String, String, String) {
    let field = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        field(&object["kind"]),
        field(&object["metadata"]["namespace"]),
        field(&object["metadata"]["name"]),
    )
}

/// The one object of `kind` named `name` among `documents`.
pub fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = documents
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{kind} {name} in {documents:#?}");
    found[0]
}

/// The environment the controller container gets from rendered objects, as the kubelet builds it:
/// `envFrom` (the ConfigMap's `data`, the Secret's `stringData`), then `env` (values, keys of the rendered
/// Secrets, the downward API as `<fieldRef:PATH>`). A reference to an object that was not rendered (a
/// Secret the user brings) is `<secretKeyRef:NAME/KEY>`.
pub fn container_env(documents: &[Value]) -> BTreeMap<String, String> {
    let deployment = documents
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let data_of = |kind: &str, name: &str, field: &str| -> Option<BTreeMap<String, String>> {
        documents
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .map(|d| {
                d[field]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default()
            })
    };
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let (kind, name, field) = if let Some(name) = source["configMapRef"]["name"].as_str() {
            ("ConfigMap", name, "data")
        } else {
            (
                "Secret",
                source["secretRef"]["name"].as_str().unwrap(),
                "stringData",
            )
        };
        if let Some(data) = data_of(kind, name, field) {
            env.extend(data);
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap().to_owned();
        let value = if let Some(value) = var["value"].as_str() {
            value.to_owned()
        } else if let Some(path) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            format!("<fieldRef:{path}>")
        } else {
            let reference = &var["valueFrom"]["secretKeyRef"];
            let (secret, key) = (
                reference["name"].as_str().unwrap(),
                reference["key"].as_str().unwrap(),
            );
            match data_of("Secret", secret, "stringData").and_then(|d| d.get(key).cloned()) {
                Some(value) => value,
                None => format!("<secretKeyRef:{secret}/{key}>"),
            }
        };
        env.insert(name, value);
    }
    env
}

/// `helm template` with `values` (a JSON object, given as a values file) as parsed documents.
pub fn template_values(values: &Value) -> Vec<Value> {
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(file.path(), values.to_string()).expect("write values");
    let chart = chart_dir();
    let output = helm(&[
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
        "-f",
        file.path().to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "helm template -f {values}: {}",
        text(&output)
    );
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// values.yaml as parsed.
pub fn default_values() -> Value {
    let text = std::fs::read_to_string(chart_dir().join("values.yaml")).expect("values.yaml");
    serde_saphyr::from_str(&text).expect("values.yaml is YAML")
}

/// Sets `value` at the dotted `path` of `values`, creating objects on the way.
pub fn set_path(values: &mut Value, path: &str, value: Value) {
    let mut at = values;
    for part in path.split('.') {
        if !at.is_object() {
            *at = Value::Object(serde_json::Map::new());
        }
        at = at
            .as_object_mut()
            .unwrap()
            .entry(part.to_owned())
            .or_insert(Value::Null);
    }
    *at = value;
}
