//! The `mysqldbs` health check: a real MySQL/MariaDB protocol login to a
//! database with a user and password, then `COM_QUIT`.
//!
//! Only what a login needs of the client/server protocol is here: the
//! server's handshake (v10), the client's `HandshakeResponse41`, an
//! auth-switch request, and the OK or ERR that follows; with either of the
//! two password plugins servers use by default:
//! - `mysql_native_password` (MariaDB, MySQL before 8.0);
//! - `caching_sha2_password` (MySQL 8's default): the SHA-256 scramble,
//!   which the server accepts at once if it has the user in its cache ("fast
//!   auth"); otherwise ("full auth") the password goes to the server
//!   encrypted with its RSA public key (OAEP), which the client asks the
//!   server for, as `mysql --get-server-public-key` does.
//!
//! A full client library (mysql_async) doubled occopus's build time for this
//! one exchange. No TLS: like Occopus's check, the login goes in the clear,
//! hashed or encrypted as the protocol does without TLS. Asking the server
//! for its key means a machine in the middle could give its own: the same
//! exposure as `mysql_native_password` in the clear, for a health check.

use crate::failure::{ProbeError, ProbeFailure};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server port.
pub const PORT: u16 = 3306;

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_CONNECT_WITH_DB: u32 = 8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x80000;
/// utf8mb4_general_ci.
const CHARSET: u8 = 45;
/// Packets larger than this are not expected in a login.
const MAX_PACKET: usize = 1 << 16;

/// The first byte of the server's packets in a login.
const OK: u8 = 0x00;
const MORE_DATA: u8 = 0x01;
const AUTH_SWITCH: u8 = 0xfe;
const ERR: u8 = 0xff;
/// `caching_sha2_password`'s answers in a MORE_DATA packet, and its request
/// for the server's public key.
const FAST_AUTH_SUCCESS: u8 = 3;
const PERFORM_FULL_AUTH: u8 = 4;
const REQUEST_PUBLIC_KEY: u8 = 2;

/// One database login to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The database.
    pub name: String,
    /// The user.
    pub user: String,
    /// The password.
    pub pass: String,
}

/// Logs in to `login.name` on `address:port`; `Err` says why not (never
/// with the password).
pub async fn check(
    address: &str,
    port: u16,
    login: &Login,
    timeout: Duration,
) -> Result<(), ProbeFailure> {
    let failure = |error| ProbeFailure {
        probe: format!("mysql {}@{address}:{port}/{}", login.user, login.name),
        error,
    };
    match tokio::time::timeout(timeout, attempt(address, port, login)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(failure(why)),
        Err(_) => Err(failure(ProbeError::NoAnswer(timeout))),
    }
}

/// A password plugin this check speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthPlugin {
    NativePassword,
    CachingSha2Password,
}

impl AuthPlugin {
    /// The plugin named `name`; `None` for one this check does not speak.
    fn named(name: &str) -> Option<AuthPlugin> {
        match name {
            "mysql_native_password" => Some(AuthPlugin::NativePassword),
            "caching_sha2_password" => Some(AuthPlugin::CachingSha2Password),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AuthPlugin::NativePassword => "mysql_native_password",
            AuthPlugin::CachingSha2Password => "caching_sha2_password",
        }
    }

    /// The scrambled password this plugin sends first.
    fn token(self, password: &str, scramble: &[u8]) -> Vec<u8> {
        match self {
            AuthPlugin::NativePassword => native_password(password, scramble),
            AuthPlugin::CachingSha2Password => caching_sha2_password(password, scramble),
        }
    }
}

/// One login's conversation, packet by packet.
struct Exchange<'a> {
    stream: TcpStream,
    /// The sequence number of the last packet read.
    seq: u8,
    login: &'a Login,
}

