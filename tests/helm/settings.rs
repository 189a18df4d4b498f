//! Every value of a controller setting reaches the container as the variable it names: one row per value,
//! rendered, the container's environment built as the kubelet builds it (`envFrom` and `env`), the variable
//! compared. Both directions are complete: each value under `config`, `notifications` and `events.tokens`
//! has a row, and each variable the controller reads (`watch-cluster run --help`, plus the two it reads
//! outside its flags) has one too. Credentials are in a Secret, never a ConfigMap.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::chart::{
    chart_dir, container_env, default_values, find, set_path, template, template_values, workspace,
};

/// A 24-character token (the controller's minimum).
const TOKEN: &str = "0123456789abcdef01234567";

/// One value: its path, what a user sets, the variable, what the container gets, whether it is a
/// credential (a Secret's).
struct Row(&'static str, Value, &'static str, &'static str, bool);

fn rows() -> Vec<Row> {
    vec![
        Row(
            "config.watchNamespaces",
            json!("team-a,team-b"),
            "WATCH_NAMESPACES",
            "team-a,team-b",
            false,
        ),
        Row("config.dryRun", json!(true), "DRY_RUN", "true", false),
        Row(
            "config.rolloutTimeout",
            json!("15m"),
            "ROLLOUT_TIMEOUT",
            "15m",
            false,
        ),
        Row(
            "config.tz",
            json!("Europe/Berlin"),
            "TZ",
            "Europe/Berlin",
            false,
        ),
        Row(
            "config.leaderElection",
            json!(false),
            "LEADER_ELECTION",
            "false",
            false,
        ),
        Row(
            "config.leaseName",
            json!("watch-cluster-team-a"),
            "LEASE_NAME",
            "watch-cluster-team-a",
            false,
        ),
        Row(
            "config.maxConcurrentChecks",
            json!(16),
            "MAX_CONCURRENT_CHECKS",
            "16",
            false,
        ),
        Row(
            "config.maxConcurrentRollouts",
            json!(5),
            "MAX_CONCURRENT_ROLLOUTS",
            "5",
            false,
        ),
        Row(
            "config.quarantineScope",
            json!("cluster"),
            "QUARANTINE_SCOPE",
            "cluster",
            false,
        ),
        Row(
            "config.insecureRegistries",
            json!("registry.local:5000,10.0.0.5"),
            "INSECURE_REGISTRIES",
            "registry.local:5000,10.0.0.5",
            false,
        ),
        Row(
            "config.registryCaFile",
            json!("/etc/watch-cluster/ca.pem"),
            "REGISTRY_CA_FILE",
            "/etc/watch-cluster/ca.pem",
            false,
        ),
        Row(
            "config.registryCacheTtl",
            json!("2m"),
            "REGISTRY_CACHE_TTL",
            "2m",
            false,
        ),
        Row(
            "config.cloudRegistryAuth",
            json!("aws,gcp"),
            "CLOUD_REGISTRY_AUTH",
            "aws,gcp",
            false,
        ),
        Row(
            "config.cloudRegistryNamespaces",
            json!("team-a"),
            "CLOUD_REGISTRY_NAMESPACES",
            "team-a",
            false,
        ),
        Row(
            "config.verifyRequiredFor",
            json!("ghcr.io/acme/**"),
            "VERIFY_REQUIRED_FOR",
            "ghcr.io/acme/**",
            false,
        ),
        Row(
            "config.eventsHostAliases",
            json!("registry-internal:5000=registry.example.com"),
            "EVENTS_HOST_ALIASES",
            "registry-internal:5000=registry.example.com",
            false,
        ),
        Row(
            "config.logLevel",
            json!("watch_cluster=debug,kube=warn"),
            "LOG_LEVEL",
            "watch_cluster=debug,kube=warn",
            false,
        ),
        Row(
            "config.logFormat",
            json!("text"),
            "LOG_FORMAT",
            "text",
            false,
        ),
        Row(
            "config.rustLog",
            json!("info,watch_cluster=debug"),
            "RUST_LOG",
            "info,watch_cluster=debug",
            false,
        ),
        Row(
            "adminPort",
            json!(9090),
            "ADMIN_ADDR",
            "0.0.0.0:9090",
            false,
        ),
        Row(
            "notifications.webhookUrl",
            json!("https://ntfy.example.com/deploys"),
            "WEBHOOK_URL",
            "https://ntfy.example.com/deploys",
            true,
        ),
        Row(
            "notifications.webhookHeaders",
            json!("Authorization=Bearer abc,X-Env=prod"),
            "WEBHOOK_HEADERS",
            "Authorization=Bearer abc,X-Env=prod",
            true,
        ),
        Row(
            "notifications.webhookSecret",
            json!("s3cret"),
            "WEBHOOK_SECRET",
            "s3cret",
            true,
        ),
        Row(
            "notifications.notifyUrls",
            json!("slack://hook:a-b-c@webhook discord://token@123"),
            "NOTIFY_URLS",
            "slack://hook:a-b-c@webhook discord://token@123",
            true,
        ),
        Row(
            "notifications.notifyEndpointOverride",
            json!("slack=http://127.0.0.1:9000"),
            "NOTIFY_ENDPOINT_OVERRIDE",
            "slack=http://127.0.0.1:9000",
            true,
        ),
        Row(
            "notifications.deploymentDetected",
            json!(true),
            "WEBHOOK_ENABLE_DEPLOYMENT_DETECTED",
            "true",
            false,
        ),
        Row(
            "notifications.imageRolloutStarted",
            json!(false),
            "WEBHOOK_ENABLE_IMAGE_ROLLOUT_STARTED",
            "false",
            false,
        ),
        Row(
            "notifications.imageRolloutCompleted",
            json!(false),
            "WEBHOOK_ENABLE_IMAGE_ROLLOUT_COMPLETED",
            "false",
            false,
        ),
        Row(
            "notifications.imageRolloutFailed",
            json!(false),
            "WEBHOOK_ENABLE_IMAGE_ROLLOUT_FAILED",
            "false",
            false,
        ),
        Row(
            "notifications.timeout",
            json!(5000),
            "WEBHOOK_TIMEOUT",
            "5000",
            false,
        ),
        Row(
            "notifications.retryCount",
            json!(5),
            "WEBHOOK_RETRY_COUNT",
            "5",
            false,
        ),
        Row(
            "events.port",
            json!(9091),
            "EVENTS_ADDR",
            "0.0.0.0:9091",
            false,
        ),
        Row(
            "events.tokens.default",
            json!("d".repeat(24)),
            "EVENTS_TOKEN",
            "dddddddddddddddddddddddd",
            true,
        ),
        Row(
            "events.tokens.distribution",
            json!(TOKEN),
            "EVENTS_TOKEN_DISTRIBUTION",
            TOKEN,
            true,
        ),
        Row(
            "events.tokens.dockerhub",
            json!(TOKEN),
            "EVENTS_TOKEN_DOCKERHUB",
            TOKEN,
            true,
        ),
        Row(
            "events.tokens.github",
            json!(TOKEN),
            "EVENTS_TOKEN_GITHUB",
            TOKEN,
            true,
        ),
        Row(
            "events.tokens.harbor",
            json!(TOKEN),
            "EVENTS_TOKEN_HARBOR",
            TOKEN,
            true,
        ),
        Row(
            "events.tokens.quay",
            json!(TOKEN),
            "EVENTS_TOKEN_QUAY",
            TOKEN,
            true,
        ),
        Row(
            "verify.enabled",
            json!(true),
            "VERIFY_KEYS",
            "/etc/watch-cluster/verify-keys",
            false,
        ),
    ]
}

/// The base every row is rendered on: the components on, so their variables exist to be changed.
fn base() -> Value {
    json!({
        "events": {"enabled": true, "tokens": {"default": "e".repeat(24)}},
        "verify": {"keys": {"release.pub": "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"}},
    })
}

#[test]
fn every_setting_value_renders_into_the_variable_it_names() {
    let before = container_env(&template_values(&base()));
    for Row(path, value, variable, expected, credential) in rows() {
        let mut values = base();
        set_path(&mut values, path, value.clone());
        let rendered = template_values(&values);
        let env = container_env(&rendered);
        assert_eq!(
            env.get(variable).map(String::as_str),
            Some(expected),
            "{path}={value} → {variable}"
        );
        assert_ne!(
            before.get(variable).map(String::as_str),
            Some(expected),
            "{path}: the row changes nothing"
        );
        let in_config_map = rendered
            .iter()
            .filter(|d| d["kind"] == "ConfigMap")
            .any(|d| d["data"].get(variable).is_some());
        assert_eq!(
            !in_config_map,
            credential || variable.starts_with("EVENTS_ADDR") || variable == "VERIFY_KEYS",
            "{variable}: credentials in a Secret, plain settings in the ConfigMap"
        );
        if credential {
            let in_secret = rendered
                .iter()
                .filter(|d| d["kind"] == "Secret")
                .any(|d| d["stringData"][variable] == expected);
            assert!(in_secret, "{variable} is in a Secret the chart created");
        }
    }
}

#[test]
fn the_pod_knows_its_own_name_and_namespace_from_the_downward_api() {
    let env = container_env(&template(&[]));
    assert_eq!(env["POD_NAME"], "<fieldRef:metadata.name>");
    assert_eq!(env["POD_NAMESPACE"], "<fieldRef:metadata.namespace>");
}

#[test]
fn every_value_of_a_setting_has_a_row() {
    let values = default_values();
    let mut leaves = Vec::new();
    for section in ["config", "notifications", "events.tokens"] {
        let mut at = &values;
        for part in section.split('.') {
            at = &at[part];
        }
        for key in at.as_object().unwrap().keys() {
            leaves.push(format!("{section}.{key}"));
        }
    }
    let rows: BTreeSet<&str> = rows().iter().map(|r| r.0).collect();
    let missing: Vec<&String> = leaves
        .iter()
        .filter(|l| !rows.contains(l.as_str()) && *l != "notifications.existingSecret")
        .collect();
    assert!(
        missing.is_empty(),
        "values without a row in tests/helm/settings.rs: {missing:?}"
    );
}

#[test]
fn every_variable_the_controller_reads_has_a_value() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_watch-cluster"))
        .args(["run", "--help"])
        .output()
        .expect("watch-cluster run --help");
    let help = String::from_utf8_lossy(&output.stdout);
    let mut read: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect();
    assert!(
        read.contains("WATCH_NAMESPACES") && read.len() > 30,
        "{help}"
    );
    // Read outside the flags (docs/settings.md): the downward API's namespace and the tracing filter.
    read.extend(["POD_NAMESPACE".to_owned(), "RUST_LOG".to_owned()]);
    let env = container_env(&template_values(&base()));
    let covered: BTreeSet<&str> = rows().iter().map(|r| r.2).collect();
    let missing: Vec<&String> = read
        .iter()
        .filter(|v| !covered.contains(v.as_str()) && !env.contains_key(v.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "variables the controller reads that the chart cannot set: {missing:?}"
    );
}

#[test]
fn existing_secrets_and_key_maps_are_referenced_and_not_created() {
    let rendered = template_values(&json!({
        "notifications": {"existingSecret": "my-webhook"},
        "events": {"enabled": true, "existingSecret": "my-events"},
        "verify": {"enabled": true, "existingConfigMap": "my-keys"},
    }));
    assert!(
        rendered.iter().all(|d| d["kind"] != "Secret"),
        "no Secret when each is named: {rendered:#?}"
    );
    assert!(
        rendered
            .iter()
            .all(|d| d["metadata"]["name"] != "watch-cluster-verify-keys")
    );
    let env = container_env(&rendered);
    assert_eq!(env["EVENTS_TOKEN"], "<secretKeyRef:my-events/EVENTS_TOKEN>");
    let deployment = find(&rendered, "Deployment", "watch-cluster");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["envFrom"][1]["secretRef"]["name"],
        "my-webhook"
    );
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "my-keys");
}

