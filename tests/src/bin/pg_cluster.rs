//! A throwaway PostgreSQL cluster ([`cryptoutil_tests::pg::Cluster`]: TLS 1.3, scram) for the
//! scripts that need one (`scripts/bench-replicas`): starts it, writes the `CRYPTOUTIL_*`
//! variables that put every store in it to `--env-file` (one `export NAME=value` per line),
//! and keeps it until the file `--while` is deleted; then stops it and removes its data.
//!
//! `pg_cluster --env-file PATH --while PATH`

use std::time::Duration;

use cryptoutil_tests::bench::{Args, Fallible};
use cryptoutil_tests::pg::Cluster;

fn main() -> Fallible<()> {
    let args = Args::parse()?;
    let (env_file, keep) = (args.get("env-file")?, args.get("while")?);
    let cluster = Cluster::start();
    let mut out = String::new();
    for (name, value) in cluster.vars() {
        out.push_str(&format!("export {name}='{value}'\n"));
    }
    std::fs::write(env_file, out)?;
    while std::path::Path::new(keep).exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(cluster);
    Ok(())
}