impl Exchange<'_> {
    async fn read(&mut self) -> Result<Vec<u8>, ProbeError> {
        let (seq, packet) = read_packet(&mut self.stream).await?;
        self.seq = seq;
        Ok(packet)
    }

    async fn reply(&mut self, payload: &[u8]) -> Result<(), ProbeError> {
        write_packet(&mut self.stream, self.seq.wrapping_add(1), payload).await
    }

    /// `caching_sha2_password`'s full authentication without TLS: the
    /// server's public key, then the password (NUL-terminated, XORed with
    /// the scramble) encrypted with it.
    async fn full_authentication(&mut self, scramble: &[u8]) -> Result<(), ProbeError> {
        self.reply(&[REQUEST_PUBLIC_KEY]).await?;
        let answer = self.read().await?;
        match answer.split_first() {
            Some((&MORE_DATA, pem)) => {
                let key = public_key(pem)?;
                let secret = encrypt_password(&self.login.pass, scramble, &key)?;
                self.reply(&secret).await
            }
            Some((&ERR, _)) => Err(server_error(&answer)),
            _ => Err(ProbeError::Protocol(
                "the server sent no public key for caching_sha2_password".into(),
            )),
        }
    }
}

async fn attempt(address: &str, port: u16, login: &Login) -> Result<(), ProbeError> {
    let stream = TcpStream::connect((address, port))
        .await
        .map_err(|e| ProbeError::Unreachable(e.to_string()))?;
    let mut exchange = Exchange {
        stream,
        seq: 0,
        login,
    };
    let greeting = exchange.read().await?;
    let handshake = Handshake::parse(&greeting)?;
    // Answer with the plugin the server proposes if it is one of ours; a
    // server that wants another for this user switches.
    let mut plugin = handshake
        .plugin
        .as_deref()
        .and_then(AuthPlugin::named)
        .unwrap_or(AuthPlugin::NativePassword);
    let mut scramble = handshake.scramble;
    exchange
        .reply(&handshake_response(login, plugin, &scramble))
        .await?;
    let mut switched = false;
    loop {
        let answer = exchange.read().await?;
        match answer.first().copied() {
            Some(OK) => {
                // COM_QUIT, politely; the answer does not matter.
                let _ = write_packet(&mut exchange.stream, 0, &[0x01]).await;
                return Ok(());
            }
            Some(ERR) => return Err(server_error(&answer)),
            Some(AUTH_SWITCH) if !switched => {
                switched = true;
                let (name, data) = auth_switch(&answer[1..]);
                plugin = AuthPlugin::named(&name).ok_or_else(|| {
                    ProbeError::Refused(format!(
                        "the server asks for the `{name}` authentication plugin; this check \
                         speaks mysql_native_password and caching_sha2_password (create the \
                         user with one of them)"
                    ))
                })?;
                scramble = data;
                exchange
                    .reply(&plugin.token(&login.pass, &scramble))
                    .await?;
            }
            Some(MORE_DATA) if plugin == AuthPlugin::CachingSha2Password => {
                match answer.get(1).copied() {
                    // The OK follows.
                    Some(FAST_AUTH_SUCCESS) => {}
                    Some(PERFORM_FULL_AUTH) => exchange.full_authentication(&scramble).await?,
                    _ => {
                        return Err(ProbeError::Protocol(
                            "unexpected caching_sha2_password answer to the login".into(),
                        ));
                    }
                }
            }
            _ => {
                return Err(ProbeError::Protocol(
                    "unexpected answer to the login".into(),
                ));
            }
        }
    }
}

/// An auth switch request's plugin name and scramble.
fn auth_switch(rest: &[u8]) -> (String, Vec<u8>) {
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    let name = String::from_utf8_lossy(&rest[..end]).into_owned();
    let data = rest.get(end + 1..).unwrap_or_default();
    (name, data.strip_suffix(&[0]).unwrap_or(data).to_vec())
}

/// What the server's greeting says: the scramble, and the plugin it proposes.
#[derive(Debug, PartialEq, Eq)]
struct Handshake {
    scramble: Vec<u8>,
    plugin: Option<String>,
}

