//! Health checks against real servers: a node on the local cloud runs a real
//! MariaDB (Debian's, installed by `scripts/setup --test`) bound to its own
//! address; the `mysqldbs` check logs in to it. `ping` probes the node too.

use crate::common::Occopus;

const INFRA: &str = "infra_name: dbcheck
nodes:
  - {name: db, type: mariadb}
";

/// A node that initialises a MariaDB data directory in its own directory,
/// creates `appdb` and the user `app`, and serves it on its address.
fn definitions(password_in_check: &str) -> String {
    format!(
        r#"'node_def:mariadb':
  - resource: {{type: local}}
    contextualisation:
      type: cloudinit
      context_template: |
        #cloud-config
        write_files:
          - path: /init.sql
            content: |
              CREATE DATABASE IF NOT EXISTS appdb;
              CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 's3cret';
              GRANT ALL ON appdb.* TO 'app'@'%';
        runcmd:
          - mariadb-install-db --no-defaults --datadir="$PWD/data" --user=root --auth-root-authentication-method=normal --skip-test-db >install.log 2>&1
          - exec mariadbd --no-defaults --datadir="$PWD/data" --socket="$PWD/mysql.sock" --pid-file="$PWD/mariadb.pid" --bind-address="$OCCOPUS_NODE_ADDRESS" --port=3306 --user=root --skip-log-bin --init-file="$PWD/init.sql"
    health_check:
      ping: true
      mysqldbs:
        - {{name: appdb, user: app, pass: '{password_in_check}'}}
      timeout: {timeout}
"#,
        timeout = if password_in_check == "s3cret" { 60 } else { 8 }
    )
}

fn write(occopus: &Occopus, name: &str, definitions: &str) -> String {
    let dir = occopus.dir.path().join(name);
    std::fs::create_dir_all(dir.join("nodes")).unwrap();
    std::fs::write(dir.join("infra.yaml"), INFRA).unwrap();
    std::fs::write(dir.join("nodes/node_definitions.yaml"), definitions).unwrap();
    dir.join("infra.yaml").display().to_string()
}

#[test]
fn a_mariadb_node_is_ready_once_its_database_accepts_the_login() {
    let occopus = Occopus::new(9);
    let infra = write(&occopus, "good", &definitions("s3cret"));
    occopus.ok(&["build", &infra, "-i", "db-good"]);
    let report = occopus.report("db-good");
    let instance = &crate::common::instances(&report, "db")[0];
    assert_eq!(instance["state"], "ready", "{report:#}");
    assert_eq!(instance["health"]["status"], "healthy");

    // A maintenance pass logs in again (and pings) and finds it healthy.
    let pass: serde_json::Value = serde_json::from_str(
        occopus
            .ok(&["maintain", "-i", "db-good", "--once", "--json"])
            .trim(),
    )
    .unwrap();
    assert_eq!(pass["observed"], 1);
    assert!(
        pass["found_failed"].as_array().unwrap().is_empty(),
        "{pass:#}"
    );
    occopus.ok(&["destroy", "-i", "db-good"]);

    // The same server with a wrong password in the check: the node never
    // becomes ready, and the reason is the server's refusal.
    let infra = write(&occopus, "bad", &definitions("wrong"));
    let output = occopus.run(&["build", &infra, "-i", "db-bad"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mysql app@127.80.9.")
            && stderr.contains("ERROR 1045 (28000): Access denied for user 'app'"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong"),
        "the password must not be printed: {stderr}"
    );
    occopus.ok(&["destroy", "-i", "db-bad"]);
    assert!(crate::common::processes_naming(occopus.dir.path()).is_empty());
}
