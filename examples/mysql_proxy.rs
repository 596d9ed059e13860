//! `mysql-proxy`: MySQL and MariaDB clients (mysql, mariadb, drivers) → this proxy → the server,
//! with every statement decided by the policy and every text result masked.
//!
//! ```sh
//! cargo run --release -p sluice-examples --example mysql-proxy -- \
//!     --listen 127.0.0.1:3307 --upstream 127.0.0.1:3306 [--policy FILE] [--grant-key FILE]
//! mysql -h 127.0.0.1 -P 3307 -u app -p app
//! ```
//!
//! TLS from clients is refused: the greeting the client sees does not offer it
//! (`ssl-mode=PREFERRED` stays in plain text, `REQUIRED` fails). TLS to the server:
//! `--upstream-tls verify-full [--upstream-ca FILE]` (an SSLRequest after the greeting, then the
//! login over verified TLS). With `--credentials FILE` a placeholder password logs in with the
//! held one. One JSON line per decision goes to stderr.

use clap::Parser;
use sluice_core::session::mysql::MySqlSession;
use sluice_examples::{TcpProxy, serve};

#[derive(Parser, Debug)]
#[command(name = "mysql-proxy", about = "A MySQL / MariaDB proxy enforcing a Sluice policy")]
struct Cli {
    #[command(flatten)]
    proxy: TcpProxy,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let tls = cli.proxy.tls.enabled();
    serve("mysql-proxy", "mysql", cli.proxy, move |guard, target| {
        let session = MySqlSession::new(guard, None, target);
        if tls { session.with_upstream_tls() } else { session }
    })
    .await
}