impl Handshake {
    fn parse(packet: &[u8]) -> Result<Handshake, ProbeError> {
        let bad = || ProbeError::Protocol("the server's greeting is not a MySQL handshake".into());
        match packet.first() {
            Some(0xff) => return Err(server_error(packet)),
            Some(10) => {}
            Some(v) => {
                return Err(ProbeError::Protocol(format!(
                    "unsupported MySQL protocol version {v}"
                )));
            }
            None => return Err(bad()),
        }
        let version_end = 1 + packet[1..].iter().position(|b| *b == 0).ok_or_else(bad)?;
        // Connection id (4), scramble part 1 (8), filler (1), capabilities (2),
        // charset (1), status (2), capabilities (2), scramble length (1),
        // reserved (10), then scramble part 2 and the plugin name.
        let mut at = version_end + 1 + 4;
        let part1 = packet.get(at..at + 8).ok_or_else(bad)?.to_vec();
        at += 8 + 1 + 2 + 1 + 2 + 2;
        let scramble_len = usize::from(*packet.get(at).ok_or_else(bad)?);
        at += 1 + 10;
        let part2_len = scramble_len.saturating_sub(8).max(13);
        let part2 = packet.get(at..at + part2_len).ok_or_else(bad)?;
        let mut scramble = part1;
        scramble.extend_from_slice(part2.strip_suffix(&[0]).unwrap_or(part2));
        let plugin = packet.get(at + part2_len..).and_then(|rest| {
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            (end > 0).then(|| String::from_utf8_lossy(&rest[..end]).into_owned())
        });
        Ok(Handshake { scramble, plugin })
    }
}

fn handshake_response(login: &Login, plugin: AuthPlugin, scramble: &[u8]) -> Vec<u8> {
    let capabilities = CLIENT_LONG_PASSWORD
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH;
    let mut packet = Vec::with_capacity(128);
    packet.extend_from_slice(&capabilities.to_le_bytes());
    packet.extend_from_slice(&(MAX_PACKET as u32).to_le_bytes());
    packet.push(CHARSET);
    packet.extend_from_slice(&[0; 23]);
    packet.extend_from_slice(login.user.as_bytes());
    packet.push(0);
    let token = plugin.token(&login.pass, scramble);
    packet.push(token.len() as u8);
    packet.extend_from_slice(&token);
    packet.extend_from_slice(login.name.as_bytes());
    packet.push(0);
    packet.extend_from_slice(plugin.name().as_bytes());
    packet.push(0);
    packet
}

