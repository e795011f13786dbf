//! The supervision tree as operators read it: `GET /admin/v1/supervision`.

use serde::{Deserialize, Serialize};

/// One node: a supervisor or an actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisionNode {
    /// Path-like name (`kms/health`).
    pub name: String,
    /// Actor type (`Health`, `ServiceSupervisor`).
    pub kind: String,
    /// `running`, `restarting`, `stopped`, `failed`.
    pub state: String,
    /// Restarts since the process started.
    pub restarts: u64,
    /// What the actor itself reports, for actors with a state operators watch (a `Breaker`'s
    /// `closed`, `half_open` or `open`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Children, for supervisors.
    pub children: Vec<SupervisionNode>,
}

impl SupervisionNode {
    /// Renders the tree indented, one node a line, as `cryptoutil supervision` prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0);
        out
    }

    /// Finds a node by name anywhere below (and including) this one.
    pub fn find(&self, name: &str) -> Option<&SupervisionNode> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        out.push_str(&"  ".repeat(depth));
        out.push_str(&format!(
            "{} [{}] {} restarts={}",
            self.name, self.kind, self.state, self.restarts
        ));
        if let Some(detail) = &self.detail {
            out.push(' ');
            out.push_str(detail);
        }
        out.push('\n');
        for child in &self.children {
            child.render_into(out, depth + 1);
        }
    }
}
