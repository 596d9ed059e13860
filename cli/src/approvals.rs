//! `sluice approvals serve`: the approval service over HTTP. Sessions (the proxies'
//! `--approvals URL`) submit approval requests and wait on them; reviewers see them on a web
//! page or through the JSON API and approve or deny; the service signs the grant when a
//! request's rule is satisfied. State is in memory or in Redis (a fleet of services sharing it).
//!
//! API (every call needs `Authorization: Bearer TOKEN`):
//! - `POST /api/requests` (proxy token): an approval request (or a decision holding one) → its entry;
//! - `GET /api/requests/ID[?wait=SECONDS]` (proxy or reviewer): the entry, waiting up to 60 s
//!   while it is pending;
//! - `GET /api/requests[?state=pending]` (reviewer): entries, newest first (no grants);
//! - `POST /api/requests/ID/approve`, `…/deny` (reviewer), body `{"comment": "…"}`;
//! - `GET /api/me` (reviewer): who the token is.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sluice_core::policy::approvals::{
    ApprovalError, ApprovalService, ApprovalStore, Entry, MemoryApprovals, RedisApprovals, State,
};
use sluice_core::policy::grant::{ApprovalRequest, Approver};
use sluice_core::policy::oidc;

#[derive(Subcommand, Debug)]
pub(crate) enum ApprovalsCommand {
    /// Serve the approval service: the reviewers' web page, the JSON API, notifications.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:7474", value_name = "ADDR")]
    listen: String,
    /// The key that signs grants (`sluice keygen`; the proxies verify with its `.pub` half or
    /// the same HMAC key).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Where requests are kept: `memory` (this process) or a redis:// URL shared by every
    /// service node.
    #[arg(long, default_value = "memory", value_name = "URL")]
    store: String,
    /// A file holding the token proxies present to submit and wait on requests.
    #[arg(long, value_name = "FILE")]
    proxy_token_file: PathBuf,
    /// Static reviewer tokens, one per line: `TOKEN USER[:GROUP,GROUP]` (for tests and small
    /// setups; `#` starts a comment).
    #[arg(long, value_name = "FILE")]
    reviewer_tokens: Option<PathBuf>,
    /// Reviewers may sign in with OIDC ID tokens (`--oidc-jwks FILE --oidc-issuer URL
    /// --oidc-audience AUD`): user and groups from the token.
    #[command(flatten)]
    oidc: crate::policy::OidcVerifierArgs,
    /// POST each new request, approval and denial as JSON to this URL; may be repeated.
    #[arg(long = "webhook", value_name = "URL")]
    webhooks: Vec<String>,
    /// POST each event as a Slack message (incoming-webhook payload) to this URL; may be repeated.
    #[arg(long = "slack-webhook", value_name = "URL")]
    slack_webhooks: Vec<String>,
    /// The address reviewers reach this service at, for links in notifications (default:
    /// http://LISTEN).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
}

pub(crate) fn run(cmd: ApprovalsCommand) -> Result<u8, String> {
    match cmd {
        ApprovalsCommand::Serve(args) => serve(args),
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
enum Caller {
    Proxy,
    Reviewer(Approver),
}

struct Auth {
    proxy: [u8; 32],
    reviewers: HashMap<[u8; 32], Approver>,
    oidc: Option<oidc::Verifier>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// The caller a bearer token names (tokens are compared as digests, in no particular order).
    fn caller(&self, token: &str) -> Result<Caller, String> {
        let d = digest(token);
        if d == self.proxy {
            return Ok(Caller::Proxy);
        }
        if let Some(a) = self.reviewers.get(&d) {
            return Ok(Caller::Reviewer(a.clone()));
        }
        match &self.oidc {
            Some(v) if token.matches('.').count() == 2 => v
                .verify(token)
                .map(|id| {
                    Caller::Reviewer(Approver {
                        user: id.user,
                        groups: id.groups,
                    })
                })
                .map_err(|e| e.to_string()),
            _ => Err("unknown token".into()),
        }
    }
}

fn read_secret(path: &Path) -> Result<String, String> {
    let t = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let t = t.trim().to_string();
    if t.len() < 16 {
        return Err(format!("{}: a token needs at least 16 characters", path.display()));
    }
    Ok(t)
}

fn reviewer_tokens(path: &Path) -> Result<HashMap<[u8; 32], Approver>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let where_ = format!("{}:{}", path.display(), n + 1);
        let mut parts = line.split_whitespace();
        let (Some(token), Some(who), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{where_}: expected `TOKEN USER[:GROUP,GROUP]`"));
        };
        if token.len() < 16 {
            return Err(format!("{where_}: a token needs at least 16 characters"));
        }
        if out.insert(digest(token), crate::policy::approver(who)).is_some() {
            return Err(format!("{where_}: this token is listed twice"));
        }
    }
    Ok(out)
}

