//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Blocking is right here: the host runs every call of a plugin on its own async
//! task, so a plugin waiting on a response blocks nothing but itself. The host
//! refuses requests to hosts outside the plugin's allow-list; such a refusal
//! comes back as [`PluginError::InvalidConfig`] and the host adds to it the refused
//! host and how to allow it.

use crate::PluginError;
use crate::driver::wasi::http::outgoing_handler;
use crate::driver::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::driver::wasi::io::streams::StreamError;

/// Responses larger than this are refused rather than read into memory.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// An HTTP request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body with its content type, when there is one.
    pub fn json_body(self, body: Option<&serde_json::Value>) -> Self {
        match body {
            Some(body) => self
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => self,
        }
    }

    /// Sends the request and reads the whole response.
    pub fn send(&self) -> Result<Response, PluginError> {
        send(self)
    }
}

/// A response with its whole body read.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no headers, as a driver's unit tests of its error
    /// mapping need one.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The body as UTF-8 text (invalid sequences replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-encodes a value for a URL query or a form body (RFC 3986: every byte
/// but the unreserved `A-Z a-z 0-9 - _ . ~` becomes `%XX`), as AWS's request
/// signing and every HTTP server accept.
pub fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

/// Joins name/value pairs into `a=1&b=2`, percent-encoding both.
pub fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The parts of an absolute URL that `wasi:http` wants separately.
#[derive(Debug, PartialEq, Eq)]
struct UrlParts<'a> {
    https: bool,
    authority: &'a str,
    path_and_query: String,
}

fn split_url(url: &str) -> Result<UrlParts<'_>, PluginError> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(PluginError::InvalidConfig(format!(
            "`{url}` is not an http:// or https:// URL"
        )));
    };
    let (authority, path_and_query) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() {
        return Err(PluginError::InvalidConfig(format!("`{url}` has no host")));
    }
    Ok(UrlParts {
        https,
        authority,
        path_and_query,
    })
}

fn method(name: &str) -> Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    }
}

/// Maps a transport failure to the contract's error: refusals by the sandbox are
/// configuration problems, network trouble is worth a retry.
fn transport_error(url: &str, code: ErrorCode) -> PluginError {
    match code {
        ErrorCode::HttpRequestDenied => PluginError::InvalidConfig(format!(
            "request to {url} was refused by the occopus sandbox"
        )),
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            PluginError::InvalidConfig(format!("invalid request to {url}: {code:?}"))
        }
        other => PluginError::Transient(format!("request to {url} failed: {other:?}")),
    }
}

/// Sends a request and reads the whole response.
pub fn send(request: &Request) -> Result<Response, PluginError> {
    let url = request.url.as_str();
    let parts = split_url(url)?;
    let mut header_list: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone().into_bytes()))
        .collect();
    // A known length rather than a chunked upload: some servers (older
    // EC2-compatible ones among them) refuse chunked request bodies. An empty
    // body too (but for GET and HEAD, which the host never sends chunked):
    // otherwise the host may send the head before the body is finished, as
    // chunked, and its final empty chunk may reach a server that already
    // answered and closed; the server's TCP reset then destroys the answer.
    let bodiless = matches!(request.method.as_str(), "GET" | "HEAD");
    let needs_length = !request.body.is_empty() || !bodiless;
    if needs_length && !header_list.iter().any(|(n, _)| n == "content-length") {
        header_list.push((
            "content-length".into(),
            request.body.len().to_string().into_bytes(),
        ));
    }
    let headers = Fields::from_list(&header_list)
        .map_err(|e| PluginError::InvalidConfig(format!("bad header for {url}: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let invalid = |what: &str| PluginError::InvalidConfig(format!("invalid {what} in `{url}`"));
    outgoing
        .set_method(&method(&request.method))
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(if parts.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        }))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(parts.authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(&parts.path_and_query))
        .map_err(|()| invalid("path"))?;

    let body = outgoing
        .body()
        .map_err(|()| PluginError::Internal("request body already taken".into()))?;
    let pending = outgoing_handler::handle(outgoing, None).map_err(|e| transport_error(url, e))?;
    write_body(&body, &request.body, url)?;
    OutgoingBody::finish(body, None).map_err(|e| transport_error(url, e))?;

    pending.subscribe().block();
    let incoming = pending
        .get()
        .ok_or_else(|| PluginError::Internal(format!("no response from {url} after waiting")))?
        .map_err(|()| PluginError::Internal(format!("response of {url} taken twice")))?
        .map_err(|e| transport_error(url, e))?;

    let status = incoming.status();
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = read_body(
        incoming
            .consume()
            .map_err(|()| PluginError::Internal("response body already taken".into()))?,
        url,
    )?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn write_body(body: &OutgoingBody, bytes: &[u8], url: &str) -> Result<(), PluginError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body
        .write()
        .map_err(|()| PluginError::Internal("request body stream already taken".into()))?;
    // `blocking-write-and-flush` takes at most 4096 bytes per call.
    for chunk in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| PluginError::Transient(format!("sending the body to {url}: {e:?}")))?;
    }
    Ok(())
}

fn read_body(body: IncomingBody, url: &str) -> Result<Vec<u8>, PluginError> {
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| PluginError::Internal("response stream already taken".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(PluginError::Internal(format!(
                            "the response of {url} is over {MAX_RESPONSE_BYTES} bytes"
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(PluginError::Transient(format!(
                        "reading the response of {url}: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
    }
    IncomingBody::finish(body);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encodes_all_but_unreserved() {
        assert_eq!(percent_encode("a-Z_0.~"), "a-Z_0.~");
        assert_eq!(percent_encode("a b/c=d&é"), "a%20b%2Fc%3Dd%26%C3%A9");
        assert_eq!(
            encode_pairs([("Filter.1.Name", "tag:x"), ("k", "")]),
            "Filter.1.Name=tag%3Ax&k="
        );
    }

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("https://ec2.example:8443/a/b?x=1").unwrap(),
            UrlParts {
                https: true,
                authority: "ec2.example:8443",
                path_and_query: "/a/b?x=1".into()
            }
        );
        assert_eq!(
            split_url("http://h?q").unwrap(),
            UrlParts {
                https: false,
                authority: "h",
                path_and_query: "/?q".into()
            }
        );
        assert_eq!(split_url("http://h").unwrap().path_and_query, "/");
        assert!(split_url("ftp://h/").is_err());
        assert!(split_url("http:///x").is_err());
    }
}
