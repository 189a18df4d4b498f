//! A kubeconfig pointing at the simulated API server over plain HTTP with a bearer token, for
//! kubectl and kube clients started as separate processes.

use std::path::Path;

/// The kubeconfig YAML for `server_url` and `token` (context and cluster named `sim`).
pub fn kubeconfig_yaml(server_url: &str, token: &str, namespace: &str) -> String {
    // JSON strings are valid YAML scalars and escape anything unusual in the inputs.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {server}\n\
         users:\n- name: sim\n  user:\n    token: {token}\n\
         contexts:\n- name: sim\n  context:\n    cluster: sim\n    user: sim\n    namespace: {namespace}\n\
         current-context: sim\npreferences: {{}}\n",
        server = q(server_url),
        token = q(token),
        namespace = q(namespace),
    )
}

/// Writes [`kubeconfig_yaml`] to `path`.
pub fn write_kubeconfig(
    path: &Path,
    server_url: &str,
    token: &str,
    namespace: &str,
) -> std::io::Result<()> {
    std::fs::write(path, kubeconfig_yaml(server_url, token, namespace))
}
