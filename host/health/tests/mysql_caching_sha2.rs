//! `mysqldbs` against MySQL 8's default `caching_sha2_password`.
//!
//! No MySQL 8 server installs on this machine kind: Debian ships MariaDB
//! (`default-mysql-server` is MariaDB), which has no `caching_sha2_password`,
//! and no package registry here holds a MySQL server. So the exchange is
//! tested at the protocol level against [`CachingSha2TestServer`]: **a test
//! server written here, not MySQL**, that plays the server's side of the
//! login as MySQL documents it (the handshake v10, an auth switch, the
//! SHA-256 scramble checked against a cache of `SHA256(SHA256(password))`,
//! and without TLS the full authentication: its RSA public key on request,
//! the password decrypted with RSA-OAEP). That it is faithful is checked by
//! PyMySQL, a well-kept client written by others, logging in to it through
//! the same paths (`pymysql_logs_in_to_the_test_server_by_both_paths`).
//!
//! The `mysql_native_password` exchange runs against a real MariaDB in the
//! end-to-end tests (`tests/e2e/health.rs`).

use occopus_health::ProbeError;
use occopus_health::mysql::{Login, check};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The test server's RSA key (a fixture made with `openssl genpkey`, used
/// nowhere else).
const PRIVATE_KEY: &str = include_str!("fixtures/caching-sha2-test-server-key.pem");

const CAPABILITIES: u32 = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x80000;
const CONNECT_WITH_DB: u32 = 0x8;
const PLUGIN_AUTH: u32 = 0x80000;
const CACHING_SHA2: &str = "caching_sha2_password";

/// How a login went, as the test server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// The client answered the greeting with another plugin and was switched.
    Switched,
    /// The scramble matched the cached hash.
    Fast,
    /// The password came RSA-encrypted and matched.
    Full,
    /// The login was refused.
    Refused,
}

/// A test server written here, NOT MySQL: the server's side of a
/// `caching_sha2_password` login (see the module's header).
struct CachingSha2TestServer {
    port: u16,
    paths: Arc<Mutex<Vec<Path>>>,
    task: tokio::task::JoinHandle<()>,
}

struct ServerState {
    /// user -> password.
    users: HashMap<String, String>,
    database: String,
    /// The plugin the greeting proposes.
    greeting_plugin: &'static str,
    key: RsaPrivateKey,
    /// user -> SHA256(SHA256(password)), after a full authentication.
    cache: Mutex<HashMap<String, Vec<u8>>>,
    paths: Arc<Mutex<Vec<Path>>>,
    connections: Mutex<u64>,
}

impl CachingSha2TestServer {
    /// Serves `user` with `password` and the database `app` on 127.0.0.1;
    /// its greeting proposes `greeting_plugin`.
    async fn start(user: &str, password: &str, greeting_plugin: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(ServerState {
            users: HashMap::from([(user.to_owned(), password.to_owned())]),
            database: "app".into(),
            greeting_plugin,
            key: RsaPrivateKey::from_pkcs8_pem(PRIVATE_KEY).unwrap(),
            cache: Mutex::new(HashMap::new()),
            paths: paths.clone(),
            connections: Mutex::new(0),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let _ = state.serve(stream).await;
                });
            }
        });
        CachingSha2TestServer { port, paths, task }
    }

    fn paths(&self) -> Vec<Path> {
        std::mem::take(&mut *self.paths.lock().unwrap())
    }
}

impl Drop for CachingSha2TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection's packets.
struct Connection {
    stream: TcpStream,
    seq: u8,
}

impl Connection {
    async fn read(&mut self) -> std::io::Result<Vec<u8>> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).await?;
        let length =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        self.seq = header[3];
        let mut payload = vec![0; length];
        self.stream.read_exact(&mut payload).await?;
        Ok(payload)
    }

    async fn send(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let length = (payload.len() as u32).to_le_bytes();
        let mut packet = vec![length[0], length[1], length[2], self.seq];
        packet.extend_from_slice(payload);
        self.stream.write_all(&packet).await
    }

    async fn ok(&mut self) -> std::io::Result<()> {
        self.send(&[0x00, 0, 0, 0x02, 0, 0, 0]).await
    }

    async fn error(&mut self, code: u16, state: &str, message: &str) -> std::io::Result<()> {
        let mut packet = vec![0xff];
        packet.extend_from_slice(&code.to_le_bytes());
        packet.push(b'#');
        packet.extend_from_slice(state.as_bytes());
        packet.extend_from_slice(message.as_bytes());
        self.send(&packet).await
    }
}

/// What a HandshakeResponse41 says.
struct Response {
    user: String,
    token: Vec<u8>,
    database: Option<String>,
    plugin: Option<String>,
}

