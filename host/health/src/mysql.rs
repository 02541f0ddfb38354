//! The `mysqldbs` health check: a real MySQL/MariaDB protocol login to a
//! database with a user and password, then `COM_QUIT`.
//!
//! Only what a login needs of the client/server protocol is here: the
//! server's handshake (v10), the client's `HandshakeResponse41` with
//! `mysql_native_password` (also after an auth-switch request), and the OK or
//! ERR that follows. A full client library (mysql_async) doubled occopus's
//! build time for this one exchange. No TLS: like Occopus's check, the login
//! goes in the clear, hashed as the protocol hashes it.

use crate::failure::{ProbeError, ProbeFailure};
use sha1::{Digest, Sha1};
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
const NATIVE_PASSWORD: &str = "mysql_native_password";
/// utf8mb4_general_ci.
const CHARSET: u8 = 45;
/// Packets larger than this are not expected in a login.
const MAX_PACKET: usize = 1 << 16;

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

async fn attempt(address: &str, port: u16, login: &Login) -> Result<(), ProbeError> {
    let mut stream = TcpStream::connect((address, port))
        .await
        .map_err(|e| ProbeError::Unreachable(e.to_string()))?;
    let (seq, greeting) = read_packet(&mut stream).await?;
    let handshake = Handshake::parse(&greeting)?;
    let response = handshake_response(login, &handshake);
    write_packet(&mut stream, seq.wrapping_add(1), &response).await?;
    let (seq, mut answer) = read_packet(&mut stream).await?;
    if answer.first() == Some(&0xfe) {
        // Auth switch: the server wants another plugin, with a new scramble.
        let rest = &answer[1..];
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        let plugin = String::from_utf8_lossy(&rest[..end]).to_string();
        if plugin != NATIVE_PASSWORD {
            return Err(ProbeError::Refused(format!(
                "the server asks for the `{plugin}` authentication plugin; this check speaks {NATIVE_PASSWORD} (create the user with it)"
            )));
        }
        let data = rest.get(end + 1..).unwrap_or_default();
        let scramble = data.strip_suffix(&[0]).unwrap_or(data);
        let token = native_password(&login.pass, scramble);
        write_packet(&mut stream, seq.wrapping_add(1), &token).await?;
        answer = read_packet(&mut stream).await?.1;
    }
    match answer.first() {
        Some(0x00) => {
            // COM_QUIT, politely; the answer does not matter.
            let _ = write_packet(&mut stream, 0, &[0x01]).await;
            Ok(())
        }
        Some(0xff) => Err(server_error(&answer)),
        _ => Err(ProbeError::Protocol(
            "unexpected answer to the login".into(),
        )),
    }
}

/// What the server's greeting says (its proposed plugin is not needed: the
/// answer is always mysql_native_password, and a server that wants another
/// sends an auth switch).
#[derive(Debug, PartialEq, Eq)]
struct Handshake {
    scramble: Vec<u8>,
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
        Ok(Handshake { scramble })
    }
}

fn handshake_response(login: &Login, handshake: &Handshake) -> Vec<u8> {
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
    let token = native_password(&login.pass, &handshake.scramble);
    packet.push(token.len() as u8);
    packet.extend_from_slice(&token);
    packet.extend_from_slice(login.name.as_bytes());
    packet.push(0);
    packet.extend_from_slice(NATIVE_PASSWORD.as_bytes());
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
                scramble: b"ABCDEFGHIJKLMNOPQRST".to_vec()
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