/// docs/helm.md's values table is generated from values.yaml (path, default, the `# --` comment):
/// `HELM_DOCS_WRITE=1` rewrites it; otherwise a difference fails.
#[test]
fn the_values_table_of_docs_helm_md_is_values_yaml() {
    let table = values_table(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap());
    let path = workspace().join("docs/helm.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = ("<!-- values:begin -->\n", "<!-- values:end -->");
    let start = doc
        .find(begin)
        .expect("docs/helm.md has <!-- values:begin -->")
        + begin.len();
    let stop = doc.find(end).expect("docs/helm.md has <!-- values:end -->");
    if std::env::var_os("HELM_DOCS_WRITE").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &doc[..start], &doc[stop..])).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..stop],
        table,
        "docs/helm.md's values table is not values.yaml's: HELM_DOCS_WRITE=1 cargo nextest run -p watch-cluster \
         --test helm -E 'test(the_values_table_of_docs_helm_md_is_values_yaml)' rewrites it"
    );
}

/// A Markdown table of every leaf of values.yaml: `| path | default | description |`, the description
/// being the `# --` comment above the key (or above its nearest commented parent).
fn values_table(yaml: &str) -> String {
    let mut out = String::from("| Value | Default | Meaning |\n|---|---|---|\n");
    let mut parents: Vec<(usize, String, String)> = Vec::new();
    let mut comment: Option<String> = None;
    let lines: Vec<&str> = yaml.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(text) = trimmed.strip_prefix("# -- ") {
            comment = Some(text.to_owned());
            continue;
        }
        if let Some(text) = trimmed.strip_prefix("# ") {
            if let Some(c) = comment.as_mut() {
                c.push(' ');
                c.push_str(text);
            }
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("- ") {
            continue;
        }
        let Some((key, rest)) = trimmed.split_once(':') else {
            continue;
        };
        while parents.last().is_some_and(|(i, _, _)| *i >= indent) {
            parents.pop();
        }
        let path: Vec<&str> = parents
            .iter()
            .map(|(_, k, _)| k.as_str())
            .chain([key])
            .collect();
        let path = path.join(".");
        let inherited = parents
            .iter()
            .rev()
            .map(|(_, _, c)| c.as_str())
            .find(|c| !c.is_empty());
        let meaning = comment.take().unwrap_or_default();
        let rest = rest.trim();
        let has_children = rest.is_empty()
            && lines[index + 1..]
                .iter()
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .is_some_and(|next| {
                    let next_indent = next.len() - next.trim_start().len();
                    next_indent > indent && !next.trim_start().starts_with("- ")
                });
        if has_children {
            parents.push((indent, key.to_owned(), meaning));
            continue;
        }
        let default = if rest.is_empty() {
            "(list)".to_owned()
        } else {
            rest.to_owned()
        };
        let meaning = if meaning.is_empty() {
            inherited.unwrap_or_default().to_owned()
        } else {
            meaning
        };
        out.push_str(&format!(
            "| `{path}` | `{}` | {} |\n",
            default.replace('|', "\\|"),
            meaning.replace('|', "\\|")
        ));
    }
    out
}
