//! The approval workflow around grants: an [`ApprovalService`] keeps approval requests with
//! their state (pending, approved, denied, expired), lets reviewers approve or deny them under
//! the request's own approver rules (who, how many, self-approval), and signs the grant once a
//! request is satisfied; a session holding a command waits on it through a [`Hold`].
//!
//! State lives in an [`ApprovalStore`]: [`MemoryApprovals`] for one process, `RedisApprovals`
//! (with the `redis` feature) for a fleet, so any proxy can wait on a request any node approves.
//!
//! ```
//! use std::sync::Arc;
//! use sluice_core::policy::approvals::{ApprovalService, MemoryApprovals, State};
//! use sluice_core::policy::grant::{Approver, GrantKey, GrantVerifier, MemoryStore};
//! use sluice_core::policy::{Action, Dialect, Engine, Identity, Request, Target};
//!
//! let engine = Engine::agent_safe();
//! let (me, db) = (Identity::new("agent-7"), Target::new("orders-db"));
//! let drop = Request::Sql { text: "DROP TABLE old_orders", dialect: Dialect::Postgres, lexing: Default::default() };
//! let mut d = engine.decide(&me, &db, &drop);
//! assert_eq!(d.action(), Action::RequireApproval);
//!
//! let key = GrantKey::generate_ed25519();
//! let service = ApprovalService::new(Arc::new(MemoryApprovals::default()), key.clone());
//! let id = service.submit(d.approval().unwrap().clone()).unwrap().request.id;
//! let done = service.review(&id, &Approver::new("alice"), true, "looks fine").unwrap();
//! assert_eq!(done.state, State::Approved);
//!
//! let verifier = GrantVerifier::new(key.public().unwrap(), Arc::new(MemoryStore::default()));
//! d.redeem(done.grant.as_deref().unwrap(), &verifier);
//! assert_eq!(d.action(), Action::Allow);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::grant::{ApprovalRequest, Approver, GrantError, GrantKey, fingerprint, issue, now};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for reviewers.
    Pending,
    /// Enough approvals: the grant is issued.
    Approved,
    /// A reviewer denied it.
    Denied,
    /// Its time ran out before it was decided.
    Expired,
}

impl State {
    /// The state as a lowercase word.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
        }
    }
}

/// One reviewer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The reviewer, as the service authenticated them.
    pub reviewer: Approver,
    /// Approve (`true`) or deny.
    pub approve: bool,
    /// Their comment.
    #[serde(default)]
    pub comment: String,
    /// Unix seconds.
    pub at: u64,
}

/// A request and what has happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The request, as the session made it.
    pub request: ApprovalRequest,
    /// Its state.
    pub state: State,
    /// Every review so far, in order.
    #[serde(default)]
    pub reviews: Vec<Review>,
    /// The signed grant, once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

impl Entry {
    /// The entry with its state brought up to `now` (a pending request past its expiry is expired).
    fn at(mut self, now: u64) -> Entry {
        self.state = self.state_at(now);
        self
    }

    /// Its state at `now`.
    fn state_at(&self, now: u64) -> State {
        if self.state == State::Pending && now >= self.request.expires_at {
            State::Expired
        } else {
            self.state
        }
    }

    /// The entry without its grant (for listings and notifications).
    pub fn without_grant(&self) -> Entry {
        Entry {
            grant: None,
            ..self.clone()
        }
    }
}

/// Why an approval action failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApprovalError {
    /// No request has this id.
    NotFound(String),
    /// A request with this id exists already.
    Duplicate(String),
    /// The request is malformed or inconsistent (its fingerprint is not its command's).
    Invalid(String),
    /// The request is no longer pending.
    Closed {
        /// The request.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// This reviewer may not review this request.
    Forbidden(String),
    /// Signing the grant failed.
    Grant(GrantError),
    /// The store failed.
    Store(String),
}