struct Service {
    approvals: ApprovalService,
    auth: Auth,
    notify: Notifier,
}

fn serve(args: ServeArgs) -> Result<u8, String> {
    let key = crate::policy::read_key(&args.key_file)?;
    if matches!(key, sluice_core::policy::grant::GrantKey::Ed25519Public(_)) {
        return Err(format!("{}: a public key cannot sign grants", args.key_file.display()));
    }
    let store: Arc<dyn ApprovalStore> = if args.store == "memory" {
        Arc::new(MemoryApprovals::default())
    } else if args.store.starts_with("redis://") || args.store.starts_with("rediss://") {
        let s = RedisApprovals::new(&args.store, "sluice:approval:").map_err(|e| e.to_string())?;
        // Fail at start, not at the first request.
        s.list().map_err(|e| format!("--store {}: {e}", args.store))?;
        Arc::new(s)
    } else {
        return Err(format!("--store `{}`: expected `memory` or a redis:// URL", args.store));
    };
    let proxy = digest(&read_secret(&args.proxy_token_file)?);
    let reviewers = match &args.reviewer_tokens {
        Some(p) => reviewer_tokens(p)?,
        None => HashMap::new(),
    };
    let oidc = args.oidc.verifier()?;
    if reviewers.is_empty() && oidc.is_none() {
        return Err("no reviewer can sign in: give --reviewer-tokens FILE or --oidc-jwks FILE".into());
    }
    if reviewers.contains_key(&proxy) {
        return Err("the proxy token is also a reviewer token".into());
    }
    let server = tiny_http::Server::http(&args.listen).map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let bound = server
        .server_addr()
        .to_ip()
        .map_or_else(|| args.listen.clone(), |a| a.to_string());
    let public = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"))
        .trim_end_matches('/')
        .to_string();
    let svc = Arc::new(Service {
        approvals: ApprovalService::new(store, key),
        auth: Auth { proxy, reviewers, oidc },
        notify: Notifier::new(args.webhooks, args.slack_webhooks, public),
    });
    log(
        json!({"event": "listening", "address": bound, "store": if args.store == "memory" { "memory" } else { "redis" }}),
    );
    let server = Arc::new(server);
    // A pool of threads, each taking the next request: waiting calls hold one thread each.
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (server, svc) = (Arc::clone(&server), Arc::clone(&svc));
            std::thread::spawn(move || {
                while let Ok(rq) = server.recv() {
                    handle(&svc, rq);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(0)
}

fn log(line: Value) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

const PAGE: &str = include_str!("approvals/index.html");
const SCRIPT: &str = include_str!("approvals/app.js");
const STYLE: &str = include_str!("approvals/app.css");

/// An HTTP answer.
struct Reply {
    status: u16,
    body: Vec<u8>,
    kind: &'static str,
}

impl Reply {
    fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status,
            body: v.to_string().into_bytes(),
            kind: "application/json",
        }
    }

    fn error(status: u16, message: impl std::fmt::Display) -> Reply {
        Reply::json(status, &json!({"error": message.to_string()}))
    }

    fn asset(body: &str, kind: &'static str) -> Reply {
        Reply {
            status: 200,
            body: body.as_bytes().to_vec(),
            kind,
        }
    }
}

fn handle(svc: &Service, mut rq: tiny_http::Request) {
    let reply = route(svc, &mut rq);
    let header = |k: &str, v: &str| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok();
    let mut resp = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    for h in [
        header("Content-Type", reply.kind),
        header("Cache-Control", "no-store"),
        header("X-Content-Type-Options", "nosniff"),
        header("Referrer-Policy", "no-referrer"),
        header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ]
    .into_iter()
    .flatten()
    {
        resp.add_header(h);
    }
    let _ = rq.respond(resp);
}

fn route(svc: &Service, rq: &mut tiny_http::Request) -> Reply {
    let url = rq.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let method = rq.method().clone();
    use tiny_http::Method::{Get, Post};
    match (&method, path) {
        (Get, "/") => return Reply::asset(PAGE, "text/html; charset=utf-8"),
        (Get, "/app.js") => return Reply::asset(SCRIPT, "text/javascript; charset=utf-8"),
        (Get, "/app.css") => return Reply::asset(STYLE, "text/css; charset=utf-8"),
        (Get, "/healthz") => return Reply::json(200, &json!({"ok": true})),
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/api/") else {
        return Reply::error(404, "not found");
    };
    let token = rq
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().strip_prefix("Bearer ").map(|t| t.trim().to_string()));
    let caller = match token.as_deref().map(|t| svc.auth.caller(t)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Reply::error(401, format!("not signed in: {e}")),
        None => return Reply::error(401, "not signed in: send Authorization: Bearer TOKEN"),
    };
    let body = match read_body(rq) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match (&method, parts.as_slice(), &caller) {
        (Get, ["me"], Caller::Reviewer(a)) => Reply::json(200, &json!({"user": a.user, "groups": a.groups})),
        (Post, ["requests"], Caller::Proxy) => submit(svc, &body),
        (Get, ["requests"], Caller::Reviewer(_)) => list(svc, query),
        (Get, ["requests", id], _) => get(svc, id, query),
        (Post, ["requests", id, verb @ ("approve" | "deny")], Caller::Reviewer(a)) => {
            review(svc, id, a, *verb == "approve", &body)
        }
        (_, ["me" | "requests", ..], Caller::Proxy) => Reply::error(403, "the proxy token may only submit and wait"),
        (_, ["requests"], Caller::Reviewer(_)) => Reply::error(403, "reviewers do not submit requests"),
        _ => Reply::error(404, "not found"),
    }
}

