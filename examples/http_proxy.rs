//! `http-proxy`: a forward proxy for an agent's HTTP calls. Point the agent at it with
//! `HTTP_PROXY=http://127.0.0.1:8080` (and `HTTPS_PROXY` for CONNECT decisions by host); every
//! request is decided by the policy, refusals are `403` with a JSON body, response bodies are
//! masked (decompressing gzip, deflate and br).
//!
//! ```sh
//! cargo run --release -p sluice-examples --example http-proxy -- --listen 127.0.0.1:8080 [--policy FILE]
//! curl -x http://127.0.0.1:8080 http://api.example.test/v1/items
//! ```
//!
//! HTTPS (`CONNECT`) is decided by host and port and then tunnelled without inspection: this
//! example does not terminate TLS. One JSON line per decision goes to stderr.

use clap::Parser;
use sluice_core::policy::{Identity, Target};
use sluice_core::session::Output;
use sluice_core::session::http::HttpSession;
use sluice_examples::{Common, default_user, log, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(name = "http-proxy", about = "A forward HTTP proxy enforcing a Sluice policy")]
struct Cli {
    /// Address to listen on (HOST:PORT).
    #[arg(long)]
    listen: String,
    /// Who the agent behind this proxy is (default: $USER, else `agent`).
    #[arg(long)]
    user: Option<String>,
    /// Target name for decisions (default: each request's host).
    #[arg(long)]
    target: Option<String>,
    #[command(flatten)]
    common: Common,
}

async fn serve(mut client: TcpStream, mut session: HttpSession) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Output::default();
    let mut input: Vec<u8> = Vec::new();
    loop {
        out.clear();
        session.from_client(&input, &mut out).map_err(|e| e.to_string())?;
        input.clear();
        client.write_all(&out.to_client).await.map_err(|e| e.to_string())?;
        if let Some(u) = session.upstream() {
            upstream(&mut client, &mut session, u, &out.to_server, &mut buf).await?;
            if session.tunnel() {
                return Ok(());
            }
            // A pipelined request may already be buffered.
            continue;
        }
        if !out.to_client.is_empty() {
            continue; // a refusal; the next request may be buffered too
        }
        let n = client.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        input.extend_from_slice(&buf[..n]);
    }
}

/// Sends one allowed request upstream and relays its (masked) response, or opens a tunnel.
async fn upstream(
    client: &mut TcpStream,
    session: &mut HttpSession,
    (host, port): (String, u16),
    request: &[u8],
    buf: &mut [u8],
) -> Result<(), String> {
    let mut server = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
    if session.tunnel() {
        tokio::io::copy_bidirectional(client, &mut server)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    server.write_all(request).await.map_err(|e| e.to_string())?;
    let mut out = Output::default();
    while !session.response_done() {
        let n = server.read(buf).await.map_err(|e| e.to_string())?;
        out.clear();
        let r = session.from_server(&buf[..n], &mut out);
        client.write_all(&out.to_client).await.map_err(|e| e.to_string())?;
        r.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (guard, listener) = match start("http-proxy", &cli.common, &cli.listen).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let user = default_user(cli.user.as_deref());
    log("http-proxy", &format!("listening on {}", cli.listen));
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            continue;
        };
        let session = HttpSession::new(
            guard.clone(),
            Identity::new(user.clone()),
            cli.target.clone().map(Target::new),
        );
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            if let Err(e) = serve(client, session).await
                && e != "client closed"
            {
                log("http-proxy", &format!("{peer}: {e}"));
            }
        });
    }
}