impl fmt::Display for ApprovalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApprovalError::NotFound(id) => write!(f, "no approval request `{id}`"),
            ApprovalError::Duplicate(id) => write!(f, "approval request `{id}` exists already"),
            ApprovalError::Invalid(m) => write!(f, "invalid approval request: {m}"),
            ApprovalError::Closed { id, state } => write!(f, "approval request `{id}` is {state}, not pending"),
            ApprovalError::Forbidden(m) => f.write_str(m),
            ApprovalError::Grant(e) => write!(f, "{e}"),
            ApprovalError::Store(m) => write!(f, "approval store: {m}"),
        }
    }
}

impl std::error::Error for ApprovalError {}

impl From<GrantError> for ApprovalError {
    fn from(e: GrantError) -> ApprovalError {
        ApprovalError::Grant(e)
    }
}

/// Keeps approval entries. Updates must be atomic across every process sharing the store.
pub trait ApprovalStore: Send + Sync + fmt::Debug {
    /// Adds `entry`; `Ok(false)` when its id is taken.
    fn insert(&self, entry: &Entry) -> Result<bool, ApprovalError>;
    /// The entry `id`.
    fn get(&self, id: &str) -> Result<Option<Entry>, ApprovalError>;
    /// Changes entry `id` with `change`, atomically; the changed entry, or `change`'s error
    /// (the entry then stays as it was).
    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Entry) -> Result<(), ApprovalError>,
    ) -> Result<Entry, ApprovalError>;
    /// Every entry (pending and recent), newest first.
    fn list(&self) -> Result<Vec<Entry>, ApprovalError>;
}

/// Entries in this process's memory. Those closed more than a day ago are dropped.
#[derive(Debug, Default)]
pub struct MemoryApprovals {
    entries: Mutex<HashMap<String, Entry>>,
    changed: Condvar,
}

impl MemoryApprovals {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry>>, ApprovalError> {
        self.entries.lock().map_err(|_| ApprovalError::Store("poisoned".into()))
    }

    /// Waits until entry `id` is no longer pending or `timeout` passes; the entry then.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<Option<Entry>, ApprovalError> {
        let deadline = Instant::now() + timeout;
        let mut map = self.lock()?;
        loop {
            let t = now();
            let e = map.get(id).cloned().map(|e| e.at(t));
            let left = deadline.saturating_duration_since(Instant::now());
            match e {
                Some(e) if e.state == State::Pending && !left.is_zero() => {
                    // Wake at least every second, to see expiry.
                    let (m, _) = self
                        .changed
                        .wait_timeout(map, left.min(Duration::from_secs(1)))
                        .map_err(|_| ApprovalError::Store("poisoned".into()))?;
                    map = m;
                }
                other => return Ok(other),
            }
        }
    }
}

impl ApprovalStore for MemoryApprovals {
    fn insert(&self, entry: &Entry) -> Result<bool, ApprovalError> {
        let mut map = self.lock()?;
        let t = now();
        if map.len() > 4096 {
            map.retain(|_, e| e.state == State::Pending || e.request.expires_at + 86_400 > t);
        }
        if map.contains_key(&entry.request.id) {
            return Ok(false);
        }
        map.insert(entry.request.id.clone(), entry.clone());
        self.changed.notify_all();
        Ok(true)
    }

    fn get(&self, id: &str) -> Result<Option<Entry>, ApprovalError> {
        Ok(self.lock()?.get(id).cloned())
    }

    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Entry) -> Result<(), ApprovalError>,
    ) -> Result<Entry, ApprovalError> {
        let mut map = self.lock()?;
        let e = map.get_mut(id).ok_or_else(|| ApprovalError::NotFound(id.into()))?;
        let mut next = e.clone();
        change(&mut next)?;
        *e = next.clone();
        self.changed.notify_all();
        Ok(next)
    }

    fn list(&self) -> Result<Vec<Entry>, ApprovalError> {
        let mut v: Vec<Entry> = self.lock()?.values().cloned().collect();
        v.sort_by(|a, b| {
            b.request
                .created_at
                .cmp(&a.request.created_at)
                .then(b.request.id.cmp(&a.request.id))
        });
        Ok(v)
    }
}

