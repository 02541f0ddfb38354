//! The dependency graph of a description, in Graphviz DOT.

use occopus_model::Model;

/// The dependency graph of a description, in Graphviz DOT: an edge from each
/// node to each node it depends on, with the scaling limits as labels.
pub fn graph_dot(model: &Model) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut dot = format!(
        "digraph {} {{\n  rankdir=BT;\n  node [shape=box];\n",
        quote(&model.infra.name)
    );
    for node in &model.infra.nodes {
        let resource = model
            .implementation(&node.name)
            .map_or("?", |i| i.resource_type.as_str());
        let label = format!(
            "{}\\n{} on {} [{}..{}]",
            node.name, node.node_type, resource, node.scaling.min, node.scaling.max
        );
        dot.push_str(&format!(
            "  {} [label={}];\n",
            quote(&node.name),
            quote(&label).replace("\\\\n", "\\n")
        ));
    }
    for edge in &model.infra.dependencies {
        dot.push_str(&format!(
            "  {} -> {};\n",
            quote(&edge.dependent),
            quote(&edge.dependency)
        ));
    }
    dot.push_str("}\n");
    dot
}
