//! A description together with the definitions and credentials of its
//! nodes: what every operation starts from.

use crate::auth::AuthData;
use crate::infra::InfraDescription;
use crate::node_def::{Implementation, NodeDefinitions};
use crate::yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The files a model is read from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The infrastructure description.
    pub infra: PathBuf,
    /// Node definition files. When empty, `nodes/node_definitions.yaml` next
    /// to the infra file is used if it exists (the layout of Occopus's
    /// tutorials), besides the imported definitions; a posted description
    /// (`infra_text`) has no directory, so only imported definitions serve it.
    pub nodes: Vec<PathBuf>,
    /// The credentials file, if any.
    pub auth_data: Option<PathBuf>,
    /// The description's text when it was not read from a file (posted to
    /// the REST service): `infra` then only names it in messages and anchors
    /// its relative imports.
    pub infra_text: Option<String>,
    /// Which files the description's `!yaml_import`s may read.
    pub imports: yaml::Imports,
}

impl Sources {
    /// The node definition files that will be read.
    pub fn node_files(&self) -> Vec<PathBuf> {
        if !self.nodes.is_empty() || self.infra_text.is_some() {
            return self.nodes.clone();
        }
        let beside = self
            .infra
            .parent()
            .unwrap_or(Path::new("."))
            .join("nodes")
            .join("node_definitions.yaml");
        if beside.is_file() {
            vec![beside]
        } else {
            Vec::new()
        }
    }
}

/// An infrastructure with the definitions and credentials of its nodes.
#[derive(Debug, Clone)]
pub struct Model {
    /// The description.
    pub infra: InfraDescription,
    /// Every definition available (files override imported ones).
    pub definitions: NodeDefinitions,
    /// Credentials.
    pub auth: AuthData,
    /// The implementation chosen for each node: its index in the node type's list.
    pub chosen: BTreeMap<String, usize>,
    /// For each node, the other nodes whose addresses its templates read
    /// (`getip`, `getprivip`, `getipall`), found once when the model is
    /// read: they imply dependencies, and they decide which instances a plan
    /// renders again to see whether they are out of date.
    pub addresses_read: BTreeMap<String, BTreeSet<String>>,
}

impl Model {
    /// The implementation chosen for `node`.
    pub fn implementation(&self, node: &str) -> Option<&Implementation> {
        let spec = self.infra.node(node)?;
        let index = *self.chosen.get(node)?;
        self.definitions.types.get(&spec.node_type)?.get(index)
    }
}
