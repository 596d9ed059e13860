//! `sluice check`, `sluice approve`, `sluice keygen` and `sluice policy validate|test|show`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use sluice_core::policy::cases::{OwnedRequest, SshKind, parse_cases};
use sluice_core::policy::grant::{
    ApprovalRequest, Approver, GrantKey, GrantVerifier, MemoryStore, RedisStore, ReplayStore, issue, now,
};
use sluice_core::policy::oidc;
use sluice_core::policy::{AGENT_SAFE, Action, Dialect, Engine, Identity, Protocol, Target};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProtocolArg {
    Shell,
    Sql,
    Http,
    Mcp,
    Ssh,
}

impl From<ProtocolArg> for Protocol {
    fn from(p: ProtocolArg) -> Protocol {
        match p {
            ProtocolArg::Shell => Protocol::Shell,
            ProtocolArg::Sql => Protocol::Sql,
            ProtocolArg::Http => Protocol::Http,
            ProtocolArg::Mcp => Protocol::Mcp,
            ProtocolArg::Ssh => Protocol::Ssh,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DialectArg {
    Postgres,
    Mysql,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SshArg {
    Exec,
    Env,
    Subsystem,
    Shell,
    /// A `direct-tcpip` port forward; the command is `host:port`.
    Forward,
    /// Another channel type or global request; the command is its name.
    Channel,
}

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// Policy file (YAML or JSON). Default: the embedded agent-safe policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Acting user or agent id.
    #[arg(long, default_value = "agent")]
    user: String,
    /// A group of the user; may be repeated.
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// A user attribute `KEY=VALUE`; may be repeated.
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    attributes: Vec<String>,
    /// Target name (database, host, API).
    #[arg(long, default_value = "default")]
    target: String,
    /// A target label `KEY=VALUE` (such as env=prod); may be repeated.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Protocol of the command.
    #[arg(long, value_enum)]
    protocol: ProtocolArg,
    /// SQL dialect.
    #[arg(long, value_enum, default_value = "postgres")]
    dialect: DialectArg,
    /// HTTP header `Name: value`; may be repeated.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// HTTP body.
    #[arg(long)]
    body: Option<String>,
    /// SSH request kind (for `env` the command is NAME=VALUE).
    #[arg(long, value_enum, default_value = "exec")]
    ssh: SshArg,
    /// A grant presented for this command (from `sluice approve`).
    #[arg(long, value_name = "TOKEN")]
    grant: Option<String>,
    /// Key that verifies grants (required with --grant).
    #[arg(long, value_name = "FILE")]
    grant_key: Option<PathBuf>,
    /// Replay store for grants: `memory` (this process only) or a redis:// URL.
    #[arg(long, default_value = "memory", value_name = "URL")]
    replay_store: String,
    #[command(flatten)]
    oidc: OidcArgs,
    /// The command: shell or SQL text, `METHOD URL` for http, the JSON-RPC message for mcp;
    /// `-` reads it from stdin.
    #[arg(value_name = "COMMAND")]
    command: String,
}

#[derive(Args, Debug)]
struct OidcArgs {
    /// Establish the identity from this OIDC ID or access token instead of --user/--group.
    #[arg(long, value_name = "JWT", requires_all = ["oidc_jwks", "oidc_issuer", "oidc_audience"])]
    oidc_token: Option<String>,
    #[command(flatten)]
    verifier: OidcVerifierArgs,
}

/// How OIDC tokens are verified (`check --oidc-token`, the approval service's reviewers).
#[derive(Args, Debug)]
pub(crate) struct OidcVerifierArgs {
    /// JWKS file tokens are verified against.
    #[arg(long, value_name = "FILE", requires_all = ["oidc_issuer", "oidc_audience"])]
    pub(crate) oidc_jwks: Option<PathBuf>,
    /// Required issuer.
    #[arg(long, value_name = "URL")]
    oidc_issuer: Option<String>,
    /// Accepted audience.
    #[arg(long, value_name = "AUD")]
    oidc_audience: Option<String>,
    /// Claim holding the groups (dotted path).
    #[arg(long, default_value = "groups", value_name = "CLAIM")]
    oidc_groups_claim: String,
}

impl OidcVerifierArgs {
    /// The verifier, when a JWKS file is given.
    pub(crate) fn verifier(&self) -> Result<Option<oidc::Verifier>, String> {
        let Some(jwks_path) = &self.oidc_jwks else {
            return Ok(None);
        };
        let jwks =
            std::fs::read_to_string(jwks_path).map_err(|e| format!("cannot read JWKS {}: {e}", jwks_path.display()))?;
        let mut cfg = oidc::Config::new(
            self.oidc_issuer.as_deref().unwrap_or_default(),
            self.oidc_audience.as_deref().unwrap_or_default(),
        );
        cfg.groups_claim = self.oidc_groups_claim.clone();
        oidc::Verifier::new(cfg, &jwks)
            .map(Some)
            .map_err(|e| format!("{}: {e}", jwks_path.display()))
    }
}

#[derive(Args, Debug)]
pub(crate) struct ApproveArgs {
    /// Signing key (from `sluice keygen`).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Approver `USER` or `USER:GROUP,GROUP`; may be repeated. Default: $USER.
    #[arg(long = "approver", value_name = "USER[:GROUPS]")]
    approvers: Vec<String>,
    /// The approval request: the JSON `sluice check` printed (whole or its `approval`
    /// object), a file holding it, or `-` for stdin.
    #[arg(value_name = "REQUEST")]
    request: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum KeyType {
    Hmac,
    Ed25519,
}

#[derive(Args, Debug)]
pub(crate) struct KeygenArgs {
    /// Key type: a shared HMAC-SHA256 secret, or an Ed25519 key pair whose public half is all
    /// a verifying proxy needs.
    #[arg(long = "type", value_enum, default_value = "ed25519")]
    kind: KeyType,
    /// Where to write the secret key (created with mode 0600; never overwritten). The public
    /// key of an Ed25519 pair goes to FILE.pub.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub(crate) enum PolicyCommand {
    /// Compile a policy file and report errors with their location.
    Validate {
        /// The policy file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Run policy test cases (JSON or YAML) against a policy, like `opa test`.
    Test {
        /// The policy file, or `agent-safe` for the embedded default.
        #[arg(value_name = "POLICY")]
        policy: PathBuf,
        /// Case files.
        #[arg(value_name = "CASES", required = true)]
        cases: Vec<PathBuf>,
        /// Print passing cases too.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Print the embedded agent-safe policy (a starting point for your own).
    Show,
}

fn read_arg(value: &str) -> Result<String, String> {
    if value == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        Ok(s)
    } else {
        Ok(value.to_string())
    }
}

fn key_value(what: &str, kv: &str) -> Result<(String, String), String> {
    kv.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{what} `{kv}` is not KEY=VALUE"))
}

pub(crate) fn load_engine(policy: Option<&Path>) -> Result<Arc<Engine>, String> {
    match policy {
        None => Ok(Engine::agent_safe()),
        Some(p) if p.as_os_str() == "agent-safe" => Ok(Engine::agent_safe()),
        Some(p) => Engine::from_file(p).map(Arc::new).map_err(|e| e.to_string()),
    }
}

pub(crate) fn read_key(path: &Path) -> Result<GrantKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    GrantKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn check(args: CheckArgs) -> Result<u8, String> {
    let engine = load_engine(args.policy.as_deref())?;
    let identity = match &args.oidc.oidc_token {
        Some(token) => {
            let v = args.oidc.verifier.verifier()?.ok_or("--oidc-jwks is required")?;
            v.verify(token.trim()).map_err(|e| e.to_string())?
        }
        None => {
            let mut id = Identity::new(&args.user);
            id.groups = args.groups.clone();
            for a in &args.attributes {
                let (k, v) = key_value("--attr", a)?;
                id.attributes.insert(k, v);
            }
            id
        }
    };
    let mut target = Target::new(&args.target);
    for l in &args.labels {
        let (k, v) = key_value("--label", l)?;
        target.labels.insert(k, v);
    }
    let command = read_arg(&args.command)?;
    let mut req = OwnedRequest::new(args.protocol.into(), command)
        .dialect(match args.dialect {
            DialectArg::Postgres => Dialect::Postgres,
            DialectArg::Mysql => Dialect::MySql,
        })
        .ssh(match args.ssh {
            SshArg::Exec => SshKind::Exec,
            SshArg::Env => SshKind::Env,
            SshArg::Subsystem => SshKind::Subsystem,
            SshArg::Shell => SshKind::Shell,
            SshArg::Forward => SshKind::Forward,
            SshArg::Channel => SshKind::Channel,
        });
    for h in &args.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header `{h}` is not `Name: value`"))?;
        req = req.header(n.trim(), v.trim().as_bytes().to_vec());
    }
    if let Some(b) = &args.body {
        req = req.body(b.as_bytes().to_vec());
    }
    let decision = match &args.grant {
        None => req.with(|r| engine.decide(&identity, &target, r))?,
        Some(token) => {
            let key_path = args
                .grant_key
                .as_ref()
                .ok_or("--grant needs --grant-key to verify it")?;
            let key = read_key(key_path)?;
            let store: Arc<dyn ReplayStore> = if args.replay_store == "memory" {
                Arc::new(MemoryStore::default())
            } else if args.replay_store.starts_with("redis") {
                Arc::new(RedisStore::new(&args.replay_store, "sluice:grant:").map_err(|e| e.to_string())?)
            } else {
                return Err(format!(
                    "--replay-store `{}`: expected `memory` or a redis:// URL",
                    args.replay_store
                ));
            };
            let verifier = GrantVerifier::new(key, store);
            req.with(|r| engine.decide_with_grant(&identity, &target, r, Some(token), &verifier))?
        }
    };
    let json = serde_json::to_string(&decision).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{json}");
    Ok(u8::from(decision.action() != Action::Allow))
}

/// An approver written `USER` or `USER:GROUP,GROUP`.
pub(crate) fn approver(text: &str) -> Approver {
    let (user, groups) = text.split_once(':').unwrap_or((text, ""));
    let mut a = Approver::new(user);
    a.groups = groups
        .split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    a
}

pub(crate) fn approve(args: ApproveArgs) -> Result<u8, String> {
    let key = read_key(&args.key_file)?;
    let text = if args.request == "-" {
        read_arg("-")?
    } else if Path::new(&args.request).is_file() {
        std::fs::read_to_string(&args.request).map_err(|e| format!("cannot read {}: {e}", args.request))?
    } else {
        args.request.clone()
    };
    let value: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("the request is not JSON: {e}"))?;
    let value = match value.get("approval") {
        Some(serde_json::Value::Null) => return Err("this decision needs no approval (`approval` is null)".into()),
        Some(a) => a.clone(),
        None => value,
    };
    let request: ApprovalRequest =
        serde_json::from_value(value).map_err(|e| format!("not an approval request: {e}"))?;
    let mut approvers: Vec<Approver> = args.approvers.iter().map(|a| approver(a)).collect();
    if approvers.is_empty() {
        let user = std::env::var("USER").map_err(|_| "no --approver given and $USER is not set")?;
        approvers.push(Approver::new(user));
    }
    let token = issue(&key, &request, &approvers, now()).map_err(|e| e.to_string())?;
    let _ = writeln!(std::io::stdout().lock(), "{token}");
    Ok(0)
}

fn write_new(path: &Path, text: &str) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(format!("{text}\n").as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(crate) fn keygen(args: KeygenArgs) -> Result<u8, String> {
    let key = match args.kind {
        KeyType::Hmac => GrantKey::generate_hmac(),
        KeyType::Ed25519 => GrantKey::generate_ed25519(),
    };
    write_new(&args.out, &key.to_text())?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "secret key: {}", args.out.display());
    if let Some(public) = key.public() {
        let mut p = args.out.clone().into_os_string();
        p.push(".pub");
        let p = PathBuf::from(p);
        write_new(&p, &public.to_text())?;
        let _ = writeln!(out, "public key: {}", p.display());
    }
    Ok(0)
}

pub(crate) fn policy(cmd: PolicyCommand) -> Result<u8, String> {
    let mut out = std::io::stdout().lock();
    match cmd {
        PolicyCommand::Validate { file } => {
            let e = Engine::from_file(&file).map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "{}: ok (policy `{}`, {} rules)",
                file.display(),
                e.name(),
                e.rule_count()
            );
            Ok(0)
        }
        PolicyCommand::Show => {
            let _ = out.write_all(AGENT_SAFE.as_bytes());
            Ok(0)
        }
        PolicyCommand::Test { policy, cases, verbose } => {
            let engine = load_engine(Some(&policy))?;
            let (mut passed, mut failed) = (0usize, 0usize);
            for file in &cases {
                let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                let cases = parse_cases(&text).map_err(|e| format!("{}: {e}", file.display()))?;
                for c in cases {
                    let r = c.run(&engine);
                    let got = match &r.decision {
                        Ok(d) => format!("{} ({})", d.action().as_str(), d.rule().unwrap_or("no rule")),
                        Err(e) => format!("error: {e}"),
                    };
                    if r.passed() {
                        passed += 1;
                        if verbose {
                            let _ = writeln!(out, "PASS {}: {got}", c.name);
                        }
                    } else {
                        failed += 1;
                        let want = format!(
                            "{}{}",
                            c.expect.as_str(),
                            c.rule.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
                        );
                        let reason = r.decision.as_ref().map(|d| d.reason()).unwrap_or_default();
                        let _ = writeln!(out, "FAIL {}: expected {want}, got {got}\n     {reason}", c.name);
                    }
                }
            }
            let _ = writeln!(out, "{passed} passed, {failed} failed");
            Ok(u8::from(failed > 0))
        }
    }
}