/// Entries in Redis, shared by every approval service using the same server: each entry a JSON
/// string under `PREFIX<id>` (kept a day past its expiry), ids in the sorted set `PREFIXindex`;
/// updates are optimistic transactions (`WATCH`/`MULTI`), retried when another node got there first.
#[cfg(feature = "redis")]
pub struct RedisApprovals {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    prefix: String,
}

#[cfg(feature = "redis")]
impl fmt::Debug for RedisApprovals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisApprovals")
            .field("server", &self.client.get_connection_info().addr.to_string())
            .field("prefix", &self.prefix)
            .finish()
    }
}

#[cfg(feature = "redis")]
impl RedisApprovals {
    /// A store at `url` (`redis://host:port/db`), keys under `prefix`.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<RedisApprovals, ApprovalError> {
        Ok(RedisApprovals {
            client: redis::Client::open(url).map_err(|e| ApprovalError::Store(e.to_string()))?,
            conn: Mutex::new(None),
            prefix: prefix.into(),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut redis::Connection) -> Result<T, ApprovalError>) -> Result<T, ApprovalError> {
        let mut guard = self.conn.lock().map_err(|_| ApprovalError::Store("poisoned".into()))?;
        if guard.is_none() {
            *guard = Some(
                self.client
                    .get_connection()
                    .map_err(|e| ApprovalError::Store(e.to_string()))?,
            );
        }
        let Some(conn) = guard.as_mut() else {
            return Err(ApprovalError::Store("no connection".into()));
        };
        let r = f(conn);
        if matches!(r, Err(ApprovalError::Store(_))) {
            *guard = None; // reconnect next time
        }
        r
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    fn decode(json: Option<String>) -> Result<Option<Entry>, ApprovalError> {
        json.map(|j| serde_json::from_str(&j).map_err(|e| ApprovalError::Store(format!("stored entry: {e}"))))
            .transpose()
    }
}

#[cfg(feature = "redis")]
fn store_err(e: impl fmt::Display) -> ApprovalError {
    ApprovalError::Store(e.to_string())
}

#[cfg(feature = "redis")]
impl ApprovalStore for RedisApprovals {
    fn insert(&self, entry: &Entry) -> Result<bool, ApprovalError> {
        let json = serde_json::to_string(entry).map_err(store_err)?;
        let id = &entry.request.id;
        let keep = entry.request.expires_at.max(now()) + 86_400;
        self.with(|c| {
            let set: Option<String> = redis::cmd("SET")
                .arg(self.key(id))
                .arg(&json)
                .arg("NX")
                .arg("EXAT")
                .arg(keep)
                .query(c)
                .map_err(store_err)?;
            if set.is_none() {
                return Ok(false);
            }
            let index = self.key("index");
            redis::pipe()
                .cmd("ZADD")
                .arg(&index)
                .arg(entry.request.created_at)
                .arg(id)
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&index)
                .arg("-inf")
                .arg(now().saturating_sub(86_400 * 2))
                .ignore()
                .query::<()>(c)
                .map_err(store_err)?;
            Ok(true)
        })
    }

