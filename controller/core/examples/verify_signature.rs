//! Times signature verification as the controller does it, for `bench/verify_cost.py`:
//! the trusted keys parsed once (the controller keeps them per version of the Secret), then
//! a raw commit or tag object split and verified many times.
//!
//! Usage: verify_signature KEYS_DIR RAW_OBJECT commit|tag ITERATIONS
//! Prints one JSON line: `{"parse_us": …, "verify_us_p50": …, "verify_us_p99": …, "fingerprint": "…"}`.

use std::time::{Instant, SystemTime};

use sealsync_core::gitsig;
use sealsync_core::sigverify::{self, TrustedKeys};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, keys_dir, object, kind, iterations] = args.as_slice() else {
        return Err("usage: verify_signature KEYS_DIR RAW_OBJECT commit|tag ITERATIONS".into());
    };
    let iterations: usize = iterations.parse()?;
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(keys_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        entries.push((name, std::fs::read(entry.path())?));
    }
    let raw = std::fs::read(object)?;
    let split = match kind.as_str() {
        "commit" => gitsig::split_commit,
        "tag" => gitsig::split_tag,
        other => return Err(format!("{other}: commit or tag").into()),
    };

    let started = Instant::now();
    let keys = TrustedKeys::from_entries(entries.iter().map(|(n, c)| (n.as_str(), c.as_slice())))?;
    let parse_us = started.elapsed().as_secs_f64() * 1e6;

    let mut samples = Vec::with_capacity(iterations);
    let mut fingerprint = String::new();
    for _ in 0..iterations {
        let started = Instant::now();
        let signed = split(&raw);
        let signer = sigverify::verify(signed.as_ref(), &keys, SystemTime::now())?;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        fingerprint = signer.fingerprint;
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{{\"parse_us\": {parse_us:.1}, \"verify_us_p50\": {:.1}, \"verify_us_p99\": {:.1}, \"fingerprint\": \"{fingerprint}\"}}",
        at(0.5),
        at(0.99)
    );
    Ok(())
}
