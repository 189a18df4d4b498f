//! ControllerRevisions of StatefulSets and DaemonSets: one per distinct pod template, named
//! `<owner>-<hash>`, holding the template so pods of an older revision can be recreated.

use serde_json::{Value, json};

use super::ctx::{Ctx, WriteError};
use super::meta::{self, ObjRef};
use crate::store::Kind;

/// Makes sure the revision `<owner>-<hash>` of `template` exists; returns its name.
pub(crate) fn ensure(
    ctx: &mut Ctx<'_>,
    owner_kind: Kind,
    owner: &Value,
    template: &Value,
    hash: &str,
) -> Result<String, WriteError> {
    let name = format!("{}-{hash}", meta::name(owner));
    let ns = meta::namespace(owner);
    if ctx
        .cache
        .get(&ObjRef::new(Kind::ControllerRevision, ns, &name))
        .is_some()
    {
        return Ok(name);
    }
    let next = ctx
        .cache
        .children(meta::uid(owner), Kind::ControllerRevision)
        .iter()
        .filter_map(|cr| cr.get("revision").and_then(Value::as_i64))
        .max()
        .unwrap_or(0)
        + 1;
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    labels["controller.kubernetes.io/hash"] = json!(hash);
    let cr = json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
            "ownerReferences": meta::owner_reference(owner_kind, owner)},
        "data": {"spec": {"template": template}},
        "revision": next,
    });
    ctx.create(Kind::ControllerRevision, cr)?;
    Ok(name)
}

/// The pod template stored in revision `name`, if known.
pub(crate) fn template(ctx: &Ctx<'_>, namespace: &str, name: &str) -> Option<Value> {
    ctx.cache
        .get(&ObjRef::new(Kind::ControllerRevision, namespace, name))
        .and_then(|cr| cr.pointer("/data/spec/template").cloned())
}
