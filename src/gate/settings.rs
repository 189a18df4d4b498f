//! The gate annotations as [`Settings`](crate::annotations::Settings) holds them (docs/annotations.md#safety-gates).
//!
//! Input: a workload's annotations, the zone of `TZ` and its strategy. Output: [`Gates`], and one
//! [`InvalidAnnotation`] (with a valid example) per gate annotation that cannot be used. An invalid gate is
//! left at its default in [`Gates`]: checks go on, and the caller starts no update while any error stands.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{SkipList, TagFilter, UpdateWindow};
use crate::{
    admit::Held,
    annotations::{
        HOLD, InvalidAnnotation, MIN_AGE, SKIP, TAG_FILTER, UPDATE_WINDOW, VERIFY, non_empty,
    },
    duration,
    strategy::Strategy,
};

/// The safety gates of a workload (docs/annotations.md#safety-gates).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gates {
    /// When an update may start; `None` is always.
    pub update_window: Option<UpdateWindow>,
    /// How long a candidate must have been seen before it is taken.
    pub min_age: Option<std::time::Duration>,
    /// Nothing is applied.
    pub hold: bool,
    /// Tags and digests never to take.
    pub skip: SkipList,
    /// What candidate tags must match (version strategies only).
    pub tag_filter: Option<TagFilter>,
    /// `verify: cosign`: candidates are taken only with a verifying signature (docs/signatures.md).
    pub verify: bool,
}

impl Gates {
    /// Why an update decided at `now` may not start yet, for the gates that decide *when* (`hold`, then
    /// `update-window`); `force` (`check-now: "force"`) skips the window, never `hold`. Empty: it may start
    /// (as far as these gates go: min-age holds come from deciding, rollout slots from the caller).
    pub fn holds_at(&self, now: DateTime<Utc>, force: bool) -> Vec<Held> {
        let mut holds = Vec::new();
        if self.hold {
            holds.push(Held::Hold);
        }
        if let Some(window) = self.update_window.as_ref().filter(|_| !force)
            && !window.is_open(now)
        {
            holds.push(Held::Window {
                opens_at: window.next_open(now),
            });
        }
        holds
    }

    /// Reads the gate annotations; each invalid one is an error, the others are still read.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        tz: chrono_tz::Tz,
        strategy: Strategy,
    ) -> (Gates, Vec<InvalidAnnotation>) {
        let mut gates = Gates::default();
        let mut errors = Vec::new();
        let mut keep = |result: Result<(), InvalidAnnotation>| {
            if let Err(e) = result {
                errors.push(e);
            }
        };
        keep(read(annotations, UPDATE_WINDOW, |v| {
            gates.update_window = Some(parse_window(v, tz)?);
            Ok(())
        }));
        keep(read(annotations, MIN_AGE, |v| {
            gates.min_age = Some(duration::parse(v).map_err(|e| invalid(MIN_AGE, v, e, "24h"))?);
            Ok(())
        }));
        keep(read(annotations, HOLD, |v| {
            gates.hold = match v.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(invalid(HOLD, v, "expected true or false", "true")),
            };
            Ok(())
        }));
        keep(read(annotations, SKIP, |v| {
            gates.skip = SkipList::parse(v).map_err(|e| invalid(SKIP, v, e, SKIP_EXAMPLE))?;
            Ok(())
        }));
        keep(read(annotations, TAG_FILTER, |v| {
            if strategy == Strategy::Latest {
                return Err(invalid(
                    TAG_FILTER,
                    v,
                    "strategy latest follows one tag; a tag filter needs a version strategy",
                    r"1\.2\.[0-9]+",
                ));
            }
            let filter = TagFilter::parse(v).map_err(|e| {
                // The regex error's own text says where the pattern is wrong.
                let problem = match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                };
                invalid(TAG_FILTER, v, problem, r"1\.2\.[0-9]+")
            })?;
            gates.tag_filter = Some(filter);
            Ok(())
        }));
        keep(read(annotations, VERIFY, |v| {
            if !v.eq_ignore_ascii_case("cosign") {
                return Err(invalid(
                    VERIFY,
                    v,
                    "expected cosign (the only verification supported)",
                    "cosign",
                ));
            }
            gates.verify = true;
            Ok(())
        }));
        (gates, errors)
    }
}

const SKIP_EXAMPLE: &str = "1.3.0,1.4.0@sha256:<64 hex digits>";

/// Runs `parse` on the annotation's trimmed value, when it is set and not blank.
fn read(
    annotations: &BTreeMap<String, String>,
    key: &str,
    parse: impl FnOnce(&str) -> Result<(), InvalidAnnotation>,
) -> Result<(), InvalidAnnotation> {
    non_empty(annotations, key).map_or(Ok(()), parse)
}