    fn get(&self, id: &str) -> Result<Option<Entry>, ApprovalError> {
        self.with(|c| {
            let json: Option<String> = redis::cmd("GET").arg(self.key(id)).query(c).map_err(store_err)?;
            Self::decode(json)
        })
    }

    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Entry) -> Result<(), ApprovalError>,
    ) -> Result<Entry, ApprovalError> {
        let key = self.key(id);
        self.with(|c| {
            for _ in 0..16 {
                redis::cmd("WATCH").arg(&key).query::<()>(c).map_err(store_err)?;
                let json: Option<String> = redis::cmd("GET").arg(&key).query(c).map_err(store_err)?;
                let Some(mut e) = Self::decode(json)? else {
                    redis::cmd("UNWATCH").query::<()>(c).map_err(store_err)?;
                    return Err(ApprovalError::NotFound(id.into()));
                };
                if let Err(err) = change(&mut e) {
                    redis::cmd("UNWATCH").query::<()>(c).map_err(store_err)?;
                    return Err(err);
                }
                let json = serde_json::to_string(&e).map_err(store_err)?;
                // EXEC answers nil when the key changed since WATCH: read again and retry.
                let done: Option<()> = redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&key)
                    .arg(&json)
                    .arg("KEEPTTL")
                    .ignore()
                    .query(c)
                    .map_err(store_err)?;
                if done.is_some() {
                    return Ok(e);
                }
            }
            Err(ApprovalError::Store(format!("`{id}` kept changing under this update")))
        })
    }

    fn list(&self) -> Result<Vec<Entry>, ApprovalError> {
        self.with(|c| {
            let ids: Vec<String> = redis::cmd("ZREVRANGE")
                .arg(self.key("index"))
                .arg(0)
                .arg(999)
                .query(c)
                .map_err(store_err)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ids.iter().map(|i| self.key(i)).collect();
            let jsons: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query(c).map_err(store_err)?;
            let mut out = Vec::new();
            for j in jsons {
                if let Some(e) = Self::decode(j)? {
                    out.push(e);
                }
            }
            Ok(out)
        })
    }
}

/// The approval service: requests in, reviews in, grants out.
#[derive(Debug, Clone)]
pub struct ApprovalService {
    store: Arc<dyn ApprovalStore>,
    key: GrantKey,
}

impl ApprovalService {
    /// A service keeping entries in `store` and signing grants with `key` (an Ed25519 secret
    /// key, whose public half the proxies verify with, or a shared HMAC key).
    pub fn new(store: Arc<dyn ApprovalStore>, key: GrantKey) -> ApprovalService {
        ApprovalService { store, key }
    }

    /// Its store.
    pub fn store(&self) -> &Arc<dyn ApprovalStore> {
        &self.store
    }

