//! Answers that need not be read or rendered again: each infra's report (and
//! the list of infras) is kept rendered with the tag of what it was rendered
//! from (the store's `infra_tag`, which every write about the infra moves,
//! whichever process or replica makes it; `list_tag` for the list), and sent
//! as its HTTP entity tag. A request whose
//! `If-None-Match` names the current tag gets 304 without anything being
//! read or rendered; another gets the kept bytes while the tag holds. So a
//! portal polling an infra costs one indexed read of two numbers, not every
//! instance read and rendered again.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Mutex;

/// The answers rendered, by path: (tag, JSON bytes).
#[derive(Default)]
pub(crate) struct Rendered(Mutex<HashMap<String, (String, Bytes)>>);

impl Rendered {
    /// The answer of `path` rendered at `tag`, rendering it with `render`
    /// unless it is kept.
    pub(crate) fn get_or_render<E>(
        &self,
        path: &str,
        tag: &str,
        render: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        if let Some((kept, bytes)) = self.lock().get(path)
            && kept == tag
        {
            return Ok(bytes.clone());
        }
        // Rendered outside the lock: other paths' readers do not wait.
        let bytes = render()?;
        self.lock()
            .insert(path.to_string(), (tag.to_string(), bytes.clone()));
        Ok(bytes)
    }

    /// Forgets `path` (its infra is no longer recorded).
    pub(crate) fn forget(&self, path: &str) {
        self.lock().remove(path);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Bytes)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `tag` as an entity tag: quoted.
pub(crate) fn entity_tag(tag: &str) -> String {
    format!("\"{tag}\"")
}

/// Whether the request's `If-None-Match` names `etag` (or `*`); weak tags
/// compare as strong ones, as RFC 9110 says for this header.
pub(crate) fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|candidate| candidate.trim().trim_start_matches("W/"))
        .any(|candidate| candidate == "*" || candidate == etag)
}

/// A JSON answer with its entity tag, or 304 when the client has it.
pub(crate) fn tagged_json(
    headers: &HeaderMap,
    etag: &str,
    body: impl FnOnce() -> Result<Bytes, crate::error::HttpError>,
) -> Result<Response, crate::error::HttpError> {
    let etag_value = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\""));
    if not_modified(headers, etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag_value),
        ],
        body()?,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn if_none_match_names_the_tag_in_a_list_weakly_or_by_star() {
        let etag = entity_tag("17-4");
        assert!(not_modified(&with("\"17-4\""), &etag));
        assert!(not_modified(&with("\"1-1\", W/\"17-4\""), &etag));
        assert!(not_modified(&with("*"), &etag));
        assert!(!not_modified(&with("\"17-5\""), &etag));
        assert!(!not_modified(&HeaderMap::new(), &etag));
    }

    #[test]
    fn a_report_is_rendered_again_only_when_its_tag_moves() {
        let reports = Rendered::default();
        let mut renders = 0;
        let mut render = |text: &'static str| {
            renders += 1;
            Ok::<_, ()>(Bytes::from_static(text.as_bytes()))
        };
        assert_eq!(
            reports.get_or_render("i1", "1-1", || render("a")).unwrap(),
            "a"
        );
        assert_eq!(
            reports.get_or_render("i1", "1-1", || render("b")).unwrap(),
            "a"
        );
        assert_eq!(
            reports.get_or_render("i1", "1-2", || render("c")).unwrap(),
            "c"
        );
        reports.forget("i1");
        assert_eq!(
            reports.get_or_render("i1", "1-2", || render("d")).unwrap(),
            "d"
        );
        assert_eq!(renders, 3);
    }
}
