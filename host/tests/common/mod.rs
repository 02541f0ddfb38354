//! Helpers shared by the integration tests.
#![allow(dead_code)]

use occopus::config::PluginSettings;
use occopus::plugin::{DriverPlugin, Plugin, PluginOrigin, PluginRuntime, Target};
use std::path::{Path, PathBuf};

/// Where the host's build script put the plugins it built.
pub fn wasm(file: &str) -> PathBuf {
    PathBuf::from(env!("OCCOPUS_PLUGIN_WASM_DIR")).join(file)
}

/// The Python example plugin, built by `scripts/test` (componentize-py).
pub fn python_plugin() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/target/python/static.wasm");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test (it builds the Python example with componentize-py)",
        path.display()
    );
    path
}

/// A compiled-plugin cache shared by the tests of this build: compiling the
/// 18 MB Python component once instead of per test saves tens of seconds.
/// Entries are content-addressed and written atomically, so sharing is safe.
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// Plugin settings for tests: the given cache and a small pool.
pub fn settings(cache_dir: &Path) -> PluginSettings {
    let mut settings = PluginSettings {
        cache_dir: Some(cache_dir.to_owned()),
        ..PluginSettings::default()
    };
    settings.limits.max_concurrent_calls = 32;
    settings
}

/// Loads a driver component file.
pub async fn load_driver(runtime: &PluginRuntime, file: PathBuf) -> DriverPlugin {
    match runtime
        .load(
            PluginOrigin::File(file.clone()),
            std::fs::read(&file).unwrap(),
        )
        .await
    {
        Ok(Plugin::Driver(driver)) => driver,
        Ok(_) => panic!("{} is not a driver", file.display()),
        Err(e) => panic!("loading {}: {e}", file.display()),
    }
}

/// A target with the given resource JSON object.
pub fn target(resource: serde_json::Value) -> Target {
    match resource {
        serde_json::Value::Object(map) => Target::new(map),
        other => panic!("not an object: {other}"),
    }
}

/// Destroys every node of the local cloud at `root` when dropped, so that a
/// failing test leaves no process behind.
pub struct DestroyNodesOnDrop(pub PathBuf);

impl Drop for DestroyNodesOnDrop {
    fn drop(&mut self) {
        let Ok(mut settings) = occopus::local_cloud::LocalCloudSettings::new(self.0.clone()) else {
            return;
        };
        settings.runner = PathBuf::from(env!("CARGO_BIN_EXE_occopus"));
        if let Ok(cloud) = occopus::local_cloud::LocalCloud::open(settings) {
            for node in cloud.list(None).unwrap_or_default() {
                let _ = cloud.destroy(&node.record.id);
            }
        }
    }
}

/// A child process killed (by PID) and reaped when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /` over a real TCP connection, retried until the server answers (30 s).
pub fn http_get(address: &str, port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect((address, port)) {
            stream
                .write_all(b"GET / HTTP/1.0\r\nHost: node\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{address}:{port} never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// User-data of a local node serving one page on its own address and `port`.
pub fn web_node(page: &str, port: u16) -> String {
    format!(
        "#cloud-config\nwrite_files:\n  - path: /www/index.html\n    content: '{page}'\n\
         runcmd:\n  - exec python3 -m http.server {port} --bind \"$OCCOPUS_NODE_ADDRESS\" --directory www\n"
    )
}
