//! The EC2 Query API: form-encoded POSTs signed with AWS Signature Version 4,
//! XML answers, and EC2's error codes mapped to the contract's error cases.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use occopus_plugin_sdk::PluginError;
use occopus_plugin_sdk::http::{Request, encode_pairs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The API version every request names (the one AWS's documentation uses).
pub const API_VERSION: &str = "2016-11-15";

/// Where and as whom requests are sent.
pub struct Client {
    /// The endpoint URL, without a trailing slash.
    pub endpoint: String,
    /// The region the signature is scoped to.
    pub region: String,
    /// Access key, secret key and optional session token.
    pub credentials: Credentials,
}

impl Client {
    /// Sends `action` with `params` and returns the answer's XML text.
    pub fn call(&self, action: &str, params: &[(String, String)]) -> Result<String, PluginError> {
        let body = encode_pairs(
            [("Action", action), ("Version", API_VERSION)]
                .into_iter()
                .chain(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        );
        let url = format!("{}/", self.endpoint);
        let signing = Signing {
            credentials: &self.credentials,
            region: &self.region,
            service: "ec2",
            time: now(),
        };
        let signed = signing_headers(&signing, &url, CONTENT_TYPE, body.as_bytes())?;
        let mut request = Request::new("POST", &url)
            .header("content-type", CONTENT_TYPE)
            .body(body);
        for (name, value) in signed {
            request = request.header(&name, &value);
        }
        let response = request.send()?;
        let text = response.text();
        if (200..300).contains(&response.status) {
            return Ok(text);
        }
        Err(classify(action, response.status, &text))
    }
}

/// What a signature covers besides the body.
struct Signing<'a> {
    credentials: &'a Credentials,
    region: &'a str,
    service: &'a str,
    time: SystemTime,
}

/// The headers (`authorization`, `x-amz-date`, ...) that sign a form POST of
/// `body` to `url`.
fn signing_headers(
    signing: &Signing<'_>,
    url: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, PluginError> {
    let identity = signing.credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(signing.region)
        .name(signing.service)
        .time(signing.time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| PluginError::InvalidConfig(format!("cannot sign the request: {e}")))?
        .into();
    let headers = [("content-type", content_type)];
    let signable =
        SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| PluginError::InvalidConfig(format!("cannot sign `{url}`: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| PluginError::InvalidConfig(format!("cannot sign `{url}`: {e}")))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The wall-clock time, from the only clock a plugin has.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(occopus_plugin_sdk::clock::unix_millis())
}

/// Maps an EC2 error answer to the contract's error, keeping EC2's code and
/// message and saying what to do.
pub fn classify(action: &str, status: u16, body: &str) -> PluginError {
    let (code, message) = error_code(body).unwrap_or_else(|| {
        let snippet: String = body.chars().take(300).collect();
        (format!("HTTP {status}"), snippet)
    });
    let what = format!("EC2 {action} failed: {code}: {message}");
    if is_transient(status, &code) {
        PluginError::Transient(what)
    } else if is_unauthorized(&code) {
        PluginError::Unauthorized(format!(
            "{what}; check `accesskey` and `secretkey` in the auth_data of this resource, and \
             that the key may call {action}"
        ))
    } else if code.starts_with("InvalidInstanceID") {
        PluginError::NotFound(what)
    } else if is_quota(&code) {
        PluginError::Quota(format!(
            "{what}; ask the cloud for a higher limit or use fewer instances"
        ))
    } else if is_invalid_config(&code) {
        PluginError::InvalidConfig(format!(
            "{what}; fix the node definition's resource section"
        ))
    } else {
        PluginError::Internal(what)
    }
}

fn is_transient(status: u16, code: &str) -> bool {
    status >= 500
        || matches!(
            code,
            "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "ServiceUnavailable"
                | "Unavailable"
                | "InternalError"
                | "InsufficientInstanceCapacity"
                | "RequestExpired"
        )
}

fn is_unauthorized(code: &str) -> bool {
    matches!(
        code,
        "AuthFailure"
            | "SignatureDoesNotMatch"
            | "InvalidClientTokenId"
            | "InvalidAccessKeyId"
            | "UnauthorizedOperation"
            | "AccessDenied"
            | "AccessDeniedException"
            | "MissingAuthenticationToken"
            | "IncompleteSignature"
            | "OptInRequired"
            | "Blocked"
    )
}

fn is_quota(code: &str) -> bool {
    code.ends_with("LimitExceeded") || code == "MaxSpotInstanceCountExceeded"
}

fn is_invalid_config(code: &str) -> bool {
    code.starts_with("Invalid")
        || code.starts_with("Missing")
        || matches!(
            code,
            "UnknownParameter" | "ValidationError" | "UnsupportedOperation" | "Unsupported"
        )
}

/// The first `<Code>` and `<Message>` of an error answer (EC2's `<Response><Errors>`
/// and IAM-style `<ErrorResponse><Error>` alike).
fn error_code(body: &str) -> Option<(String, String)> {
    let document = roxmltree::Document::parse(body).ok()?;
    let error = document.descendants().find(|n| n.has_tag_name("Error"))?;
    let text = |name: &str| {
        error
            .children()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    Some((text("Code"), text("Message")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(error: PluginError) -> &'static str {
        match error {
            PluginError::InvalidConfig(_) => "invalid-config",
            PluginError::Unauthorized(_) => "unauthorized",
            PluginError::NotFound(_) => "not-found",
            PluginError::Transient(_) => "transient",
            PluginError::Quota(_) => "quota",
            PluginError::Internal(_) => "internal",
        }
    }

    fn ec2_error(code: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>\
             <Message>because</Message></Error></Errors><RequestID>r</RequestID></Response>"
        )
    }

    #[test]
    fn error_codes_map_to_contract_cases() {
        let cases = [
            (400, "Throttling", "transient"),
            (503, "RequestLimitExceeded", "transient"),
            (500, "SomethingNew", "transient"),
            (401, "AuthFailure", "unauthorized"),
            (403, "SignatureDoesNotMatch", "unauthorized"),
            (403, "InvalidClientTokenId", "unauthorized"),
            (400, "InvalidParameterValue", "invalid-config"),
            (400, "InvalidParameterCombination", "invalid-config"),
            (400, "InvalidAMIID.NotFound", "invalid-config"),
            (400, "MissingParameter", "invalid-config"),
            (400, "InvalidInstanceID.NotFound", "not-found"),
            (400, "InvalidInstanceID.Malformed", "not-found"),
            (400, "InstanceLimitExceeded", "quota"),
            (400, "VcpuLimitExceeded", "quota"),
            (400, "SomethingNew", "internal"),
        ];
        for (status, code, expected) in cases {
            let error = classify("RunInstances", status, &ec2_error(code));
            assert_eq!(kind(error.clone()), expected, "{code}: {error:?}");
        }
    }

    #[test]
    fn errors_keep_ec2_code_and_message() {
        let PluginError::Unauthorized(message) =
            classify("DescribeInstances", 401, &ec2_error("AuthFailure"))
        else {
            panic!("not unauthorized");
        };
        assert!(message.contains("AuthFailure: because"), "{message}");
        assert!(message.contains("auth_data"), "{message}");
        let iam_style = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>\
                         <Message>The security token included in the request is invalid.</Message>\
                         </Error></ErrorResponse>";
        assert_eq!(
            kind(classify("RunInstances", 403, iam_style)),
            "unauthorized"
        );
        let PluginError::Transient(message) = classify("RunInstances", 502, "<html>bad gateway")
        else {
            panic!("not transient");
        };
        assert!(message.contains("HTTP 502: <html>bad gateway"), "{message}");
    }

    /// AWS's SigV4 test suite, case `post-x-www-form-urlencoded`: a form POST
    /// signed for service `service` in us-east-1 at 2015-08-30T12:36:00Z.
    #[test]
    fn signs_aws_test_suite_form_post() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let signing = Signing {
            credentials: &credentials,
            region: "us-east-1",
            service: "service",
            time: UNIX_EPOCH + Duration::from_secs(1_440_938_160),
        };
        let headers = signing_headers(
            &signing,
            "https://example.amazonaws.com/",
            "application/x-www-form-urlencoded",
            b"Param1=value1",
        )
        .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(get("x-amz-date"), "20150830T123600Z");
        assert_eq!(
            get("authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }
}
