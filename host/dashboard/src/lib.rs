//! The web dashboard `occopus serve` serves at `/`: a sign-in page, and the
//! application it loads once signed in. Plain HTML, CSS and JavaScript
//! (`assets/`), embedded in the binary: nothing to build, no CDN, works
//! offline.
//!
//! Only the sign-in page is served without the API token. It fetches the
//! application's script and style sheet with the token (as a bearer token,
//! never in a URL) and inserts them; so no asset but the sign-in page works
//! without the token. Every page goes out with a Content Security Policy
//! that allows scripts and styles of one per-response nonce only, and
//! connections to this origin only.

/// The sign-in page; `{{NONCE}}` is replaced by the response's nonce.
const SIGN_IN_PAGE: &str = include_str!("../assets/index.html");

/// An asset of the application (served only with the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its text.
    pub body: &'static str,
}

/// The application's assets, by name under `/ui/`.
pub fn asset(name: &str) -> Option<Asset> {
    match name {
        "app.js" => Some(Asset {
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("../assets/app.js"),
        }),
        "app.css" => Some(Asset {
            content_type: "text/css; charset=utf-8",
            body: include_str!("../assets/app.css"),
        }),
        _ => None,
    }
}

/// The sign-in page for a response whose nonce is `nonce`.
pub fn sign_in_page(nonce: &str) -> String {
    SIGN_IN_PAGE.replace("{{NONCE}}", nonce)
}

/// The Content Security Policy of a response whose nonce is `nonce`: the
/// page's own scripts and styles only, requests to this origin only, no
/// frames, no forms posted anywhere, no plugins.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_page_carries_the_nonce_everywhere_and_no_placeholder() {
        let page = sign_in_page("n0nce");
        assert!(!page.contains("{{NONCE}}"));
        assert!(page.contains(r#"<script nonce="n0nce">"#));
        assert!(page.contains(r#"<style nonce="n0nce">"#));
        assert!(content_security_policy("n0nce").contains("script-src 'nonce-n0nce'"));
    }

    #[test]
    fn only_the_application_s_assets_are_served() {
        assert!(asset("app.js").unwrap().body.contains("occopus"));
        assert_eq!(
            asset("app.css").unwrap().content_type,
            "text/css; charset=utf-8"
        );
        assert_eq!(asset("../Cargo.toml"), None);
    }
}
