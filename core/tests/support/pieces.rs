//! Text pieces the streaming and redaction property tests build inputs from: secrets,
//! near-secrets, tables and their parts (psql, mysql, CSV), a multi-line key, prose, newlines,
//! multi-byte characters; and the detector they are read with.

use proptest::prelude::*;
use sluice_core::Detector;

/// The built-in rules and one known value (one of the pieces).
pub fn det() -> &'static Detector {
    static DET: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
    DET.get_or_init(|| {
        Detector::builder()
            .known_value("db-password", "Synth3tic-Known-Value!")
            .build()
            .expect("compiles")
    })
}

/// One piece; inputs are a few of them concatenated (table parts then meet in any order).
pub fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ghp_Zq7Lm2Xw9Rt4Kp8Vn3Bc6Hd1Fg5Js02kBGo6".to_string()),
        Just("token = \"glpat-Xa3kLm9Qr7Tz2Wv5Yb8N\"\n".to_string()),
        Just("postgres://app:r7Kq2Vx9Lm4Tz8@db:5432/x".to_string()),
        Just("password: Lx7qB2mT9vK4\n".to_string()),
        Just("Synth3tic-Known-Value!".to_string()),
        Just("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAz3Vt7Qm2Xw9Rt4Kp8Vn3Bc6Hd1Fg5Js0Lq7Ny2Ub4Ie6Oa8\nPz1Sx3Cv5Bn7Mk9Lj2Hg4Fd6Sa8Qw0Er2Ty4Ui6Op8As0Df2Gh4Jk6Lz8Xc0Vb2\n-----END RSA PRIVATE KEY-----\n".to_string()),
        Just("Authorization: Bearer Tq8mZ3xK7vB2nL9pR4wY6cH1".to_string()),
        Just("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.Xk9fQ2mZ7pL3vR8tW1yB6nC4dH0jS5gA2eK7uM9oP1q".to_string()),
        // psql: header, rule line, rows (credential cells no rule knows), footer.
        Just(" id | name  | password\n".to_string()),
        Just("----+-------+-------------\n".to_string()),
        Just("  1 | alice | Zq8rT2mVw9Lp\n".to_string()),
        Just("  2 | bob   | Kd7nX3bYc6Hs\n".to_string()),
        Just("(2 rows)\n".to_string()),
        // mysql, boxed.
        Just("+----+----------------+\n| id | api_key        |\n+----+----------------+\n".to_string()),
        Just("|  1 | q8Fz0LmWv3XrT1 |\n".to_string()),
        // CSV: a table when it is the first line.
        Just("user,token,note\n".to_string()),
        Just("ann,tk-9fQ2xLw0PzR7,first\n".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("é".to_string()),
        "[a-zA-Z0-9_=:\"' .|,+-]{0,40}",
    ]
}
