//! The policy document as written (YAML or JSON), before compilation. `schema/policy.schema.json`
//! describes the same structure for editors and other tools.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Let the command through.
    Allow,
    /// Let it through once a human approved exactly this command.
    RequireApproval,
    /// Refuse it.
    Deny,
}

impl Action {
    /// The name used in policy files and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::RequireApproval => "require_approval",
            Action::Deny => "deny",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyDoc {
    pub version: u32,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    /// Include the embedded agent-safe rules after this policy's own rules.
    #[serde(default)]
    pub extends: Option<String>,
    #[serde(default)]
    pub default: Option<Action>,
    #[serde(default)]
    pub uncertain: Option<Action>,
    #[serde(default)]
    pub approval: ApprovalDoc,
    #[serde(default)]
    pub masking: MaskingDoc,
    #[serde(default)]
    pub roles: BTreeMap<String, RoleDoc>,
    #[serde(default)]
    pub tools: ToolsDoc,
    /// Where each brokered credential may be substituted.
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialDoc>,
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CredentialDoc {
    pub targets: Vec<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalDoc {
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub allow_self: Option<bool>,
    #[serde(default)]
    pub approvers: Option<ApproversDoc>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproversDoc {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaskingDoc {
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for MaskingDoc {
    fn default() -> MaskingDoc {
        MaskingDoc { enabled: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleDoc {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolsDoc {
    /// MCP tools that run a shell command: their argument is analysed as shell.
    #[serde(default)]
    pub shell: Vec<ToolMapDoc>,
    /// MCP tools that read or write files: their argument is a path.
    #[serde(default)]
    pub files: Vec<ToolMapDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolMapDoc {
    pub tool: String,
    pub arguments: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDoc {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub when: WhenDoc,
    #[serde(default)]
    pub approval: Option<ApprovalDoc>,
    #[serde(default)]
    pub mask: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhenDoc {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub not_users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub not_groups: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub not_roles: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub not_targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub protocols: Vec<String>,
    #[serde(default)]
    pub shell: Option<ShellDoc>,
    #[serde(default)]
    pub sql: Option<SqlDoc>,
    #[serde(default)]
    pub http: Option<HttpDoc>,
    #[serde(default)]
    pub mcp: Option<McpDoc>,
    #[serde(default)]
    pub ssh: Option<SshDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShellDoc {
    #[serde(default)]
    pub programs: Vec<String>,
    #[serde(default)]
    pub not_programs: Vec<String>,
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub not_paths: Vec<String>,
    #[serde(default)]
    pub writes: Vec<String>,
    #[serde(default)]
    pub variables: Vec<String>,
    #[serde(default)]
    pub max_operands: Option<usize>,
    #[serde(default)]
    pub max_args: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlDoc {
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub relations: Vec<String>,
    #[serde(default)]
    pub writes: Vec<String>,
    #[serde(default)]
    pub functions: Vec<String>,
    #[serde(default)]
    pub missing_where: Option<bool>,
    #[serde(default)]
    pub copy: Vec<String>,
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    pub secret_columns: Vec<String>,
    #[serde(default)]
    pub except_columns: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpDoc {
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub json: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct McpDoc {
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub arguments: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SshDoc {
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub subsystems: Vec<String>,
    #[serde(default)]
    pub forwards: Vec<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub shell: bool,
}
