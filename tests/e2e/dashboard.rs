//! The web dashboard in a real browser: Debian's chromium, headless, driven
//! through chromedriver (WebDriver, with the fantoccini client), against
//! `occopus serve` and the local cloud. Screenshots of every step go to
//! `target/tmp/dashboard-screenshots/` (docs/dashboard.md shows the main ones).
//!
//! Chromium is kept on the machine: every host name but 127.0.0.1 resolves
//! to nothing and every other address goes to a closed local proxy port,
//! and its background services (updates, sync, safe browsing, metrics) are
//! off, so no packet leaves.

use crate::common::{KillOnDrop, Occopus, free_port, wait_for_port};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

const TOKEN: &str = "dashboard-token-51c9";

/// chromedriver on a free port of 127.0.0.1, in a process group of its
/// own with the browsers it starts: the whole group is killed when dropped,
/// so no browser outlives a test that failed before closing its session.
struct Chromedriver {
    process: std::process::Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        crate::common::kill_group(self.process.id() as i32);
        let _ = self.process.wait();
    }
}

impl Chromedriver {
    fn start() -> Chromedriver {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let process = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver is missing: run scripts/setup --test");
        let driver = Chromedriver {
            process,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_for_port(port, "chromedriver");
        driver
    }

    /// A headless chromium session, `width` pixels wide.
    async fn browser(&self, width: u32) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    format!("--window-size={width},1000"),
                    // Nothing leaves the machine.
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                    "--proxy-server=http://127.0.0.1:9",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-default-apps", "--disable-sync", "--no-first-run", "--no-pings",
                    "--disable-client-side-phishing-detection", "--disable-domain-reliability",
                    "--metrics-recording-only", "--disable-breakpad", "--disable-crash-reporter",
                    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
}

/// `occopus serve` with a token, the hello example's node definitions
/// importable; killed when dropped.
struct Service {
    _process: KillOnDrop,
    base: String,
}

impl Service {
    fn start(occopus: &Occopus) -> Service {
        let import_dir = crate::common::repository().join("examples/hello/nodes");
        let mut command = occopus.command(&[
            "serve",
            "--port",
            "0",
            "--maintain-interval",
            "0.3",
            "--import-dir",
            import_dir.to_str().unwrap(),
        ]);
        command.env("OCCOPUS_API_TOKEN", TOKEN);
        let (process, base) = crate::common::serve(command);
        Service {
            _process: process,
            base,
        }
    }

