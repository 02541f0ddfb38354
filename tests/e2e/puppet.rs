//! The `puppet_solo` config manager end to end on the local cloud, with a
//! real Puppet: a node whose cloud-init (a test variant of the
//! puppet-solo-wordpress tutorial's: Debian's `puppet` instead of Puppet's
//! installer, the manifest served by this test from 127.0.0.1, no Forge
//! modules) turns the resolved `puppet.attributes` into Hiera data with the
//! tutorial's own `sed` and runs `puppet apply`; the file the manifest writes
//! holds the attribute's value.

use crate::common::{Occopus, address, instances, serve_in_thread};
use std::time::{Duration, Instant};

/// Writes the value Hiera gives for `greeting` (and for `db`, another node's
/// address) into the directory the node's `outdir` fact names.
const MANIFEST: &str = "file { \"${facts['outdir']}/greeting.txt\":\n  content => \"${lookup('greeting')} from ${lookup('db')}\\n\",\n}\n";

/// The tutorial's cloud-init, run with Debian's puppet under the node's
/// directory. As in the tutorial, the attributes go through `sed` into
/// Hiera's common.yaml.
const CLOUD_INIT: &str = r#"#cloud-config
write_files:
- content: |
    {{puppet.manifests}}
  path: /puppet/occopus.puppet.manifests
- content: |
    {{puppet.attributes}}
  path: /puppet/hieradata/common.yaml
- content: |
    version: 5
    defaults: {datadir: hieradata, data_hash: yaml_data}
    hierarchy: [{name: common, path: common.yaml}]
  path: /puppet/hiera.yaml
- content: |
    set -e
    cd puppet
    mkdir -p manifests
    for i in `cat occopus.puppet.manifests`; do curl -sSf -o manifests/$(basename $i) $i; done
    sed -i -e "s/{'//g" -e "s/':/:/g" -e "s/} /\n/g" -e "s/}//g" hieradata/common.yaml
    FACTER_outdir=$PWD puppet apply --confdir=$PWD/etc --codedir=$PWD/code --vardir=$PWD/var --logdir=$PWD/log --rundir=$PWD/run --hiera_config=$PWD/hiera.yaml manifests/ > apply.log 2>&1
  path: /puppet/occopus.puppet.init
runcmd:
- sh puppet/occopus.puppet.init
- exec sleep 600
"#;

#[test]
fn puppet_apply_on_a_node_reads_the_resolved_attributes() {
    let app = axum::Router::new().route(
        "/manifests/greeting.pp",
        axum::routing::get(|| async { MANIFEST }),
    );
    let (url, _stop) = serve_in_thread(app);
    let occopus = Occopus::new(111);
    let dir = occopus.dir.path();
    std::fs::write(dir.join("cloud_init_puppet.yaml"), CLOUD_INIT).unwrap();
    let nodes = format!(
        "'node_def:db':\n  - resource: {{type: local}}\n    contextualisation: {{type: cloudinit, context_template: \"#cloud-config\\nruncmd:\\n  - exec sleep 600\\n\"}}\n    health_check: {{ping: false}}\n\
         'node_def:greeter':\n  - resource: {{type: local}}\n    contextualisation:\n      type: cloudinit\n      context_template: !text_import\n        url: file://cloud_init_puppet.yaml\n    \
         config_management:\n      type: puppet_solo\n      manifests:\n        - {url}/manifests/greeting.pp\n      attributes:\n        - greeting: \"{{{{ variables.greeting }}}}\"\n        - db: \"{{{{ getip('db') }}}}\"\n    health_check: {{ping: false}}\n"
    );
    let [infra, nodes] = occopus.describe(
        "infra_name: puppet\nnodes:\n  - {name: db, type: db}\n  - {name: greeter, type: greeter, variables: {greeting: hello occopus}}\n",
        &nodes,
    );
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "puppet"]);
    let report = occopus.report("puppet");
    let db = address(&instances(&report, "db")[0]);
    let greeter = instances(&report, "greeter")[0]["cloud_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let node_dir = dir.join("local-cloud/nodes").join(greeter).join("puppet");
    let written = node_dir.join("greeting.txt");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !written.exists() {
        assert!(
            Instant::now() < deadline,
            "puppet apply wrote nothing; its log:\n{}",
            std::fs::read_to_string(node_dir.join("apply.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        std::fs::read_to_string(&written).unwrap(),
        format!("hello occopus from {db}\n")
    );
    occopus.ok(&["destroy", "-i", "puppet"]);
}
