//! The security oracle (see `support/oracle.rs`) over generated conversations for every
//! protocol session: planted secrets never reach the client, nothing undecided reaches the
//! server, refused commands never do. The number of cases is bounded for CI
//! (`PROPTEST_CASES` raises it); the fuzz target `oracle` drives the same conversations.

#[path = "support/oracle.rs"]
mod oracle;

use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

macro_rules! oracle_test {
    ($name:ident, $protocol:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]
            #[test]
            fn $name(script in proptest::collection::vec(any::<u8>(), 0..400)) {
                if let Err(v) = oracle::run_protocol($protocol, &script) {
                    prop_assert!(false, "{}", v);
                }
            }
        }
    };
}

oracle_test!(postgres_oracle, 0);
oracle_test!(mysql_oracle, 1);
oracle_test!(mcp_oracle, 2);
oracle_test!(http_oracle, 3);
oracle_test!(ssh_oracle, 4);

/// Scripts that once broke an oracle (from proptest and the fuzzer), kept as regressions.
#[test]
fn oracle_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/oracle");
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let mut n = 0;
    for e in entries.flatten() {
        let data = std::fs::read(e.path()).expect("read a regression script");
        if let Err(v) = oracle::run(&data) {
            panic!("{}: {v}", e.path().display());
        }
        n += 1;
    }
    assert!(n > 0 || !dir.exists(), "an empty regression directory");
}

/// A fixed long script per protocol, so that every branch of each conversation runs in CI even
/// when the generated cases are few.
#[test]
fn oracle_long_scripts() {
    for protocol in 0..5 {
        for seed in 0..64u32 {
            let script: Vec<u8> = (0..600u32)
                .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 13) as u8)
                .collect();
            if let Err(v) = oracle::run_protocol(protocol, &script) {
                panic!("protocol {protocol}, seed {seed}: {v}");
            }
        }
    }
}
