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
use std::time::{Duration, Instant};

/// How long a tag read from the database is trusted while nothing was
/// written through this process's store: a write of another process or
/// replica on the same database shows in answers within it; one of this
/// process, at once.
pub(crate) const FRESH: Duration = Duration::from_millis(100);

/// One kept answer.
struct Entry {
    /// The tag it was rendered at.
    tag: String,
    bytes: Bytes,
    /// The store's generation when the tag was last read.
    generation: u64,
    /// When the tag was last read.
    checked: Instant,
}

/// The answers rendered, by path.
#[derive(Default)]
pub(crate) struct Rendered(Mutex<HashMap<String, Entry>>);

impl Rendered {
    /// The tag of `path` now (none: not recorded): the kept one if it was
    /// read less than [`FRESH`] ago and nothing was written through this
    /// process's store since (`generation`, read before calling); else
    /// read with `read_tag`.
    pub(crate) fn tag<E>(
        &self,
        path: &str,
        generation: u64,
        read_tag: impl FnOnce() -> Result<Option<String>, E>,
    ) -> Result<Option<String>, E> {
        if let Some(entry) = self.lock().get(path)
            && entry.generation == generation
            && entry.checked.elapsed() < FRESH
        {
            return Ok(Some(entry.tag.clone()));
        }
        let tag = read_tag()?;
        let mut kept = self.lock();
        match &tag {
            None => drop(kept.remove(path)),
            Some(tag) => {
                if let Some(entry) = kept.get_mut(path).filter(|entry| &entry.tag == tag) {
                    entry.generation = generation;
                    entry.checked = Instant::now();
                }
            }
        }
        Ok(tag)
    }

    /// The answer of `path` rendered at `tag` (read at `generation`),
    /// rendering it with `render` unless it is kept.
    pub(crate) fn get_or_render<E>(
        &self,
        path: &str,
        tag: &str,
        generation: u64,
        render: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        if let Some(entry) = self.lock().get(path)
            && entry.tag == tag
        {
            return Ok(entry.bytes.clone());
        }
        // Rendered outside the lock: other paths' readers do not wait.
        let bytes = render()?;
        let entry = Entry {
            tag: tag.to_string(),
            bytes: bytes.clone(),
            generation,
            checked: Instant::now(),
        };
        self.lock().insert(path.to_string(), entry);
        Ok(bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
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
        let rendered = Rendered::default();
        let mut renders = 0;
        let mut render = |text: &'static str| {
            renders += 1;
            Ok::<_, ()>(Bytes::from_static(text.as_bytes()))
        };
        assert_eq!(
            rendered
                .get_or_render("i1", "1-1", 0, || render("a"))
                .unwrap(),
            "a"
        );
        assert_eq!(
            rendered
                .get_or_render("i1", "1-1", 0, || render("b"))
                .unwrap(),
            "a"
        );
        assert_eq!(
            rendered
                .get_or_render("i1", "1-2", 0, || render("c"))
                .unwrap(),
            "c"
        );
        assert_eq!(renders, 2);
    }

    #[test]
    fn a_kept_tag_is_trusted_only_while_fresh_and_nothing_was_written_here() {
        let rendered = Rendered::default();
        let mut reads = 0;
        let mut read = |tag: Option<&str>| {
            reads += 1;
            Ok::<_, ()>(tag.map(str::to_string))
        };
        let tag = rendered
            .tag("i1", 7, || read(Some("1-1")))
            .unwrap()
            .unwrap();
        rendered
            .get_or_render("i1", &tag, 7, || Ok::<_, ()>(Bytes::from_static(b"a")))
            .unwrap();
        // Fresh, nothing written here: the database is not asked.
        assert_eq!(
            rendered
                .tag("i1", 7, || read(Some("x")))
                .unwrap()
                .as_deref(),
            Some("1-1")
        );
        // A write through this process: asked again.
        assert_eq!(
            rendered
                .tag("i1", 8, || read(Some("1-2")))
                .unwrap()
                .as_deref(),
            Some("1-2")
        );
        // Gone: forgotten.
        assert_eq!(rendered.tag("i1", 9, || read(None)).unwrap(), None);
        assert_eq!(
            rendered
                .tag("i1", 9, || read(Some("1-3")))
                .unwrap()
                .as_deref(),
            Some("1-3")
        );
        assert_eq!(reads, 4);
        // Older than FRESH: asked again even without a write here.
        rendered
            .get_or_render("i2", "2-1", 9, || Ok::<_, ()>(Bytes::from_static(b"b")))
            .unwrap();
        std::thread::sleep(FRESH);
        let mut asked = false;
        rendered
            .tag("i2", 9, || {
                asked = true;
                Ok::<_, ()>(Some("2-1".to_string()))
            })
            .unwrap();
        assert!(asked);
    }
}
