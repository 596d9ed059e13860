//! Holding commands that need approval: [`HttpHold`] submits a session's approval request to
//! an approval service (`sluice approvals serve`) and waits on it, so the client sees a slow
//! command rather than a refusal, and the command runs once a reviewer approves it.

use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_core::policy::approvals::{Entry, Hold, Outcome};
use sluice_core::policy::grant::ApprovalRequest;

/// A [`Hold`] on an approval service reached over HTTP.
#[derive(Debug, Clone)]
pub struct HttpHold {
    base: String,
    token: String,
    timeout: Duration,
    agent: ureq::Agent,
}

impl HttpHold {
    /// Holds on the service at `base` (`http://host:port`), presenting `token`, for at most `timeout`.
    pub fn new(base: &str, token: String, timeout: Duration) -> HttpHold {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(75)))
            .http_status_as_error(false)
            .build()
            .into();
        HttpHold {
            base: base.trim_end_matches('/').to_string(),
            token,
            timeout,
            agent,
        }
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// The entry from a service answer, or why there is none.
    fn entry(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Entry, String> {
        let mut r = r.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let body: Value = r.body_mut().read_json().map_err(|e| format!("HTTP {status}: {e}"))?;
        if !(200..300).contains(&status) {
            let msg = body.get("error").and_then(Value::as_str).unwrap_or("").to_string();
            return Err(format!("HTTP {status}: {msg}"));
        }
        serde_json::from_value(body).map_err(|e| format!("not an approval entry: {e}"))
    }

    /// Submits `request` (again: the service answers an identical request with its entry).
    fn submit(&self, request: &ApprovalRequest) -> Result<Entry, String> {
        let r = self
            .agent
            .post(&format!("{}/api/requests", self.base))
            .header("Authorization", &self.auth())
            .send_json(request);
        Self::entry(r)
    }

    fn wait(&self, request: &ApprovalRequest, waiting: &mut dyn FnMut(Duration)) -> Outcome {
        let mut entry = match self.submit(request) {
            Ok(e) => e,
            Err(e) => return Outcome::Failed(e),
        };
        let start = Instant::now();
        let every = sluice_core::policy::approvals::PROGRESS_EVERY;
        loop {
            if let Some(done) = Outcome::of(&entry) {
                return done;
            }
            let left = self.timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Outcome::TimedOut;
            }
            if start.elapsed() >= every {
                waiting(start.elapsed());
            }
            // The service answers at once when the request is decided, else after `wait`.
            let url = format!(
                "{}/api/requests/{}?wait={}",
                self.base,
                request.id,
                left.min(every).as_secs().max(1)
            );
            let got = self.agent.get(&url).header("Authorization", &self.auth()).call();
            entry = match Self::entry(got) {
                Ok(e) => e,
                Err(e) => return Outcome::Failed(e),
            };
        }
    }
}

/// Runs `f`, which blocks: on a multi-threaded runtime, telling it this worker blocks (other
/// connections go on); the TCP proxies run each connection on its own thread, which may
/// simply block.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl Hold for HttpHold {
    fn hold(&self, request: &ApprovalRequest, waiting: &mut dyn FnMut(Duration)) -> Outcome {
        blocking(|| self.wait(request, waiting))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn poll(&self, request: &ApprovalRequest) -> Option<Outcome> {
        blocking(|| match self.submit(request) {
            Ok(e) => Outcome::of(&e),
            Err(e) => Some(Outcome::Failed(e)),
        })
    }
}
