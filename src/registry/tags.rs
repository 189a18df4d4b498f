//! Decoding tag lists and deciding how to page through them (pure; docs/guarantees.md#registries).
//!
//! Input: each page's body and `Link` header. Output: the next URL to fetch, or stop. Pagination stops on
//! an empty page, a page without new tags, a page larger than the `n` we asked for (the registry ignores
//! `n`, as distribution 2.8 does, and returned everything), a `Link` to another host, or the page cap.
//! Without a `Link`, a full page is followed by `?n=&last=`, unless the registry sent `Link` on an earlier page
//! (then its absence marks the last page).

use std::collections::HashSet;

use url::Url;

#[derive(serde::Deserialize)]
struct TagPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// Decodes one `tags/list` page (`{"name":…,"tags":[…]}`; `null` tags means none).
pub(crate) fn decode_page(body: &[u8]) -> Result<Vec<String>, String> {
    let page: TagPage =
        serde_json::from_slice(body).map_err(|e| format!("tag list is not valid JSON: {e}"))?;
    Ok(page.tags.unwrap_or_default())
}

/// The `rel="next"` target of a `Link` header, resolved against the page's URL.
pub(crate) fn next_link(header: &str, current: &Url) -> Option<Url> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r == "next")
            })
        });
        if is_next {
            current.join(target).ok()
        } else {
            None
        }
    })
}

/// What to do after a page.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Fetch(Url),
    Done,
    /// Stopped early for a reason worth a log line.
    Stopped(&'static str),
}

/// Collects tags across pages.
pub(crate) struct Pager {
    page_size: usize,
    max_pages: usize,
    pages: usize,
    /// A registry that sent `Link` once marks the last page by sending none.
    saw_link: bool,
    seen: HashSet<String>,
    tags: Vec<String>,
}

impl Pager {
    pub(crate) fn new(page_size: usize, max_pages: usize) -> Self {
        Self {
            page_size,
            max_pages,
            pages: 0,
            saw_link: false,
            seen: HashSet::new(),
            tags: Vec::new(),
        }
    }

    /// The first page's URL: `…/tags/list?n=<page size>`.
    pub(crate) fn first_url(&self, list_url: &Url) -> Url {
        let mut url = list_url.clone();
        url.query_pairs_mut()
            .append_pair("n", &self.page_size.to_string());
        url
    }

    /// Takes one page; `link` is the page's `Link` target, if any.
    pub(crate) fn accept(&mut self, page: Vec<String>, link: Option<Url>, current: &Url) -> Next {
        self.pages += 1;
        let len = page.len();
        let last = page.last().cloned();
        let before = self.tags.len();
        for tag in page {
            if self.seen.insert(tag.clone()) {
                self.tags.push(tag);
            }
        }
        if len == 0 || self.tags.len() == before || len > self.page_size {
            return Next::Done;
        }
        self.saw_link |= link.is_some();
        let next = match (link, last) {
            (Some(url), _) if url.origin() != current.origin() => {
                return Next::Stopped("Link points to another host");
            }
            (Some(url), _) => url,
            (None, Some(last)) if len == self.page_size && !self.saw_link => {
                let mut url = current.clone();
                url.query_pairs_mut()
                    .clear()
                    .append_pair("n", &self.page_size.to_string())
                    .append_pair("last", &last);
                url
            }
            _ => return Next::Done,
        };
        if self.pages >= self.max_pages {
            return Next::Stopped("page cap reached");
        }
        Next::Fetch(next)
    }

    /// All distinct tags seen, in the registry's order.
    pub(crate) fn into_tags(self) -> Vec<String> {
        self.tags
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn tags(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("t{i}")).collect()
    }

    #[test]
    fn pages_decode_with_null_or_missing_tags_as_empty() {
        assert_eq!(
            decode_page(br#"{"name":"a","tags":["1","2"]}"#).unwrap(),
            vec!["1", "2"]
        );
        assert!(
            decode_page(br#"{"name":"a","tags":null}"#)
                .unwrap()
                .is_empty()
        );
        assert!(decode_page(br#"{"tags":"x"}"#).is_err());
        assert!(decode_page(b"not json").is_err());
    }

    #[test]
    fn link_next_is_resolved_relative_or_absolute() {
        let cur = url("https://r.example/v2/a/tags/list?n=2");
        let next = next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#, &cur).unwrap();
        assert_eq!(next.as_str(), "https://r.example/v2/a/tags/list?n=2&last=b");
        let abs = next_link(r#"<https://o.example/x>; rel=next"#, &cur).unwrap();
        assert_eq!(abs.host_str(), Some("o.example"));
        assert_eq!(next_link(r#"</x>; rel="prev""#, &cur), None);
        assert_eq!(next_link("garbage", &cur), None);
    }

    #[test]
    fn a_registry_ignoring_n_stops_after_one_page() {
        let cur = url("http://r/v2/a/tags/list?n=10");
        let mut pager = Pager::new(10, 50);
        assert_eq!(pager.accept(tags(0..25), None, &cur), Next::Done);
        let mut pager = Pager::new(10, 50);
        let again = cur.clone();
        assert!(matches!(
            pager.accept(tags(0..10), None, &cur),
            Next::Fetch(_)
        ));
        assert_eq!(
            pager.accept(tags(0..10), None, &again),
            Next::Done,
            "no new tags"
        );
        assert_eq!(pager.into_tags().len(), 10);
    }

    #[test]
    fn full_pages_continue_with_last_and_links_elsewhere_stop() {
        let cur = url("http://r/v2/a/tags/list?n=2");
        let mut pager = Pager::new(2, 50);
        let Next::Fetch(next) = pager.accept(tags(0..2), None, &cur) else {
            panic!("expected another page")
        };
        assert_eq!(next.query(), Some("n=2&last=t1"));
        let other = url("http://evil/v2/a/tags/list");
        assert!(matches!(
            pager.accept(tags(2..4), Some(other), &cur),
            Next::Stopped(_)
        ));
        assert_eq!(pager.accept(Vec::new(), None, &cur), Next::Done);
    }

    #[test]
    fn after_a_link_a_full_page_without_one_is_the_last() {
        let cur = url("http://r/v2/a/tags/list?n=2");
        let mut pager = Pager::new(2, 50);
        let link = url("http://r/v2/a/tags/list?n=2&last=t1");
        assert_eq!(
            pager.accept(tags(0..2), Some(link.clone()), &cur),
            Next::Fetch(link)
        );
        assert_eq!(pager.accept(tags(2..4), None, &cur), Next::Done);
        assert_eq!(pager.into_tags(), tags(0..4));
    }

    #[test]
    fn the_page_cap_ends_an_endless_listing() {
        let cur = url("http://r/v2/a/tags/list?n=1");
        let mut pager = Pager::new(1, 3);
        let outcomes: Vec<_> = (0..3)
            .map(|i| pager.accept(tags(i..i + 1), None, &cur))
            .collect();
        assert!(matches!(outcomes[1], Next::Fetch(_)));
        assert_eq!(outcomes[2], Next::Stopped("page cap reached"));
    }

    proptest! {
        #[test]
        fn any_body_decodes_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_page(&bytes);
        }

        #[test]
        fn json_like_bodies_decode_without_panicking(s in r#"[{}\[\]":,a-z0-9 ]{0,80}"#) {
            let _ = decode_page(s.as_bytes());
        }

        #[test]
        fn any_link_header_parses_without_panicking(s in ".*") {
            let _ = next_link(&s, &url("https://r.example/v2/a/tags/list"));
        }
    }
}