fn read_body(rq: &mut tiny_http::Request) -> Result<Vec<u8>, Reply> {
    const LIMIT: u64 = 1 << 20;
    let mut body = Vec::new();
    rq.as_reader()
        .take(LIMIT + 1)
        .read_to_end(&mut body)
        .map_err(|e| Reply::error(400, format!("reading the body: {e}")))?;
    if body.len() as u64 > LIMIT {
        return Err(Reply::error(413, "the body is larger than 1 MiB"));
    }
    Ok(body)
}

fn status_of(e: &ApprovalError) -> u16 {
    match e {
        ApprovalError::NotFound(_) => 404,
        ApprovalError::Duplicate(_) | ApprovalError::Closed { .. } => 409,
        ApprovalError::Invalid(_) => 400,
        ApprovalError::Forbidden(_) => 403,
        _ => 503,
    }
}

fn entry_json(e: &Entry) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

fn submit(svc: &Service, body: &[u8]) -> Reply {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Reply::error(400, format!("the body is not JSON: {e}")),
    };
    // A whole decision (as sessions and `sluice check` print it) or its `approval` object.
    let v = match v.get("approval") {
        Some(a) => a.clone(),
        None => v,
    };
    let request: ApprovalRequest = match serde_json::from_value(v) {
        Ok(r) => r,
        Err(e) => return Reply::error(400, format!("not an approval request: {e}")),
    };
    let id = request.id.clone();
    match svc.approvals.submit(request) {
        Ok(e) => {
            if e.reviews.is_empty() && e.state == State::Pending {
                svc.notify.send("approval.requested", &e, None);
            }
            Reply::json(201, &entry_json(&e))
        }
        Err(e) => {
            log(json!({"event": "refused", "id": id, "error": e.to_string()}));
            Reply::error(status_of(&e), e)
        }
    }
}

fn list(svc: &Service, query: &str) -> Reply {
    let want = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("state="))
        .map(str::to_string);
    match svc.approvals.list() {
        Ok(all) => {
            let v: Vec<Value> = all
                .iter()
                .filter(|e| want.as_deref().is_none_or(|w| e.state.as_str() == w))
                .map(|e| entry_json(&e.without_grant()))
                .collect();
            Reply::json(200, &json!({"requests": v}))
        }
        Err(e) => Reply::error(status_of(&e), e),
    }
}

