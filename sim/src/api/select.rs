//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!` not-exists) and field selectors
//! (`path=value`, `path!=value`, joined by commas) as list and watch filters.

use serde_json::Value;

use super::status::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<LabelSelector, ApiError> {
        split_top_level(text)
            .into_iter()
            .map(|part| parse_requirement(part.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(LabelSelector)
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

fn parse_requirement(part: &str) -> Result<Requirement, ApiError> {
    let invalid = || ApiError::bad_request(format!("unable to parse requirement: {part:?}"));
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(k.trim().into(), v.trim().into()));
    }
    if let Some(open) = part.find('(') {
        let close = part.rfind(')').filter(|c| *c > open).ok_or_else(invalid)?;
        let values = part[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .collect();
        let head: Vec<&str> = part[..open].split_whitespace().collect();
        return match head.as_slice() {
            [k, "in"] => Ok(Requirement::In((*k).into(), values)),
            [k, "notin"] => Ok(Requirement::NotIn((*k).into(), values)),
            _ => Err(invalid()),
        };
    }
    match part.strip_prefix('!') {
        Some(k) if !k.trim().is_empty() => Ok(Requirement::NotExists(k.trim().into())),
        None if !part.contains(char::is_whitespace) => Ok(Requirement::Exists(part.into())),
        _ => Err(invalid()),
    }
}

/// A parsed field selector over dotted paths such as `metadata.name`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(Vec<String>, String, bool)>);

impl FieldSelector {
    pub fn parse(text: &str) -> Result<FieldSelector, ApiError> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, value, equal) = if let Some((p, v)) = part.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (p, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let path = path.trim().split('.').map(str::to_string).collect();
            terms.push((path, value.trim().to_string(), equal));
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, want, equal)| {
            let mut cur = Some(object);
            for seg in path {
                cur = cur.and_then(|c| c.get(seg));
            }
            let actual = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *want) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj() -> Value {
        json!({"metadata": {"name": "web", "namespace": "a", "labels": {"app": "web", "tier": "front"}}})
    }

    fn sel(s: &str) -> bool {
        LabelSelector::parse(s)
            .map(|l| l.matches(&obj()))
            .unwrap_or(false)
    }

    #[test]
    fn label_selector_operators_match_like_kubernetes() {
        assert!(sel("app=web"));
        assert!(sel("app==web,tier"));
        assert!(!sel("app!=web"));
        assert!(sel("tier in (front, back)"));
        assert!(!sel("tier notin (front)"));
        assert!(sel("!missing"));
        assert!(!sel("missing"));
        assert!(sel(""));
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selector_matches_name_and_namespace() {
        let f = FieldSelector::parse("metadata.name=web,metadata.namespace!=b").unwrap_or_default();
        assert!(f.matches(&obj()));
        let f = FieldSelector::parse("metadata.name=other").unwrap_or_default();
        assert!(!f.matches(&obj()));
    }
}