    /// Accepts a request a session made. Its fingerprint must be its own command's (what the
    /// reviewers see is exactly what the grant allows); an expired request is refused. A
    /// request submitted again (the same id and content) returns the entry as it stands.
    pub fn submit(&self, request: ApprovalRequest) -> Result<Entry, ApprovalError> {
        if request.id.is_empty()
            || request.id.len() > 128
            || !request
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ApprovalError::Invalid(
                "the id must be 1-128 letters, digits, `_` or `-`".into(),
            ));
        }
        if fingerprint(request.protocol, &request.target, &request.command) != request.fingerprint {
            return Err(ApprovalError::Invalid(
                "the fingerprint is not that of the request's protocol, target and command".into(),
            ));
        }
        if request.count == 0 {
            return Err(ApprovalError::Invalid("count must be at least 1".into()));
        }
        let t = now();
        if t >= request.expires_at {
            return Err(ApprovalError::Invalid("the request has expired".into()));
        }
        let entry = Entry {
            request,
            state: State::Pending,
            reviews: Vec::new(),
            grant: None,
        };
        if self.store.insert(&entry)? {
            return Ok(entry);
        }
        match self.store.get(&entry.request.id)? {
            Some(old) if old.request == entry.request => Ok(old.at(t)),
            _ => Err(ApprovalError::Duplicate(entry.request.id)),
        }
    }

    /// The entry `id`, its state as of now.
    pub fn get(&self, id: &str) -> Result<Entry, ApprovalError> {
        self.store
            .get(id)?
            .map(|e| e.at(now()))
            .ok_or_else(|| ApprovalError::NotFound(id.into()))
    }

    /// Every entry, newest first, states as of now.
    pub fn list(&self) -> Result<Vec<Entry>, ApprovalError> {
        let t = now();
        Ok(self.store.list()?.into_iter().map(|e| e.at(t)).collect())
    }

    /// Whether `reviewer` may review `request` at all: listed (by user or group, or anyone when
    /// the rule lists nobody) and not the requester unless self-approval is allowed.
    pub fn may_review(request: &ApprovalRequest, reviewer: &Approver) -> Result<(), ApprovalError> {
        if !request.allow_self && reviewer.user == request.user {
            return Err(ApprovalError::Forbidden(format!(
                "{} asked for this and may not review it (self-approval is not allowed)",
                reviewer.user
            )));
        }
        let a = &request.approvers;
        let listed = (a.users.is_empty() && a.groups.is_empty())
            || a.users.contains(&reviewer.user)
            || reviewer.groups.iter().any(|g| a.groups.contains(g));
        if !listed {
            return Err(ApprovalError::Forbidden(format!(
                "{} is not an approver of this request (users: [{}], groups: [{}])",
                reviewer.user,
                a.users.join(", "),
                a.groups.join(", ")
            )));
        }
        Ok(())
    }

    /// Records `reviewer`'s answer on request `id`. A denial closes it; an approval counts
    /// toward the rule's number of distinct approvers, and the one that satisfies it signs the
    /// grant. Refused when the request is not pending or the reviewer may not review it (or has
    /// already approved it).
    pub fn review(&self, id: &str, reviewer: &Approver, approve: bool, comment: &str) -> Result<Entry, ApprovalError> {
        let comment: String = comment.chars().take(2000).collect();
        self.store.update(id, &mut |e| {
            let t = now();
            let state = e.state_at(t);
            if state != State::Pending {
                return Err(ApprovalError::Closed {
                    id: e.request.id.clone(),
                    state: state.as_str(),
                });
            }
            Self::may_review(&e.request, reviewer)?;
            if approve && e.reviews.iter().any(|r| r.approve && r.reviewer.user == reviewer.user) {
                return Err(ApprovalError::Forbidden(format!(
                    "{} has already approved this request",
                    reviewer.user
                )));
            }
            e.reviews.push(Review {
                reviewer: reviewer.clone(),
                approve,
                comment: comment.clone(),
                at: t,
            });
            if !approve {
                e.state = State::Denied;
                return Ok(());
            }
            let approvers: Vec<Approver> = e
                .reviews
                .iter()
                .filter(|r| r.approve)
                .map(|r| r.reviewer.clone())
                .collect();
            if e.request.check_approvers(&approvers).is_ok() {
                e.grant = Some(issue(&self.key, &e.request, &approvers, t)?);
                e.state = State::Approved;
            }
            Ok(())
        })
    }
}

/// What became of a held command's approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Approved: the grant to redeem.
    Approved {
        /// The signed grant.
        grant: String,
    },
    /// Denied, by whom and why.
    Denied {
        /// The reviewer.
        by: String,
        /// Their comment.
        comment: String,
    },
    /// Not decided in time (or the request expired).
    TimedOut,
    /// The approval service could not be reached or refused the request.
    Failed(String),
    /// Submitted and not waited on ([`Retry`]): this request, pending; the same command
    /// repeated once it is approved runs.
    Pending(ApprovalRequest),
}

impl Outcome {
    /// The outcome for an entry that is no longer pending (`None` while it is).
    pub fn of(entry: &Entry) -> Option<Outcome> {
        match entry.state {
            State::Pending => None,
            State::Approved => Some(match &entry.grant {
                Some(g) => Outcome::Approved { grant: g.clone() },
                None => Outcome::Failed("approved, but no grant was given".into()),
            }),
            State::Denied => {
                let last = entry.reviews.iter().rev().find(|r| !r.approve);
                Some(Outcome::Denied {
                    by: last.map(|r| r.reviewer.user.clone()).unwrap_or_default(),
                    comment: last.map(|r| r.comment.clone()).unwrap_or_default(),
                })
            }
            State::Expired => Some(Outcome::TimedOut),
        }
    }
}

/// Holds a command that needs approval until it is decided: the session's [`Guard`] calls it
/// (blocking the session, not the host) and redeems the grant it returns, so the command runs
/// exactly once when approved.
///
/// [`Guard`]: crate::session::Guard
pub trait Hold: Send + Sync + fmt::Debug {
    /// Submits `request` and waits for its outcome, calling `waiting` with the time waited so
    /// far every few seconds (MCP sessions send progress notifications from it).
    fn hold(&self, request: &ApprovalRequest, waiting: &mut dyn FnMut(Duration)) -> Outcome;
    /// How long a command is held at most (for messages).
    fn timeout(&self) -> Duration;
    /// Submits `request` (again: submitting is idempotent) without waiting: its outcome once
    /// decided, `None` while it is pending.
    fn poll(&self, request: &ApprovalRequest) -> Option<Outcome>;
}