fn invalid(
    annotation: &'static str,
    value: &str,
    problem: impl ToString,
    example: &str,
) -> InvalidAnnotation {
    InvalidAnnotation {
        annotation,
        value: value.to_owned(),
        problem: problem.to_string(),
        example: example.to_owned(),
    }
}

fn parse_window(value: &str, tz: chrono_tz::Tz) -> Result<UpdateWindow, InvalidAnnotation> {
    let example = crate::gate::window::WINDOW_EXAMPLE;
    let window = UpdateWindow::parse(value, tz).map_err(|e| {
        let problem = match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        };
        invalid(UPDATE_WINDOW, value, problem, example)
    })?;
    if window.next_open(Utc::now()).is_none() {
        return Err(invalid(
            UPDATE_WINDOW,
            value,
            "it never opens again (a past year, or a date that does not exist)",
            example,
        ));
    }
    Ok(window)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::annotations::{STRATEGY, Settings};

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn gate_error(pairs: &[(&str, &str)]) -> InvalidAnnotation {
        let s = Settings::from_annotations(&annotations(pairs), chrono_tz::UTC).unwrap();
        assert_eq!(s.gate_errors.len(), 1, "{:?}", s.gate_errors);
        s.gate_errors[0].clone()
    }

    #[test]
    fn gates_default_to_open_and_are_read_when_set() {
        let s = Settings::from_annotations(&annotations(&[]), chrono_tz::UTC).unwrap();
        assert_eq!(s.gates, Gates::default());
        assert!(s.gate_errors.is_empty());
        let digest = format!("sha256:{}", "a".repeat(64));
        let s = Settings::from_annotations(
            &annotations(&[
                (UPDATE_WINDOW, "0 0 2 * * SAT-SUN for 4h"),
                (MIN_AGE, "1d12h"),
                (HOLD, "TRUE"),
                (SKIP, &format!("1.3.0,1.4.0@{digest}")),
                (TAG_FILTER, r"1\.2\.[0-9]+"),
            ]),
            chrono_tz::UTC,
        )
        .unwrap();
        assert!(s.gate_errors.is_empty(), "{:?}", s.gate_errors);
        let gates = s.gates;
        assert_eq!(
            gates.update_window.unwrap().expression(),
            "0 0 2 * * SAT-SUN for 4h"
        );
        assert_eq!(gates.min_age, Some(std::time::Duration::from_secs(129_600)));
        assert!(gates.hold);
        assert!(gates.skip.matches("1.3.0", "sha256:x"));
        assert!(gates.skip.matches("1.4.0", &digest));
        assert!(gates.tag_filter.unwrap().matches("1.2.7"));
        let off =
            Settings::from_annotations(&annotations(&[(HOLD, "False")]), chrono_tz::UTC).unwrap();
        assert!(!off.gates.hold && off.gate_errors.is_empty());
    }

    #[test]
    fn each_invalid_gate_is_named_with_an_example_and_checks_go_on() {
        let cases: [(&str, &str, &str); 9] = [
            (HOLD, "yes", "true"),
            (MIN_AGE, "1 day", "24h"),
            (MIN_AGE, "30m1h", "24h"),
            (UPDATE_WINDOW, "0 0 2 * * SAT for 8d", "for 4h"),
            (UPDATE_WINDOW, "0 0 2 * * SAT", "for 4h"),
            (UPDATE_WINDOW, "0 0 0 1 1 ? 2020 for 1h", "for 4h"),
            (SKIP, "1.3.0@sha256:abc", "sha256:<64 hex digits>"),
            (TAG_FILTER, "1.(2", "[0-9]+"),
            (TAG_FILTER, &"a".repeat(1025), "[0-9]+"),
        ];
        for (key, value, example) in cases {
            let err = gate_error(&[(key, value)]);
            assert_eq!(err.annotation, key, "{value}");
            assert_eq!(err.value, value);
            assert!(err.example.contains(example), "{err}");
        }
        let err = gate_error(&[(STRATEGY, "latest"), (TAG_FILTER, "1\\..*")]);
        assert_eq!(err.annotation, TAG_FILTER);
        assert!(err.problem.contains("latest"), "{err}");
        // Every bad gate is reported, and the good ones still apply.
        let s = Settings::from_annotations(
            &annotations(&[(HOLD, "maybe"), (MIN_AGE, "soon"), (SKIP, "1.0.0")]),
            chrono_tz::UTC,
        )
        .unwrap();
        let named: Vec<&str> = s.gate_errors.iter().map(|e| e.annotation).collect();
        assert_eq!(named, [MIN_AGE, HOLD]);
        assert!(s.gates.skip.matches("1.0.0", "sha256:x"));
    }

    #[test]
    fn hold_and_a_closed_window_hold_an_update_and_force_skips_only_the_window() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let (gates, errors) = Gates::from_annotations(
            &annotations(&[(UPDATE_WINDOW, "0 0 2 * * SAT for 4h"), (HOLD, "true")]),
            chrono_tz::UTC,
            Strategy::Version,
        );
        assert!(errors.is_empty());
        // Thursday 1 January 2026: the window opens on Saturday the 3rd at 02:00.
        let thursday = at("2026-01-01T00:00:00Z");
        assert_eq!(
            gates.holds_at(thursday, false),
            [
                Held::Hold,
                Held::Window {
                    opens_at: Some(at("2026-01-03T02:00:00Z"))
                }
            ]
        );
        assert_eq!(gates.holds_at(thursday, true), [Held::Hold]);
        let open = Gates {
            hold: false,
            ..gates
        };
        assert!(open.holds_at(at("2026-01-03T03:00:00Z"), false).is_empty());
        assert!(Gates::default().holds_at(thursday, false).is_empty());
    }

    /// The text of a docs/annotations.md section, up to the next heading of any level.
    fn doc_section(heading: &str) -> &'static str {
        let doc = include_str!("../../docs/annotations.md");
        let start = doc
            .find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("{heading} is in docs/annotations.md"));
        let rest = &doc[start + heading.len() + 2..];
        rest.find("\n#").map_or(rest, |end| &rest[..end])
    }

    /// The first `code` of every table row of a section.
    fn table_values(section: &str) -> Vec<&str> {
        section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split_once('`').map(|(value, _)| value))
            .collect()
    }

    #[test]
    fn verify_accepts_cosign_in_any_case_and_needs_a_key() {
        let s = Settings::from_annotations(&annotations(&[(VERIFY, "Cosign")]), chrono_tz::UTC)
            .unwrap();
        assert!(s.gates.verify && s.gate_errors.is_empty());
        assert!(s.clone().with_keys(true).gate_errors.is_empty());
        let without = s.with_keys(false);
        assert_eq!(without.gate_errors.len(), 1);
        assert!(without.gate_errors[0].problem.contains("VERIFY_KEYS"));
        let bad = gate_error(&[(VERIFY, "notary")]);
        assert_eq!((bad.annotation, bad.example.as_str()), (VERIFY, "cosign"));
        let off = Settings::from_annotations(&annotations(&[]), chrono_tz::UTC).unwrap();
        assert!(!off.gates.verify && off.with_keys(false).gate_errors.is_empty());
    }

    #[test]
    fn the_documented_examples_are_valid() {
        let yaml: Vec<(String, String)> = doc_section("## Safety gates")
            .lines()
            .filter_map(|line| line.trim().strip_prefix("watch-cluster.io/"))
            .filter_map(|line| line.split_once(": "))
            .map(|(key, value)| {
                let value = value.split(" #").next().unwrap_or(value).trim();
                let unquoted = value.trim_matches(|c| c == '"' || c == '\'');
                (format!("watch-cluster.io/{key}"), unquoted.to_owned())
            })
            .collect();
        assert_eq!(yaml.len(), 5, "{yaml:?}");
        let map: BTreeMap<String, String> = yaml.into_iter().collect();
        let settings = Settings::from_annotations(&map, chrono_tz::UTC).unwrap();
        assert!(
            settings.gate_errors.is_empty(),
            "{:?}",
            settings.gate_errors
        );
        assert!(settings.gates.tag_filter.unwrap().matches("1.2.10"));
        assert!(settings.gates.update_window.is_some() && settings.gates.min_age.is_some());

        let windows = table_values(doc_section("### update-window"));
        assert_eq!(windows.len(), 4);
        for window in windows {
            UpdateWindow::parse(window, chrono_tz::UTC).unwrap_or_else(|e| panic!("{window}: {e}"));
        }
        let crons = table_values(doc_section("### cron"));
        assert_eq!(crons.len(), 4);
        for cron in crons {
            crate::schedule::Schedule::parse(cron, chrono_tz::UTC)
                .unwrap_or_else(|e| panic!("{cron}: {e}"));
        }
        for duration in ["30m", "24h", "7d", "1h30m", "1d12h"] {
            assert!(doc_section("### Durations").contains(&format!("`{duration}`")));
            duration::parse(duration).unwrap();
        }
    }
}
