//! `mcp-stdio-guard`: wraps any MCP server that speaks stdio. The agent's MCP client starts the
//! guard instead of the server; the guard starts the server and sits between them, deciding every
//! `tools/call`, hiding tools the identity may not call, flagging tools that change mid-session
//! and masking results.
//!
//! ```sh
//! mcp-stdio-guard [--policy FILE] [--grant-key FILE] [--user U] [--target NAME] -- python3 server.py
//! ```
//!
//! One JSON line per decision goes to stderr (MCP clients pass the server's stderr through or
//! log it). Exits with the server's exit status.

use std::process::Stdio;

use clap::Parser;
use sluice_core::policy::{Identity, Target};
use sluice_core::session::Output;
use sluice_core::session::mcp::McpSession;
use sluice_examples::{Common, default_user, guard, log, session_guard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

#[derive(Parser, Debug)]
#[command(name = "mcp-stdio-guard", about = "Guard an MCP stdio server with a Sluice policy")]
struct Cli {
    /// Who acts (default: $USER, else `agent`).
    #[arg(long)]
    user: Option<String>,
    /// A group of that identity; may be repeated.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Target name for decisions (default: the server command's name).
    #[arg(long)]
    target: Option<String>,
    #[command(flatten)]
    common: Common,
    /// The MCP server command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "SERVER COMMAND")]
    server: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut cli = Cli::parse();
    let guard = match guard("mcp-stdio-guard", &mut cli.common) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("mcp-stdio-guard: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut identity = Identity::new(default_user(cli.user.as_deref()));
    identity.groups = cli.groups.clone();
    let program = std::path::Path::new(&cli.server[0])
        .file_name()
        .map_or_else(|| cli.server[0].clone(), |f| f.to_string_lossy().into_owned());
    let target = Target::new(cli.target.clone().unwrap_or(program));
    let mut child = match Command::new(&cli.server[0])
        .args(&cli.server[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-stdio-guard: cannot start {}: {e}", cli.server[0]);
            return std::process::ExitCode::from(2);
        }
    };
    let (Some(mut child_in), Some(mut child_out)) = (child.stdin.take(), child.stdout.take()) else {
        return std::process::ExitCode::from(2);
    };
    let guard = match session_guard(
        "mcp-stdio-guard",
        &guard,
        &cli.common,
        "mcp",
        Some(&identity.user),
        Some(&target.name),
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("mcp-stdio-guard: cannot record the session: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut session = McpSession::new(guard, identity, target);
    // Progress while a call is held for approval: written at once (everything written before
    // has been flushed, and the loop waits on the held call).
    session.on_progress(|line| {
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(line).and_then(|()| o.flush());
    });
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let (mut abuf, mut sbuf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut out = Output::default();
    let mut client_open = true;
    // Once the client has closed our stdin, the server gets a moment to finish, then is stopped
    // (as MCP clients do with servers).
    let mut deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3600 * 24 * 365);
    // A client that stops us (SIGTERM, as MCP clients do) still gets a closed recording.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async move {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(terminated);
    loop {
        out.clear();
        let r = tokio::select! {
            n = stdin.read(&mut abuf), if client_open => match n {
                Ok(0) | Err(_) => {
                    // The client is done: let the server see EOF and finish.
                    client_open = false;
                    let _ = child_in.shutdown().await;
                    deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
                    continue;
                }
                Ok(n) => session.from_client(&abuf[..n], &mut out),
            },
            n = child_out.read(&mut sbuf) => match n {
                Ok(0) | Err(_) => {
                    session.abort_pending("the server ended", &mut out);
                    let _ = stdout.write_all(&out.to_client).await;
                    let _ = stdout.flush().await;
                    break;
                }
                Ok(n) => session.from_server(&sbuf[..n], &mut out),
            },
            () = tokio::time::sleep_until(deadline), if !client_open => {
                let _ = child.kill().await;
                break;
            }
            () = &mut terminated => {
                let _ = child.kill().await;
                break;
            }
        };
        if let Err(e) = r {
            // What was decided before the bad input still goes out; every request still waiting
            // gets an error; then the client sees end-of-file.
            log("mcp-stdio-guard", &e.to_string());
            let _ = child.kill().await;
            session.abort_pending(&e.to_string(), &mut out);
            let _ = stdout.write_all(&out.to_client).await;
            let _ = stdout.flush().await;
            // Close the recording (exit skips destructors), then exit at once: the runtime would
            // otherwise wait for the blocked read of stdin.
            drop(session);
            std::process::exit(1);
        }
        if !out.to_server.is_empty() && child_in.write_all(&out.to_server).await.is_err() {
            break;
        }
        if !out.to_client.is_empty()
            && (stdout.write_all(&out.to_client).await.is_err() || stdout.flush().await.is_err())
        {
            break;
        }
    }
    let code = match child.wait().await {
        Ok(s) => s.code().unwrap_or(1).clamp(0, 255),
        Err(_) => 1,
    };
    let _ = stdout.flush().await;
    // Close the recording (exit skips destructors); then exit at once, closing stdout: the
    // runtime would otherwise wait for a blocked read of a client's stdin that is still open.
    drop(session);
    std::process::exit(code)
}