/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`; empty for an
/// empty password.
fn native_password(password: &str, scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password.as_bytes());
    let stage2 = Sha1::digest(stage1);
    let mut hasher = Sha1::new();
    hasher.update(scramble);
    hasher.update(stage2);
    let mask = hasher.finalize();
    stage1.iter().zip(mask).map(|(a, b)| a ^ b).collect()
}

/// `SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble)`;
/// empty for an empty password.
fn caching_sha2_password(password: &str, scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password.as_bytes());
    let stage2 = Sha256::digest(stage1);
    let mut hasher = Sha256::new();
    hasher.update(stage2);
    hasher.update(scramble);
    let mask = hasher.finalize();
    stage1.iter().zip(mask).map(|(a, b)| a ^ b).collect()
}

/// The server's RSA public key, as PEM (SubjectPublicKeyInfo, or PKCS#1).
fn public_key(pem: &[u8]) -> Result<RsaPublicKey, ProbeError> {
    let pem = std::str::from_utf8(pem)
        .map_err(|_| ProbeError::Protocol("the server's public key is not PEM".into()))?;
    let pem = pem.trim_end_matches('\0').trim();
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| ProbeError::Protocol(format!("the server's public key is unreadable: {e}")))
}

/// The password, NUL-terminated and XORed with the scramble (repeated),
/// encrypted with RSA-OAEP (SHA-1), as MySQL 8.0.5 and later decrypt it.
fn encrypt_password(
    password: &str,
    scramble: &[u8],
    key: &RsaPublicKey,
) -> Result<Vec<u8>, ProbeError> {
    if scramble.is_empty() {
        return Err(ProbeError::Protocol(
            "the server sent an empty scramble".into(),
        ));
    }
    let mut plain: Vec<u8> = password.as_bytes().to_vec();
    plain.push(0);
    for (byte, mask) in plain.iter_mut().zip(scramble.iter().cycle()) {
        *byte ^= mask;
    }
    key.encrypt(&mut rsa::rand_core::OsRng, Oaep::new::<Sha1>(), &plain)
        .map_err(|e| ProbeError::Protocol(format!("cannot encrypt for the server's key: {e}")))
}

/// The server's refusal in an ERR packet: `ERROR code (state): message`.
fn server_error(packet: &[u8]) -> ProbeError {
    let code = packet
        .get(1..3)
        .map_or(0, |c| u16::from_le_bytes([c[0], c[1]]));
    let (state, message) = match packet.get(3) {
        Some(b'#') => (
            String::from_utf8_lossy(packet.get(4..9).unwrap_or_default()).to_string(),
            packet.get(9..).unwrap_or_default(),
        ),
        _ => (String::new(), packet.get(3..).unwrap_or_default()),
    };
    ProbeError::Refused(format!(
        "the server refused: ERROR {code} ({state}): {}",
        String::from_utf8_lossy(message)
    ))
}

fn connection_ended(e: std::io::Error) -> ProbeError {
    ProbeError::Unreachable(format!("the connection ended: {e}"))
}

async fn read_packet(stream: &mut TcpStream) -> Result<(u8, Vec<u8>), ProbeError> {
    let mut header = [0u8; 4];
    stream
        .read_exact(&mut header)
        .await
        .map_err(connection_ended)?;
    let length =
        usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if length > MAX_PACKET {
        return Err(ProbeError::Protocol(format!(
            "a {length}-byte packet is not a login answer"
        )));
    }
    let mut payload = vec![0; length];
    stream
        .read_exact(&mut payload)
        .await
        .map_err(connection_ended)?;
    Ok((header[3], payload))
}

async fn write_packet(stream: &mut TcpStream, seq: u8, payload: &[u8]) -> Result<(), ProbeError> {
    let length = (payload.len() as u32).to_le_bytes();
    let mut packet = vec![length[0], length[1], length[2], seq];
    packet.extend_from_slice(payload);
    stream.write_all(&packet).await.map_err(connection_ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_password_matches_the_servers_formula() {
        // The server stores SHA1(SHA1(password)) and checks
        // SHA1(token XOR SHA1(scramble + stored)) == stored.
        let scramble = b"abcdefghijklmnopqrst";
        let token = native_password("secret", scramble);
        let stored = Sha1::digest(Sha1::digest(b"secret"));
        let mut hasher = Sha1::new();
        hasher.update(scramble);
        hasher.update(stored);
        let stage1: Vec<u8> = token
            .iter()
            .zip(hasher.finalize())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(Sha1::digest(&stage1).as_slice(), stored.as_slice());
        assert!(native_password("", scramble).is_empty());
    }

    #[test]
    fn greetings_and_errors_are_read() {
        let mut greeting = vec![10];
        greeting.extend_from_slice(b"10.11.14-MariaDB\0");
        greeting.extend_from_slice(&7u32.to_le_bytes());
        greeting.extend_from_slice(b"ABCDEFGH\0");
        greeting.extend_from_slice(&[0xff, 0xf7, 45, 2, 0, 0xff, 0x81, 21]);
        greeting.extend_from_slice(&[0; 10]);
        greeting.extend_from_slice(b"IJKLMNOPQRST\0mysql_native_password\0");
        assert_eq!(
            Handshake::parse(&greeting).unwrap(),
            Handshake {
                scramble: b"ABCDEFGHIJKLMNOPQRST".to_vec(),
                plugin: Some("mysql_native_password".into()),
            }
        );
        let mut refused = vec![0xff, 0x15, 0x04, b'#'];
        refused.extend_from_slice(b"28000Access denied for user 'u'");
        assert_eq!(
            server_error(&refused).to_string(),
            "the server refused: ERROR 1045 (28000): Access denied for user 'u'"
        );
        assert!(
            Handshake::parse(&[9, 0])
                .unwrap_err()
                .to_string()
                .contains("version 9")
        );
    }
}
