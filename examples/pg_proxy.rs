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
//! the network needs it. TLS to the server: `--upstream-tls verify-full [--upstream-ca FILE]`.
//! With `--credentials FILE` the proxy logs in for the agent (a placeholder password). One JSON
//! line per decision goes to stderr.

use clap::Parser;
use sluice_core::session::postgres::PgSession;
use sluice_examples::{TcpProxy, serve};

#[derive(Parser, Debug)]
#[command(name = "pg-proxy", about = "A PostgreSQL proxy enforcing a Sluice policy")]
struct Cli {
    #[command(flatten)]
    proxy: TcpProxy,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    serve("pg-proxy", "postgres", cli.proxy, |guard, target| {
        PgSession::new(guard, None, target)
    })
    .await
}
