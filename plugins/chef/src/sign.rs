//! Chef's request signing (the "Mixlib::Authentication" protocol): each
//! request carries its user, a timestamp, a hash of its body, and an RSA
//! signature of a canonical text of them made with the client's key.
//! - `1.0` (what Occopus's PyChef sends, and every Chef server takes): the
//!   canonical text, padded as PKCS#1 v1.5 with no DigestInfo, is signed as
//!   is; its path and body are hashed with SHA-1.
//! - `1.3` (current Chef clients): a PKCS#1 v1.5 signature of the SHA-256
//!   of a canonical text that also covers the method, the signing version
//!   and the server API version.
//!
//! The key never leaves this module: it signs, and its text is in no error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use occopus_plugin_sdk::PluginError;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The signing protocol version (`sign_version` in the section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SignVersion {
    /// `1.0`: SHA-1, as Occopus's PyChef signs.
    #[default]
    #[serde(rename = "1.0")]
    V1_0,
    /// `1.3`: SHA-256.
    #[serde(rename = "1.3")]
    V1_3,
}

/// A client of the Chef server: its name and key.
pub struct Signer {
    client_name: String,
    key: RsaPrivateKey,
    version: SignVersion,
}

/// What one request is: the parts the signature covers.
pub struct Signed<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The URL's path, query excluded.
    pub path: &'a str,
    /// The body (empty for none).
    pub body: &'a [u8],
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub timestamp: &'a str,
}

impl Signer {
    /// A signer for `client_name` with its PEM key (PKCS#1 `RSA PRIVATE KEY`
    /// or PKCS#8 `PRIVATE KEY`). A key that does not read names the
    /// auth_data key, never its text.
    pub fn new(
        client_name: &str,
        key_pem: &str,
        version: SignVersion,
    ) -> Result<Self, PluginError> {
        let key = RsaPrivateKey::from_pkcs1_pem(key_pem.trim())
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(key_pem.trim()))
            .map_err(|_| {
                PluginError::Unauthorized(
                    "`client_key` in auth_data is not an RSA private key in PEM form (`-----BEGIN \
                     RSA PRIVATE KEY-----` or `-----BEGIN PRIVATE KEY-----`); give the client's \
                     .pem file, e.g. `client_key: !text_import {url: file://client.pem}`"
                        .into(),
                )
            })?;
        Ok(Signer {
            client_name: client_name.to_owned(),
            key,
            version,
        })
    }

    /// The headers that authenticate `request`.
    pub fn headers(&self, request: &Signed<'_>) -> Result<Vec<(String, String)>, PluginError> {
        let user = &self.client_name;
        let path = canonical_path(request.path);
        let (algorithm, content_hash, signature) = match self.version {
            SignVersion::V1_0 => {
                let content_hash = STANDARD.encode(Sha1::digest(request.body));
                let canonical = format!(
                    "Method:{}\nHashed Path:{}\nX-Ops-Content-Hash:{content_hash}\n\
                     X-Ops-Timestamp:{}\nX-Ops-UserId:{user}",
                    request.method.to_ascii_uppercase(),
                    STANDARD.encode(Sha1::digest(path.as_bytes())),
                    request.timestamp,
                );
                let signature = self
                    .key
                    .sign(Pkcs1v15Sign::new_unprefixed(), canonical.as_bytes());
                ("sha1", content_hash, signature)
            }
            SignVersion::V1_3 => {
                let content_hash = STANDARD.encode(Sha256::digest(request.body));
                let canonical = format!(
                    "Method:{}\nPath:{path}\nX-Ops-Content-Hash:{content_hash}\n\
                     X-Ops-Sign:version=1.3\nX-Ops-Timestamp:{}\nX-Ops-UserId:{user}\n\
                     X-Ops-Server-API-Version:{SERVER_API_VERSION}",
                    request.method.to_ascii_uppercase(),
                    request.timestamp,
                );
                let signature = self.key.sign(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(canonical.as_bytes()),
                );
                ("sha256", content_hash, signature)
            }
        };
        let signature = signature.map_err(|e| {
            PluginError::Unauthorized(format!(
                "could not sign with `client_key` of auth_data ({e}); give a 2048-bit or larger RSA key"
            ))
        })?;
        let version = match self.version {
            SignVersion::V1_0 => "1.0",
            SignVersion::V1_3 => "1.3",
        };
        let mut headers = vec![
            (
                "X-Ops-Sign".to_owned(),
                format!("algorithm={algorithm};version={version};"),
            ),
            ("X-Ops-Userid".to_owned(), user.clone()),
            ("X-Ops-Timestamp".to_owned(), request.timestamp.to_owned()),
            ("X-Ops-Content-Hash".to_owned(), content_hash),
            (
                "X-Ops-Server-API-Version".to_owned(),
                SERVER_API_VERSION.to_owned(),
            ),
        ];
        let encoded = STANDARD.encode(signature);
        for (index, line) in encoded.as_bytes().chunks(60).enumerate() {
            headers.push((
                format!("X-Ops-Authorization-{}", index + 1),
                String::from_utf8_lossy(line).into_owned(),
            ));
        }
        Ok(headers)
    }
}