    /// A request with the token; its status and JSON answer.
    async fn call(&self, method: &str, path: &str, body: Option<String>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Saves a screenshot of the page as `NN-name.png`.
struct Screenshots {
    dir: PathBuf,
    count: usize,
}

impl Screenshots {
    /// Into `target/tmp/NAME/`, emptied first.
    fn new(name: &str) -> Screenshots {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Screenshots { dir, count: 0 }
    }

    async fn take(&mut self, browser: &Client, name: &str) {
        self.count += 1;
        let png = browser.screenshot().await.unwrap();
        std::fs::write(self.dir.join(format!("{:02}-{name}.png", self.count)), png).unwrap();
    }
}

/// Waits (up to `seconds`) until `script` (a JavaScript expression) is true.
async fn until(browser: &Client, what: &str, seconds: u64, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let value = browser
            .execute(&format!("return !!({script});"), vec![])
            .await
            .unwrap();
        if value == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "waited {seconds} s for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn eval(browser: &Client, script: &str) -> Value {
    browser
        .execute(&format!("return {script};"), vec![])
        .await
        .unwrap()
}

async fn click(browser: &Client, css: &str) {
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The page's buttons, links and fields that have no accessible name (no
/// text, no `aria-label`, no `<label for>`), as HTML snippets.
const UNNAMED_CONTROLS: &str = "[...document.querySelectorAll('button, a[href], input, textarea, select')]\
    .filter(e => !(e.getAttribute('aria-label') || e.textContent.trim() \
        || (e.id && document.querySelector(`label[for=\"${e.id}\"]`))))\
    .map(e => e.outerHTML.slice(0, 120))";

/// Puts `text` into the field `css` as a paste would (one input event).
async fn paste(browser: &Client, css: &str, text: &str) {
    let field = browser.wait().for_element(Locator::Css(css)).await.unwrap();
    browser
        .execute(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
            vec![serde_json::to_value(&field).unwrap(), json!(text)],
        )
        .await
        .unwrap();
}

/// Signs in on a fresh page with `token`.
async fn sign_in(browser: &Client, base: &str, token: &str) {
    browser.goto(&format!("{base}/")).await.unwrap();
    let field = browser
        .wait()
        .for_element(Locator::Css("#token"))
        .await
        .unwrap();
    field.send_keys(token).await.unwrap();
    click(browser, "#sign-in button[type=submit]").await;
}

/// What the browser and the page said went wrong: console errors (chromium's
/// log) and the page's own record of script errors and policy violations.
async fn page_problems(browser: &Client) -> Vec<String> {
    let mut problems: Vec<String> = eval(browser, "window.occopusProblems || []")
        .await
        .as_array()
        .map(|a| a.iter().map(|p| p.to_string()).collect())
        .unwrap_or_default();
    let log = browser.issue_cmd(BrowserLog).await.unwrap_or(Value::Null);
    for entry in log.as_array().into_iter().flatten() {
        if entry["level"] == "SEVERE" || entry["level"] == "WARNING" {
            problems.push(entry["message"].to_string());
        }
    }
    problems
}

/// chromedriver's `POST /session/ID/se/log` for the browser's console.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The issue's walk through: sign in; post the hello example; watch the
/// graph and the timeline reach ready without reloading; scale a node up
/// and see the new instance appear; see a validation error highlighted;
/// destroy; sign out. No console error on the way; a screenshot per step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_builds_scales_and_destroys_the_hello_example_in_the_browser() {
    let occopus = Occopus::new(130);
    let service = Service::start(&occopus);
    let nodes = std::fs::read_to_string(
        crate::common::repository().join("examples/hello/nodes/node_definitions.yaml"),
    )
    .unwrap();
    let (status, imported) = service.call("POST", "/nodedefs", Some(nodes)).await;
    assert_eq!(status, 200, "{imported}");
    let driver = Chromedriver::start();
    let browser = driver.browser(1280).await;
    let mut shots = Screenshots::new("dashboard-screenshots");

    // Sign in.
    browser.goto(&format!("{}/", service.base)).await.unwrap();
    shots.take(&browser, "sign-in").await;
    sign_in(&browser, &service.base, TOKEN).await;
    until(
        &browser,
        "the list",
        20,
        "document.querySelector('#view-title')",
    )
    .await;
    shots.take(&browser, "empty-list").await;

    // Post the hello example (pasted into the editor).
    click(&browser, "nav a[href='#/new']").await;
    let hello =
        std::fs::read_to_string(crate::common::repository().join("examples/hello/infra.yaml"))
            .unwrap();
    paste(&browser, "#description", &hello).await;
    click(&browser, "#validate").await;
    until(
        &browser,
        "validation",
        20,
        "document.querySelector('#validation').textContent.startsWith('Valid')",
    )
    .await;
    assert_eq!(eval(&browser, UNNAMED_CONTROLS).await, json!([]));
    shots.take(&browser, "valid-description").await;
    click(&browser, "#build").await;

    // Live, without reloading: the graph and the timeline reach ready.
    until(
        &browser,
        "the infra page",
        20,
        "location.hash.startsWith('#/infra/')",
    )
    .await;
    let page_marker = eval(&browser, "(window.occopusPageMarker = Math.random())").await;
    until(
        &browser,
        "the graph",
        30,
        "document.querySelectorAll('#graph .graph-node').length === 2",
    )
    .await;
    shots.take(&browser, "building").await;
    until(
        &browser,
        "both nodes ready",
        120,
        "[...document.querySelectorAll('#graph .graph-node')].every(n => n.dataset.phase === 'ready')",
    )
    .await;
    until(
        &browser,
        "ready bars",
        10,
        "document.querySelectorAll('#timeline rect.phase-ready').length >= 2",
    )
    .await;
    until(&browser, "addresses", 10, "[...document.querySelectorAll('#instances tr[data-instance] td:nth-child(4)')].every(td => td.textContent)").await;
    assert_eq!(
        eval(&browser, "window.occopusPageMarker").await,
        page_marker,
        "the page was reloaded"
    );
    // The timeline shows the phases the page saw (how many of the early
    // ones depends on how soon it opened): ready, and some before it.
    let phases = eval(
        &browser,
        "[...new Set([...document.querySelectorAll('#timeline rect')].map(r => r.dataset.phase))]",
    )
    .await;
    let phases: Vec<&str> = phases
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(phases.contains(&"ready") && phases.len() >= 2, "{phases:?}");
    shots.take(&browser, "ready").await;

    // Every control has a name a screen reader can say.
    let unnamed = eval(&browser, UNNAMED_CONTROLS).await;
    assert_eq!(unnamed, json!([]), "controls without an accessible name");

    // Scale web up, from the keyboard: the new instance appears, and gets ready.
    let add = browser
        .find(Locator::Css(
            "#scaling tr[data-node='web'] button[aria-label^='Add']",
        ))
        .await
        .unwrap();
    add.send_keys(&fantoccini::key::Key::Enter.to_string())
        .await
        .unwrap();
    until(
        &browser,
        "a second web instance",
        60,
        "document.querySelectorAll(\"#instances tr[data-instance]\").length === 3",
    )
    .await;
    until(
        &browser,
        "the new instance ready",
        120,
        "[...document.querySelectorAll('#instances tr[data-instance]')].every(r => r.dataset.phase === 'ready')",
    )
    .await;
    let focused = eval(
        &browser,
        "document.activeElement.getAttribute('aria-label')",
    )
    .await;
    assert_eq!(
        focused,
        json!("Add an instance of web"),
        "the redraws kept the focus"
    );
    shots.take(&browser, "scaled-up").await;
    // Phone-sized: readable, nothing wider than the screen but the scrollers.
    browser.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fits = eval(
        &browser,
        "document.documentElement.scrollWidth <= window.innerWidth + 1",
    )
    .await;
    assert_eq!(fits, json!(true), "the page is wider than a phone");
    shots.take(&browser, "phone").await;
    browser.set_window_size(1280, 1000).await.unwrap();

    let infra_hash = eval(&browser, "location.hash").await;

    // A plan of a changed description.
    let changed =
        std::fs::read_to_string(crate::common::repository().join("examples/hello/infra.yaml"))
            .unwrap()
            .replace("greeting: Hello from occopus", "greeting: Hello again");
    paste(&browser, "#changed", &changed).await;
    click(&browser, "#show-plan").await;
    until(
        &browser,
        "the plan",
        20,
        "!document.querySelector('#plan-output').hidden",
    )
    .await;
    let plan = eval(
        &browser,
        "document.querySelector('#plan-output').textContent",
    )
    .await;
    assert!(plan.as_str().unwrap().contains("web"), "{plan}");
    shots.take(&browser, "plan").await;

    // A broken paste: its error highlighted on its line.
    click(&browser, "nav a[href='#/new']").await;
    let editor = browser
        .wait()
        .for_element(Locator::Css("#description"))
        .await
        .unwrap();
    editor
        .send_keys("infra_name: broken\nnodes:\n  - name: a\n    type: hello_web\n    scaling: {min: 3, max: 1}\n")
        .await
        .unwrap();
    click(&browser, "#validate").await;
    until(
        &browser,
        "a marked line",
        20,
        "document.querySelector('.gutter li.bad')",
    )
    .await;
    let marked = eval(
        &browser,
        "[...document.querySelectorAll('.gutter li.bad')].map(li => li.textContent)",
    )
    .await;
    let problems = eval(
        &browser,
        "document.querySelector('#description-problems').textContent",
    )
    .await;
    assert_eq!(
        marked,
        json!(["5"]),
        "the scaling line is marked: {problems}"
    );
    assert!(problems.as_str().unwrap().contains(":5:"), "{problems}");
    assert_eq!(
        eval(
            &browser,
            "document.querySelector('#description').getAttribute('aria-invalid')"
        )
        .await,
        json!("true")
    );
    shots.take(&browser, "validation-error").await;

    // Destroy, behind a confirmation.
    browser
        .execute(&format!("location.hash = {infra_hash}"), vec![])
        .await
        .unwrap();
    click(&browser, "#destroy").await;
    until(
        &browser,
        "the confirmation",
        10,
        "document.querySelector('#confirm-destroy[open]')",
    )
    .await;
    shots.take(&browser, "confirm-destroy").await;
    click(&browser, "#confirm-destroy-button").await;
    until(
        &browser,
        "destroyed",
        120,
        "document.querySelector('#ended').textContent.includes('Destroyed')",
    )
    .await;
    shots.take(&browser, "destroyed").await;

    let problems = page_problems(&browser).await;
    assert!(problems.is_empty(), "console errors: {problems:?}");

    // Sign out: back to the sign-in page, the token forgotten.
    click(&browser, "#sign-out").await;
    until(
        &browser,
        "the sign-in page",
        20,
        "document.querySelector('#sign-in') && !document.querySelector('#sign-in').hidden",
    )
    .await;
    assert_eq!(
        eval(&browser, "sessionStorage.getItem('occopus-token')").await,
        Value::Null
    );
    shots.take(&browser, "signed-out").await;
    browser.close().await.unwrap();
}

/// A wrong token shows a clear message and no data; nothing but the sign-in
/// page answers without the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_shows_no_data_and_only_the_sign_in_page_is_public() {
    let occopus = Occopus::new(131);
    let service = Service::start(&occopus);
    for path in [
        "/ui/app.js",
        "/ui/app.css",
        "/overview",
        "/infrastructures/x/detail",
    ] {
        let status = reqwest::get(format!("{}{path}", service.base))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401, "{path} without the token");
    }
    let page = reqwest::get(format!("{}/", service.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("script-src 'nonce-") && policy.contains("connect-src 'self'"),
        "{policy}"
    );

    let driver = Chromedriver::start();
    let browser = driver.browser(1280).await;
    sign_in(&browser, &service.base, "not-the-token").await;
    until(
        &browser,
        "the refusal",
        20,
        "document.querySelector('#sign-in-error').textContent",
    )
    .await;
    let message = eval(
        &browser,
        "document.querySelector('#sign-in-error').textContent",
    )
    .await;
    assert!(
        message.as_str().unwrap().contains("refused this token"),
        "{message}"
    );
    assert_eq!(
        eval(
            &browser,
            "document.querySelector('#infrastructures, #view-title')"
        )
        .await,
        Value::Null
    );
    assert_eq!(
        eval(&browser, "sessionStorage.getItem('occopus-token')").await,
        Value::Null
    );
    let mut shots = Screenshots::new("dashboard-screenshots-wrong-token");
    shots.take(&browser, "wrong-token").await;
    browser.close().await.unwrap();
}

/// 400 instances (the scale-sim example on the dummy cloud, built while the
/// page watches): the page follows their events; reports how long after the
/// last event it drew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_instances_stay_responsive() {
    let occopus = Occopus::new(132);
    let service = Service::start(&occopus);
    let example = crate::common::repository().join("examples/scale-sim");
    let nodes = std::fs::read_to_string(example.join("nodes/node_definitions.yaml")).unwrap();
    let (status, imported) = service.call("POST", "/nodedefs", Some(nodes)).await;
    assert_eq!(status, 200, "{imported}");
    let infra = std::fs::read_to_string(example.join("infra.yaml")).unwrap();
    let driver = Chromedriver::start();
    let browser = driver.browser(1280).await;
    sign_in(&browser, &service.base, TOKEN).await;
    until(
        &browser,
        "the list",
        20,
        "document.querySelector('#view-title')",
    )
    .await;
    let (status, created) = service.call("POST", "/infrastructures/", Some(infra)).await;
    assert_eq!(status, 200, "{created}");
    let id = created["infraid"].as_str().unwrap().to_owned();
    browser
        .execute(&format!("location.hash = '#/infra/{id}'"), vec![])
        .await
        .unwrap();
    until(
        &browser,
        "the graph",
        30,
        "document.querySelectorAll('#graph .graph-node').length > 0",
    )
    .await;
    until(
        &browser,
        "400 ready instances",
        300,
        "document.querySelectorAll('#instances tr[data-phase=\"ready\"]').length === 400",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = eval(&browser, "window.occopusDashboard").await;
    let lag_ms = stats["lagMs"].as_f64().expect("the last event was drawn");
    let started = Instant::now();
    eval(&browser, "document.title").await;
    let round_trip = started.elapsed();
    println!(
        "dashboard with 400 instances: {} events, {} draws, drawn {lag_ms:.0} ms after the last event; a script round trip {round_trip:?}",
        stats["events"], stats["draws"]
    );
    assert!(lag_ms >= 0.0, "{stats}");
    let problems = page_problems(&browser).await;
    assert!(problems.is_empty(), "console errors: {problems:?}");
    browser.close().await.unwrap();
}