fn nul_string(bytes: &[u8], at: &mut usize) -> String {
    let rest = &bytes[*at..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    *at += end + 1;
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

fn parse_response(packet: &[u8]) -> Response {
    let capabilities = u32::from_le_bytes(packet[0..4].try_into().unwrap());
    let mut at = 32;
    let user = nul_string(packet, &mut at);
    // The greeting offers no length-encoded auth data: one length byte.
    let length = usize::from(packet[at]);
    let token = packet[at + 1..at + 1 + length].to_vec();
    at += 1 + length;
    let database = (capabilities & CONNECT_WITH_DB != 0).then(|| nul_string(packet, &mut at));
    let plugin =
        (capabilities & PLUGIN_AUTH != 0 && at < packet.len()).then(|| nul_string(packet, &mut at));
    Response {
        user,
        token,
        database,
        plugin,
    }
}

impl ServerState {
    /// A fresh 20-byte scramble of printable bytes, as MySQL makes them.
    fn scramble(&self) -> Vec<u8> {
        let mut connections = self.connections.lock().unwrap();
        *connections += 1;
        Sha256::digest(connections.to_le_bytes())[..20]
            .iter()
            .map(|b| b % 94 + 33)
            .collect()
    }

    fn greeting(&self, scramble: &[u8]) -> Vec<u8> {
        let mut packet = vec![10];
        packet.extend_from_slice(b"8.0.40-occopus-test-server\0");
        packet.extend_from_slice(&7u32.to_le_bytes());
        packet.extend_from_slice(&scramble[..8]);
        packet.push(0);
        packet.extend_from_slice(&(CAPABILITIES as u16).to_le_bytes());
        packet.push(255);
        packet.extend_from_slice(&0x0002u16.to_le_bytes());
        packet.extend_from_slice(&((CAPABILITIES >> 16) as u16).to_le_bytes());
        packet.push(21);
        packet.extend_from_slice(&[0; 10]);
        packet.extend_from_slice(&scramble[8..]);
        packet.push(0);
        packet.extend_from_slice(self.greeting_plugin.as_bytes());
        packet.push(0);
        packet
    }

    fn record(&self, path: Path) {
        self.paths.lock().unwrap().push(path);
    }

    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut connection = Connection {
            stream,
            seq: u8::MAX,
        };
        let mut scramble = self.scramble();
        connection.send(&self.greeting(&scramble)).await?;
        let response = parse_response(&connection.read().await?);
        let mut token = response.token;
        if response.plugin.as_deref() != Some(CACHING_SHA2) {
            self.record(Path::Switched);
            scramble = self.scramble();
            let mut switch = vec![0xfe];
            switch.extend_from_slice(CACHING_SHA2.as_bytes());
            switch.push(0);
            switch.extend_from_slice(&scramble);
            switch.push(0);
            connection.send(&switch).await?;
            token = connection.read().await?;
        }
        let denied = format!(
            "Access denied for user '{}'@'127.0.0.1' (using password: {})",
            response.user,
            if token.is_empty() { "NO" } else { "YES" }
        );
        let Some(password) = self.users.get(&response.user) else {
            self.record(Path::Refused);
            return connection.error(1045, "28000", &denied).await;
        };
        let accepted = if password.is_empty() || token.is_empty() {
            password.is_empty() && token.is_empty()
        } else if let Some(stored) = self.cached(&response.user) {
            let accepted = fast_check(&token, &scramble, &stored);
            if accepted {
                self.record(Path::Fast);
                connection.send(&[0x01, 3]).await?;
            }
            accepted
        } else {
            connection.send(&[0x01, 4]).await?;
            let request = connection.read().await?;
            if request != [2] {
                // A cleartext password is only for TLS connections.
                self.record(Path::Refused);
                return connection
                    .error(2061, "HY000", "Authentication requires secure connection.")
                    .await;
            }
            let pem = self
                .key
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap();
            let mut key_packet = vec![0x01];
            key_packet.extend_from_slice(pem.as_bytes());
            connection.send(&key_packet).await?;
            let encrypted = connection.read().await?;
            let accepted = self.full_check(&encrypted, &scramble, password);
            if accepted {
                self.record(Path::Full);
                let stage2 = Sha256::digest(Sha256::digest(password.as_bytes())).to_vec();
                self.cache
                    .lock()
                    .unwrap()
                    .insert(response.user.clone(), stage2);
            }
            accepted
        };
        if !accepted {
            self.record(Path::Refused);
            return connection.error(1045, "28000", &denied).await;
        }
        if response
            .database
            .as_deref()
            .is_some_and(|d| d != self.database)
        {
            let database = response.database.unwrap_or_default();
            return connection
                .error(1049, "42000", &format!("Unknown database '{database}'"))
                .await;
        }
        connection.ok().await?;
        // Commands: COM_QUIT ends it; anything else (a client's SET NAMES,
        // say) is answered OK.
        loop {
            let command = connection.read().await?;
            if command.first() == Some(&0x01) {
                return Ok(());
            }
            connection.ok().await?;
        }
    }

    fn cached(&self, user: &str) -> Option<Vec<u8>> {
        self.cache.lock().unwrap().get(user).cloned()
    }

    /// The password decrypted (RSA-OAEP, SHA-1), un-XORed with the scramble,
    /// NUL stripped, compared.
    fn full_check(&self, encrypted: &[u8], scramble: &[u8], password: &str) -> bool {
        let Ok(mut plain) = self.key.decrypt(Oaep::new::<Sha1>(), encrypted) else {
            return false;
        };
        for (byte, mask) in plain.iter_mut().zip(scramble.iter().cycle()) {
            *byte ^= mask;
        }
        plain.strip_suffix(&[0]) == Some(password.as_bytes())
    }
}

/// The server's fast check: `SHA256(token XOR SHA256(stored + scramble)) == stored`.
fn fast_check(token: &[u8], scramble: &[u8], stored: &[u8]) -> bool {
    let mut hasher = Sha256::new();
    hasher.update(stored);
    hasher.update(scramble);
    let stage1: Vec<u8> = token
        .iter()
        .zip(hasher.finalize())
        .map(|(a, b)| a ^ b)
        .collect();
    Sha256::digest(&stage1).as_slice() == stored
}

fn login(user: &str, pass: &str) -> Login {
    Login {
        name: "app".into(),
        user: user.into(),
        pass: pass.into(),
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// The first login of a user goes the full way (the server's key, the
/// password encrypted with it); the next one, cached, the fast way.
#[tokio::test]
async fn a_login_goes_full_then_fast() {
    let server = CachingSha2TestServer::start("ann", "s3cret", CACHING_SHA2).await;
    let ann = login("ann", "s3cret");
    check("127.0.0.1", server.port, &ann, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(server.paths(), [Path::Full]);
    check("127.0.0.1", server.port, &ann, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(server.paths(), [Path::Fast]);
}

/// A wrong password is refused by either path, with the server's message
/// and never the password.
#[tokio::test]
async fn a_wrong_password_is_refused_on_both_paths() {
    let server = CachingSha2TestServer::start("ann", "s3cret", CACHING_SHA2).await;
    for (expected_path, cache_first) in [(Path::Refused, false), (Path::Refused, true)] {
        if cache_first {
            check("127.0.0.1", server.port, &login("ann", "s3cret"), TIMEOUT)
                .await
                .unwrap();
            server.paths();
        }
        let failure = check("127.0.0.1", server.port, &login("ann", "wrong-pw"), TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(server.paths(), [expected_path]);
        let ProbeError::Refused(message) = &failure.error else {
            panic!("{failure}");
        };
        assert!(message.contains("ERROR 1045 (28000)"), "{message}");
        assert!(!failure.to_string().contains("wrong-pw"), "{failure}");
    }
}

/// A server whose greeting proposes `mysql_native_password` (its default)
/// switches a `caching_sha2_password` user: the check follows the switch,
/// with the switch's scramble.
#[tokio::test]
async fn a_switch_to_caching_sha2_is_followed() {
    let server = CachingSha2TestServer::start("ann", "s3cret", "mysql_native_password").await;
    let ann = login("ann", "s3cret");
    check("127.0.0.1", server.port, &ann, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(server.paths(), [Path::Switched, Path::Full]);
    check("127.0.0.1", server.port, &ann, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(server.paths(), [Path::Switched, Path::Fast]);
}

/// An unknown database is the server's refusal, named.
#[tokio::test]
async fn an_unknown_database_is_named() {
    let server = CachingSha2TestServer::start("ann", "", CACHING_SHA2).await;
    let mut other = login("ann", "");
    check("127.0.0.1", server.port, &other, TIMEOUT)
        .await
        .unwrap();
    other.name = "nope".into();
    let failure = check("127.0.0.1", server.port, &other, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        failure.to_string().contains("Unknown database 'nope'"),
        "{failure}"
    );
}

/// The test server is faithful: PyMySQL (a client written by others) logs
/// in to it by the same paths, and is refused a wrong password.
#[tokio::test]
async fn pymysql_logs_in_to_the_test_server_by_both_paths() {
    for greeting in [CACHING_SHA2, "mysql_native_password"] {
        let server = CachingSha2TestServer::start("ann", "s3cret", greeting).await;
        let script = "import sys, pymysql\n\
                      try:\n    pymysql.connect(host='127.0.0.1', port=int(sys.argv[1]), \
                      user='ann', password=sys.argv[2], database='app').close()\n\
                      except pymysql.err.OperationalError as e:\n    print(e.args[0]); sys.exit(3)\n";
        let run = |password: &'static str| {
            let port = server.port.to_string();
            tokio::process::Command::new("python3")
                .args(["-c", script, &port, password])
                .output()
        };
        let first = run("s3cret").await.expect("python3 runs");
        assert!(
            first.status.success(),
            "PyMySQL (scripts/setup --test installs it): {}",
            String::from_utf8_lossy(&first.stderr)
        );
        let second = run("s3cret").await.unwrap();
        assert!(second.status.success());
        let wrong = run("wrong-pw").await.unwrap();
        assert_eq!(wrong.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&wrong.stdout).trim(), "1045");
        let switched = greeting != CACHING_SHA2;
        let expected: Vec<Path> = [Path::Full, Path::Fast, Path::Refused]
            .into_iter()
            .flat_map(|path| switched.then_some(Path::Switched).into_iter().chain([path]))
            .collect();
        assert_eq!(server.paths(), expected, "greeting {greeting}");
    }
}