/// A [`Hold`] that does not wait: a command needing approval is submitted and answered at
/// once as [`Outcome::Pending`] (HTTP answers `202 Accepted`); the same command from the same
/// user to the same target, repeated, gets that first request's outcome: pending again,
/// refused when denied, run (once) when approved.
#[derive(Debug)]
pub struct Retry {
    inner: Arc<dyn Hold>,
    submitted: Mutex<HashMap<String, ApprovalRequest>>,
}

impl Retry {
    /// Submits through `inner`.
    pub fn new(inner: Arc<dyn Hold>) -> Retry {
        Retry {
            inner,
            submitted: Mutex::new(HashMap::new()),
        }
    }
}

impl Hold for Retry {
    fn hold(&self, request: &ApprovalRequest, _waiting: &mut dyn FnMut(Duration)) -> Outcome {
        let key = format!("{}\0{}\0{}", request.user, request.target, request.fingerprint);
        let t = now();
        let earlier = match self.submitted.lock() {
            Ok(mut m) => {
                if m.len() > 4096 {
                    m.retain(|_, r| r.expires_at > t);
                }
                m.get(&key).filter(|r| r.expires_at > t).cloned()
            }
            Err(_) => return Outcome::Failed("poisoned".into()),
        };
        let asked = earlier.unwrap_or_else(|| request.clone());
        let outcome = self.inner.poll(&asked);
        if let Ok(mut m) = self.submitted.lock() {
            match outcome {
                None => {
                    m.insert(key, asked.clone());
                }
                Some(_) => {
                    m.remove(&key);
                }
            }
        }
        outcome.unwrap_or(Outcome::Pending(asked))
    }

    fn timeout(&self) -> Duration {
        Duration::ZERO
    }

    fn poll(&self, request: &ApprovalRequest) -> Option<Outcome> {
        self.inner.poll(request)
    }
}

/// How often a [`Hold`] reports that it is still waiting.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// A [`Hold`] on an [`ApprovalService`] in this process with a [`MemoryApprovals`] store.
#[derive(Debug, Clone)]
pub struct LocalHold {
    service: ApprovalService,
    store: Arc<MemoryApprovals>,
    timeout: Duration,
}

impl LocalHold {
    /// Holds on `store` (signing with `key`) for at most `timeout`; returns the hold and the
    /// service reviewers act through.
    pub fn new(store: Arc<MemoryApprovals>, key: GrantKey, timeout: Duration) -> (LocalHold, ApprovalService) {
        let service = ApprovalService::new(Arc::clone(&store) as Arc<dyn ApprovalStore>, key);
        (
            LocalHold {
                service: service.clone(),
                store,
                timeout,
            },
            service,
        )
    }
}

