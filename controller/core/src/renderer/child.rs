//! Running the renderer program: a request on its standard input, a bounded response from its
//! standard output, and the limits on wall time and resident memory it cannot lift itself.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// Why the program gave no response.
#[derive(Debug)]
pub(super) enum ChildError {
    /// It could not be started.
    Start(std::io::Error),
    /// It ran past the wall-clock limit and was killed.
    Timeout(Duration),
    /// Its resident memory passed the limit and it was killed.
    Memory(u64),
    /// Its standard output passed the limit.
    Output,
    /// It exited without a response; `stderr` is its last words, bounded.
    Exited { status: String, stderr: String },
    /// Reading from or writing to it failed.
    Io(std::io::Error),
}

/// The limits the caller enforces on the program.
pub(super) struct ChildLimits {
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub output_bytes: usize,
}

/// Bytes of standard error kept for a message.
const STDERR_BYTES: usize = 4096;

/// Runs `program` in `dir` with an empty environment, writes `input` to it and returns what it
/// wrote to standard output, whatever its exit status (the response says whether it failed).
pub(super) fn run(
    program: &Path,
    dir: &Path,
    input: &Zeroizing<Vec<u8>>,
    limits: &ChildLimits,
) -> Result<Vec<u8>, ChildError> {
    // No environment: no HOME, no PATH (so no `git`, no plugins), no proxies, no credentials.
    let mut child = Command::new(program)
        .current_dir(dir)
        .env_clear()
        .env("TMPDIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ChildError::Start)?;
    let mut stdin = child.stdin.take().ok_or_else(|| missing_pipe("stdin"))?;
    let mut stdout = child.stdout.take().ok_or_else(|| missing_pipe("stdout"))?;
    let mut stderr = child.stderr.take().ok_or_else(|| missing_pipe("stderr"))?;
    let output_limit = limits.output_bytes;
    let overflowed = Arc::new(AtomicBool::new(false));
    let reader_overflowed = Arc::clone(&overflowed);

    thread::scope(|scope| {
        let writer = scope.spawn(move || {
            // A program that exits early closes the pipe: its response says why.
            let _ = stdin.write_all(input);
        });
        let reader = scope.spawn(move || -> std::io::Result<Vec<u8>> {
            let mut out = Vec::new();
            let read = (&mut stdout)
                .take(output_limit as u64 + 1)
                .read_to_end(&mut out)?;
            if read > output_limit {
                reader_overflowed.store(true, Ordering::SeqCst);
            }
            Ok(out)
        });
        let errors = scope.spawn(move || {
            let mut err = Vec::new();
            let _ = (&mut stderr)
                .take(STDERR_BYTES as u64)
                .read_to_end(&mut err);
            // Drain the rest so the program never blocks on a full pipe.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            err
        });
        let waited = watch(&mut child, limits, &overflowed);
        let _ = writer.join();
        let out = reader.join();
        let err = errors.join().unwrap_or_default();
        let status = waited?;
        if overflowed.load(Ordering::SeqCst) {
            return Err(ChildError::Output);
        }
        let out = match out {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(ChildError::Io(e)),
            Err(_) => return Err(ChildError::Io(std::io::Error::other("reader panicked"))),
        };
        if out.is_empty() {
            return Err(ChildError::Exited {
                status: status.to_string(),
                stderr: String::from_utf8_lossy(&err).trim().to_owned(),
            });
        }
        Ok(out)
    })
}

fn missing_pipe(which: &str) -> ChildError {
    ChildError::Io(std::io::Error::other(format!("no {which} pipe")))
}

/// Waits for the program, killing it when a limit is passed.
fn watch(
    child: &mut Child,
    limits: &ChildLimits,
    overflowed: &AtomicBool,
) -> Result<std::process::ExitStatus, ChildError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait().map_err(ChildError::Io)? {
            return Ok(status);
        }
        let failure = if started.elapsed() > limits.timeout {
            Some(ChildError::Timeout(limits.timeout))
        } else if resident_bytes(child.id()).is_some_and(|rss| rss > limits.memory_bytes) {
            Some(ChildError::Memory(limits.memory_bytes))
        } else if overflowed.load(Ordering::SeqCst) {
            Some(ChildError::Output)
        } else {
            None
        };
        if let Some(failure) = failure {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failure);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// The process's resident memory, where the platform reports it.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