fn get(svc: &Service, id: &str, query: &str) -> Reply {
    let wait = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("wait="))
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(0)
        .min(60);
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        match svc.approvals.get(id) {
            Ok(e) if e.state == State::Pending && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(e) => return Reply::json(200, &entry_json(&e)),
            Err(e) => return Reply::error(status_of(&e), e),
        }
    }
}

fn review(svc: &Service, id: &str, who: &Approver, approve: bool, body: &[u8]) -> Reply {
    let comment = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => v.get("comment").and_then(Value::as_str).unwrap_or("").to_string(),
            Err(e) => return Reply::error(400, format!("the body is not JSON: {e}")),
        }
    };
    match svc.approvals.review(id, who, approve, &comment) {
        Ok(e) => {
            let event = match e.state {
                State::Approved => "approval.approved",
                State::Denied => "approval.denied",
                _ => "approval.reviewed",
            };
            svc.notify.send(event, &e, Some(who));
            Reply::json(200, &entry_json(&e))
        }
        Err(e) => {
            log(json!({"event": "review refused", "id": id, "reviewer": who.user, "error": e.to_string()}));
            Reply::error(status_of(&e), e)
        }
    }
}

/// Sends notifications (and logs every event on stderr) off the request's thread.
struct Notifier {
    webhooks: Vec<String>,
    slack: Vec<String>,
    public: String,
    agent: ureq::Agent,
}

impl Notifier {
    fn new(webhooks: Vec<String>, slack: Vec<String>, public: String) -> Notifier {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        Notifier {
            webhooks,
            slack,
            public,
            agent,
        }
    }

    fn send(&self, event: &str, e: &Entry, by: Option<&Approver>) {
        let link = format!("{}/#{}", self.public, e.request.id);
        let entry = entry_json(&e.without_grant());
        log(
            json!({"event": event, "id": e.request.id, "user": e.request.user, "target": e.request.target,
            "command": e.request.command, "by": by.map(|a| &a.user), "state": e.state.as_str()}),
        );
        let generic = json!({"event": event, "url": link, "by": by, "request": entry});
        let slack = slack_message(event, e, by, &link);
        for (urls, body) in [(&self.webhooks, generic), (&self.slack, slack)] {
            for url in urls {
                let (agent, body, event, url) = (self.agent.clone(), body.clone(), event.to_string(), url.clone());
                std::thread::spawn(move || match agent.post(&url).send_json(&body) {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        log(json!({"event": "webhook failed", "for": event, "url": url, "status": r.status().as_u16()}))
                    }
                    Err(err) => {
                        log(json!({"event": "webhook failed", "for": event, "url": url, "error": err.to_string()}))
                    }
                });
            }
        }
    }
}

/// Slack's `mrkdwn` needs `&`, `<` and `>` escaped; the command goes in a code block.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("```", "` ` `")
}

fn slack_message(event: &str, e: &Entry, by: Option<&Approver>, link: &str) -> Value {
    let r = &e.request;
    let head = match (event, by) {
        ("approval.requested", _) => format!(
            "*{}* asks to run on *{}*",
            slack_escape(&r.user),
            slack_escape(&r.target)
        ),
        (_, Some(a)) => format!(
            "*{}* {} the request of *{}* on *{}*",
            slack_escape(&a.user),
            match e.state {
                State::Approved => "approved",
                State::Denied => "denied",
                _ => "approved (more approvals needed)",
            },
            slack_escape(&r.user),
            slack_escape(&r.target)
        ),
        _ => format!("Request {} is {}", r.id, e.state.as_str()),
    };
    let why = format!(
        "{} · rule `{}` · {}",
        r.protocol.as_str(),
        slack_escape(r.rule.as_deref().unwrap_or("-")),
        slack_escape(&r.reason)
    );
    json!({
        "text": format!("{head}: {}", slack_escape(&r.command)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": head}},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("```{}```", slack_escape(&r.command))}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": why}]},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Review"}, "url": link}]},
        ],
    })
}