/// The Chef server API version the requests ask for (0: what Chef 11 and
/// goiardi speak, and what every later server still serves).
const SERVER_API_VERSION: &str = "0";

/// The path as signed: repeated slashes collapsed, no trailing slash.
fn canonical_path(path: &str) -> String {
    let mut canonical = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && canonical.ends_with('/') {
            continue;
        }
        canonical.push(c);
    }
    if canonical.len() > 1 && canonical.ends_with('/') {
        canonical.pop();
    }
    canonical
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time in seconds.
pub fn timestamp(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let seconds = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway key made for this test (`openssl genrsa -traditional 2048`).
    const TEST_KEY: &str = include_str!("../testdata/test-key.pem");

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
        &headers.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn signature(headers: &[(String, String)]) -> String {
        headers
            .iter()
            .filter(|(n, _)| n.starts_with("X-Ops-Authorization-"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    const REQUEST: Signed<'static> = Signed {
        method: "post",
        path: "/organizations/acme//nodes/",
        body: b"{\"name\":\"n1\"}",
        timestamp: "2026-12-02T16:00:00Z",
    };

    /// The expected signatures were made with OpenSSL from the same key and
    /// canonical text (`testdata/expected-signatures.sh` shows how).
    #[test]
    fn signatures_are_those_openssl_makes() {
        let v10 = Signer::new("occopus", TEST_KEY, SignVersion::V1_0).unwrap();
        let headers = v10.headers(&REQUEST).unwrap();
        assert_eq!(
            header(&headers, "X-Ops-Sign"),
            "algorithm=sha1;version=1.0;"
        );
        assert_eq!(
            header(&headers, "X-Ops-Content-Hash"),
            STANDARD.encode(Sha1::digest(REQUEST.body))
        );
        assert_eq!(
            signature(&headers),
            include_str!("../testdata/expected-1.0.b64").trim()
        );
        assert!(
            headers
                .iter()
                .filter(|(n, _)| n.starts_with("X-Ops-Authorization-"))
                .all(|(_, v)| v.len() <= 60)
        );
        let v13 = Signer::new("occopus", TEST_KEY, SignVersion::V1_3).unwrap();
        let headers = v13.headers(&REQUEST).unwrap();
        assert_eq!(
            header(&headers, "X-Ops-Sign"),
            "algorithm=sha256;version=1.3;"
        );
        assert_eq!(
            signature(&headers),
            include_str!("../testdata/expected-1.3.b64").trim()
        );
    }

    #[test]
    fn a_key_that_is_not_pem_is_named_without_its_text() {
        let Err(PluginError::Unauthorized(message)) =
            Signer::new("occopus", "s3cret-not-a-key", SignVersion::V1_0)
        else {
            panic!("a bad key must be refused as unauthorized");
        };
        assert!(message.contains("client_key"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn paths_and_times_read_as_chef_signs_them() {
        assert_eq!(
            canonical_path("/organizations/acme//nodes/"),
            "/organizations/acme/nodes"
        );
        assert_eq!(canonical_path("/"), "/");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_796_227_200), "2026-12-02T16:00:00Z");
        assert_eq!(timestamp(951_782_400), "2000-02-29T00:00:00Z");
    }
}
