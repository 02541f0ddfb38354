//! The README's walkthrough, run as written, command by command, on a fresh
//! state: the commands are read from README.md's `sh` blocks (so the test
//! follows the README when it changes), with `target/release/occopus` being
//! the binary under test, `ID` the infra id the build printed and `ADDRESS`
//! the client node's address. Commands that run until Ctrl-C (`maintain`,
//! `serve`) get one once they are doing their job.

use crate::common::{KillOnDrop, Occopus, instances, repository};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The `sh` blocks of the README, each as its command lines (comments cut).
fn sh_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), command) => {
                let command = command.split("  #").next().unwrap_or_default().trim();
                if !command.is_empty() {
                    block.push(command.to_string());
                }
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_walkthrough_works_command_by_command() {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 3, "{blocks:?}");
    let occopus = Occopus::new(95);
    // `occopus` on the PATH is the binary under test (the symlink loop
    // below finds it with `command -v`).
    let bin = occopus.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_occopus"), bin.join("occopus")).unwrap();
    let template = occopus.command(&[]);
    let shell = |line: &str| {
        let mut command = Command::new("sh");
        command.arg("-c").arg(line).current_dir(repository());
        for (key, value) in template.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
            .env("OCCOPUS_CONFIG", occopus.dir.path().join("occopus.yaml"))
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            );
        command
    };
    let run = |line: &str| {
        let output = shell(line).output().unwrap();
        assert!(
            output.status.success(),
            "`{line}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    // The first command, past its set-up (which the test command ran).
    let deploy = blocks[0][0]
        .split("&&")
        .nth(1)
        .unwrap()
        .trim()
        .replace("cargo run --release --", "occopus");
    let infra_id = run(&deploy).lines().last().unwrap().to_string();
    let report = occopus.report(&infra_id);
    let client = instances(&report, "client")[0]["resource_address"]
        .as_str()
        .unwrap()
        .to_string();

    let walkthrough = &blocks[1];
    assert!(walkthrough.len() >= 7, "{walkthrough:?}");
    for line in walkthrough {
        let line = line
            .replace("target/release/occopus", "occopus")
            .replace("-i ID", &format!("-i {infra_id}"))
            .replace("ADDRESS", &client);
        if line.starts_with("occopus maintain") && !line.contains("--once") {
            let line = format!("exec {line}"); // Ctrl-C reaches occopus, not sh
            until_ctrl_c(
                shell(&line),
                "stderr",
                &format!("pass over {infra_id}"),
                130,
            );
        } else if line == "occopus serve" {
            let line = format!("exec {line}");
            until_ctrl_c(
                shell(&line),
                "stderr",
                "listening on http://127.0.0.1:5000",
                0,
            );
        } else {
            let said = run(&line);
            if line.starts_with("curl") {
                assert!(said.contains("Hello from occopus: I am web"), "{said}");
            }
        }
    }
    assert!(occopus.local_cloud().list(None).unwrap().is_empty());

    // Occopus's own command names, made as the README says.
    let home = occopus.dir.path();
    std::fs::create_dir_all(home.join(".local/bin")).unwrap();
    for line in &blocks[2] {
        run(line);
    }
    let help = Command::new(home.join(".local/bin/occopus-build"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success(), "{help:?}");
}

/// Starts `command`, waits for `expected` in its `stream`, stops it with
/// Ctrl-C (SIGINT) and checks its exit code.
fn until_ctrl_c(mut command: Command, stream: &str, expected: &str, code: i32) {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = KillOnDrop(command.spawn().unwrap());
    let pipe: Box<dyn std::io::Read + Send> = match stream {
        "stdout" => Box::new(child.0.stdout.take().unwrap()),
        _ => Box::new(child.0.stderr.take().unwrap()),
    };
    let pid = rustix::process::Pid::from_child(&child.0);
    // A command that never says it: stopped after a minute, failing the test
    // instead of hanging it.
    let (said, heard) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if heard
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_err()
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    });
    let mut lines = BufReader::new(pipe).lines();
    let seen = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains(expected));
    let _ = said.send(());
    assert!(seen, "{command:?} never said `{expected}`");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    // Drain the pipe so that the process never blocks writing.
    lines.for_each(drop);
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(code), "{command:?}");
}
