//! `pg-proxy`: PostgreSQL clients (psql, libpq, psycopg) → this proxy → PostgreSQL, with every
//! statement decided by the policy and every result masked.
//!
//! ```sh
//! cargo run --release -p sluice-examples --example pg-proxy -- \
//!     --listen 127.0.0.1:6432 --upstream 127.0.0.1:5432 [--policy FILE] [--grant-key FILE]
//! psql "host=127.0.0.1 port=6432 user=app dbname=app"
//! ```
//!
//! TLS from clients is refused (the session answers `N` to SSLRequest, so `sslmode=prefer`
//! falls back to plain TCP and `sslmode=require` fails); terminate TLS in front of the proxy if
//! the network needs it. One JSON line per decision goes to stderr.

use clap::Parser;
use sluice_core::policy::Target;
use sluice_core::session::postgres::PgSession;
use sluice_examples::{Common, guard, log, relay};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser, Debug)]
#[command(name = "pg-proxy", about = "A PostgreSQL proxy enforcing a Sluice policy")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6432")]
    listen: String,
    /// The PostgreSQL server.
    #[arg(long)]
    upstream: String,
    /// Target name for decisions (default: the database the client asks for).
    #[arg(long)]
    target: Option<String>,
    /// Target label KEY=VALUE (such as env=prod); may be repeated.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let guard = match guard("pg-proxy", &cli.common) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("pg-proxy: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pg-proxy: cannot listen on {}: {e}", cli.listen);
            return std::process::ExitCode::from(2);
        }
    };
    let target = cli.target.clone().map(|name| {
        let mut t = Target::new(name);
        for l in &cli.labels {
            if let Some((k, v)) = l.split_once('=') {
                t.labels.insert(k.into(), v.into());
            }
        }
        t
    });
    log(
        "pg-proxy",
        &format!("listening on {}, upstream {}", cli.listen, cli.upstream),
    );
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            continue;
        };
        let (guard, upstream, target) = (guard.clone(), cli.upstream.clone(), target.clone());
        tokio::spawn(async move {
            match TcpStream::connect(&upstream).await {
                Ok(server) => relay("pg-proxy", client, server, PgSession::new(guard, None, target)).await,
                Err(e) => log("pg-proxy", &format!("{peer}: cannot reach {upstream}: {e}")),
            }
        });
    }
}