impl Hold for LocalHold {
    fn hold(&self, request: &ApprovalRequest, waiting: &mut dyn FnMut(Duration)) -> Outcome {
        if let Err(e) = self.service.submit(request.clone()) {
            return Outcome::Failed(e.to_string());
        }
        let start = Instant::now();
        loop {
            let left = self.timeout.saturating_sub(start.elapsed());
            match self.store.wait(&request.id, left.min(PROGRESS_EVERY)) {
                Ok(Some(e)) => match Outcome::of(&e) {
                    Some(done) => return done,
                    None if left <= PROGRESS_EVERY => return Outcome::TimedOut,
                    None => waiting(start.elapsed()),
                },
                Ok(None) => return Outcome::Failed(format!("request {} vanished", request.id)),
                Err(e) => return Outcome::Failed(e.to_string()),
            }
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn poll(&self, request: &ApprovalRequest) -> Option<Outcome> {
        match self.service.submit(request.clone()) {
            Ok(e) => Outcome::of(&e),
            Err(e) => Some(Outcome::Failed(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::grant::{GrantVerifier, MemoryStore};
    use crate::policy::{Action, Dialect, Engine, Identity, Request, Target};

    fn request(engine: &Engine, user: &str, sql: &str) -> ApprovalRequest {
        let d = engine.decide(
            &Identity::new(user),
            &Target::new("db"),
            &Request::Sql {
                text: sql,
                dialect: Dialect::Postgres,
                lexing: Default::default(),
            },
        );
        assert_eq!(d.action(), Action::RequireApproval, "{sql}: {}", d.reason());
        d.approval().cloned().unwrap_or_else(|| unreachable!())
    }

    fn service() -> (ApprovalService, GrantKey) {
        let key = GrantKey::generate_ed25519();
        (
            ApprovalService::new(Arc::new(MemoryApprovals::default()), key.clone()),
            key,
        )
    }

    const TWO_DBAS: &str = r#"
version: 1
name: two-dbas
default: allow
approval:
  count: 2
  approvers: { groups: [dba] }
rules:
  - id: drops-need-two-dbas
    action: require_approval
    when:
      sql:
        kinds: [drop]
"#;

    #[test]
    fn approval_signs_a_grant_for_exactly_the_request() {
        let (s, key) = service();
        let r = request(&Engine::agent_safe(), "agent", "DROP TABLE t");
        let e = s.submit(r.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.state, State::Pending);
        // Submitting the same request again is harmless; another with its id is not.
        assert_eq!(s.submit(r.clone()).map(|e| e.state), Ok(State::Pending));
        let mut other = request(&Engine::agent_safe(), "agent", "DROP TABLE u");
        other.id = r.id.clone();
        assert!(matches!(s.submit(other), Err(ApprovalError::Duplicate(_))));
        let done = s
            .review(&r.id, &Approver::new("alice"), true, "ok")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.state, State::Approved);
        let v = GrantVerifier::new(
            key.public().unwrap_or_else(|| unreachable!()),
            Arc::new(MemoryStore::default()),
        );
        let grant = done.grant.clone().unwrap_or_default();
        assert!(v.redeem(&r, &grant, now()).is_ok());
        // Closed: no more reviews.
        assert!(matches!(
            s.review(&r.id, &Approver::new("bob"), false, "late"),
            Err(ApprovalError::Closed { state: "approved", .. })
        ));
    }

    #[test]
    fn a_forged_fingerprint_or_expired_request_is_refused() {
        let (s, _) = service();
        let mut r = request(&Engine::agent_safe(), "agent", "DROP TABLE t");
        r.command = "SELECT 1".into();
        assert!(matches!(s.submit(r), Err(ApprovalError::Invalid(_))));
        let mut r = request(&Engine::agent_safe(), "agent", "DROP TABLE t");
        r.expires_at = r.created_at;
        assert!(matches!(s.submit(r), Err(ApprovalError::Invalid(_))));
        let mut r = request(&Engine::agent_safe(), "agent", "DROP TABLE t");
        r.id = "../../etc".into();
        assert!(matches!(s.submit(r), Err(ApprovalError::Invalid(_))));
    }

    #[test]
    fn approver_rules_hold() {
        let (s, _) = service();
        let engine = Engine::from_yaml("two-dbas", TWO_DBAS).unwrap_or_else(|e| panic!("{e}"));
        let r = request(&engine, "carol", "DROP TABLE t");
        s.submit(r.clone()).unwrap_or_else(|e| panic!("{e}"));
        let dba = |u: &str| Approver::new(u).group("dba");
        // Not in the group; the requester herself.
        assert!(matches!(
            s.review(&r.id, &Approver::new("mallory"), true, ""),
            Err(ApprovalError::Forbidden(_))
        ));
        assert!(matches!(
            s.review(&r.id, &dba("carol"), true, ""),
            Err(ApprovalError::Forbidden(_))
        ));
        // One of two, then the same one again, then a second.
        assert_eq!(
            s.review(&r.id, &dba("alice"), true, "").map(|e| e.state),
            Ok(State::Pending)
        );
        assert!(matches!(
            s.review(&r.id, &dba("alice"), true, ""),
            Err(ApprovalError::Forbidden(_))
        ));
        let e = s.review(&r.id, &dba("bob"), true, "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.state, State::Approved);
        assert_eq!(e.reviews.len(), 2);
        // A denial closes a request at once.
        let r = request(&engine, "carol", "DROP TABLE u");
        s.submit(r.clone()).unwrap_or_else(|e| panic!("{e}"));
        let e = s
            .review(&r.id, &dba("bob"), false, "not today")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.state, State::Denied);
        assert_eq!(
            Outcome::of(&e),
            Some(Outcome::Denied {
                by: "bob".into(),
                comment: "not today".into()
            })
        );
    }

    #[test]
    fn retry_answers_at_once_and_the_repeat_gets_the_first_requests_outcome() {
        let store = Arc::new(MemoryApprovals::default());
        let (hold, service) = LocalHold::new(Arc::clone(&store), GrantKey::generate_hmac(), Duration::from_secs(30));
        let retry = Retry::new(Arc::new(hold));
        let engine = Engine::agent_safe();
        let first = request(&engine, "agent", "DROP TABLE t");
        let Outcome::Pending(asked) = retry.hold(&first, &mut |_| {}) else {
            panic!("not pending")
        };
        assert_eq!(asked.id, first.id);
        // The same command again (a new request id): still the first request, pending.
        let again = request(&engine, "agent", "DROP TABLE t");
        assert_ne!(again.id, first.id);
        assert_eq!(retry.hold(&again, &mut |_| {}), Outcome::Pending(first.clone()));
        // Another command, or another user, is a request of its own.
        let other = request(&engine, "agent", "DROP TABLE u");
        assert_eq!(retry.hold(&other, &mut |_| {}), Outcome::Pending(other.clone()));
        assert_eq!(service.list().map(|l| l.len()), Ok(2));
        service
            .review(&first.id, &Approver::new("alice"), true, "")
            .unwrap_or_else(|e| panic!("{e}"));
        let third = request(&engine, "agent", "DROP TABLE t");
        assert!(matches!(retry.hold(&third, &mut |_| {}), Outcome::Approved { .. }));
        // Used: the next repeat is a new request.
        let fourth = request(&engine, "agent", "DROP TABLE t");
        assert_eq!(retry.hold(&fourth, &mut |_| {}), Outcome::Pending(fourth.clone()));
        service
            .review(&fourth.id, &Approver::new("bob"), false, "no")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(retry.hold(&fourth, &mut |_| {}), Outcome::Denied { .. }));
    }

    #[test]
    fn a_local_hold_returns_when_reviewed_or_timed_out() {
        let store = Arc::new(MemoryApprovals::default());
        let (hold, service) = LocalHold::new(
            Arc::clone(&store),
            GrantKey::generate_hmac(),
            Duration::from_millis(300),
        );
        let r = request(&Engine::agent_safe(), "agent", "DROP TABLE t");
        assert_eq!(hold.hold(&r, &mut |_| {}), Outcome::TimedOut);
        let r = request(&Engine::agent_safe(), "agent", "DROP TABLE t");
        let id = r.id.clone();
        let (hold, _) = LocalHold::new(Arc::clone(&store), GrantKey::generate_hmac(), Duration::from_secs(30));
        let reviewer = std::thread::spawn(move || {
            for _ in 0..200 {
                if service.get(&id).is_ok() {
                    return service.review(&id, &Approver::new("alice"), true, "");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(ApprovalError::NotFound(id))
        });
        let mut ticks = 0;
        let out = hold.hold(&r, &mut |_| ticks += 1);
        assert!(reviewer.join().is_ok_and(|r| r.is_ok()));
        assert!(matches!(out, Outcome::Approved { .. }), "{out:?}");
    }
}
