//! The embedded test server measured against the real kube-apiserver: every case of
//! `fidelity/cases.rs` runs with the real kubectl against both, and each step's exit code and
//! output (with names of the run, uids, resourceVersions, times and ports normalised) must
//! match. The real server's answer is the expected one.
//!
//! The report (every case that differs, with both answers) is printed and written to
//! `kubectl-differential.md` in Cargo's test temporary directory. The test fails when the
//! agreement drops below [`AGREEMENT_FLOOR`], the measured level this suite holds the embedded
//! server to; raise it as differences are closed.

#[path = "fidelity/cases.rs"]
mod cases;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use regex::Regex;
use sealsync_tests::apiserver::TestCluster;

/// The share of cases (in percent) on which the embedded server must answer like the real one.
const AGREEMENT_FLOOR: f64 = 95.0;

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

/// One step's answer.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(cluster: &TestCluster, dir: &Path, name: &str) -> Self {
        Kubectl {
            kubeconfig: cluster.kubeconfig_path().to_path_buf(),
            cache: dir.join(format!("cache-{name}")),
        }
    }

    fn run(&self, args: &[String], stdin: Option<&str>) -> Answer {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .arg("--request-timeout=30s")
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(pipe);
        let out = child.wait_with_output().expect("kubectl");
        Answer {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Splits a command line on spaces, keeping single-quoted parts together.
fn split_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            other => {
                current.push(other);
                started = true;
            }
        }
    }
    if started {
        args.push(current);
    }
    args
}

/// What differs between runs of the same step on any server, replaced by placeholders.
struct Normalizer {
    rules: Vec<(Regex, &'static str)>,
}

impl Normalizer {
    fn new() -> Self {
        let rule = |pattern: &str, with: &'static str| (Regex::new(pattern).expect("regex"), with);
        Normalizer {
            rules: vec![
                (rule(r"(https?)://127\.0\.0\.1:\d+", "$1://SERVER")),
                (rule(r"/tmp/[^\s]+", "PATH")),
                (rule(
                    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                    "UID",
                )),
                (rule(r#"("?resourceVersion"?\s*[:=]\s*"?)\d+"#, "${1}RV")),
                (rule(r#"("continue"\s*:\s*")[^"]*"#, "${1}TOKEN")),
                (rule(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "TIME")),
                // `kubectl diff` headers: the local time of the temporary files.
                (rule(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4}", "TIME")),
                (rule(r"\b\d+(ms|s|m|h|d)(\d+(s|m|h))?\b", "AGE")),
                (rule(r"<invalid>|<unknown>", "AGE")),
                (rule(r"\b10\.0\.0\.\d+\b", "CLUSTERIP")),
                (rule(r"gen-[a-z0-9]{5}\b", "gen-XXXXX")),
                (rule(r"I\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\n]*\n", "")),
                (rule(r"[^\n]*client-side throttling[^\n]*\n", "")),
                // Table columns are padded to the widest cell, and a placeholder above may
                // stand for cells of different widths (ages, addresses).
                (rule(r" {2,}", "  ")),
            ],
        }
    }

    fn apply(&self, text: &str) -> String {
        // The order of keys in a JSON document means nothing: compare JSON canonically.
        let canonical = serde_json::from_str::<serde_json::Value>(text.trim())
            .ok()
            .filter(|v| v.is_object() || v.is_array())
            .and_then(|v| serde_json::to_string(&v).ok());
        let mut out = canonical.unwrap_or_else(|| text.to_owned());
        for (re, with) in &self.rules {
            out = re.replace_all(&out, *with).into_owned();
        }
        out.lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_owned()
    }

    fn answer(&self, a: &Answer) -> Answer {
        Answer {
            code: a.code,
            stdout: self.apply(&a.stdout),
            stderr: self.apply(&a.stderr),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Replaces each `{uid:KIND/NAME}` with the uid of that object in namespace `ns`.
fn with_uids(kubectl: &Kubectl, ns: &str, mut text: String) -> String {
    while let Some(start) = text.find("{uid:") {
        let Some(len) = text[start..].find('}') else {
            break;
        };
        let end = start + len;
        let target = text[start + 5..end].to_string();
        let args: Vec<String> = ["get", &target, "-n", ns, "-o", "jsonpath={.metadata.uid}"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        let uid = kubectl.run(&args, None).stdout.trim().to_string();
        text.replace_range(start..=end, &uid);
    }
    text
}

#[test]
fn the_embedded_server_answers_kubectl_like_kube_apiserver() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (real, embedded) = runtime.block_on(async {
        let real = TestCluster::start_kube_apiserver().await;
        let embedded = TestCluster::start_embedded().await;
        (real, embedded)
    });
    let real = real.unwrap_or_else(|e| panic!("{e}"));
    let embedded = embedded.expect("the embedded server");
    let dir = tempfile::tempdir().expect("tmp");
    let kubectl_real = Kubectl::new(&real, dir.path(), "real");
    let kubectl_embedded = Kubectl::new(&embedded, dir.path(), "embedded");
    let normalizer = Normalizer::new();

    let cases = cases::all();
    let mut agreed = 0usize;
    let mut report = String::new();
    for (i, case) in cases.iter().enumerate() {
        let ns = format!("fc{i}");
        let substitute = |text: &str| text.replace("{ns}", &ns).replace("{n}", &i.to_string());
        let namespace = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n");
        for kubectl in [&kubectl_real, &kubectl_embedded] {
            let setup = kubectl.run(&split_args("apply -f -"), Some(&namespace));
            assert_eq!(setup.code, 0, "namespace {ns}: {setup:?}");
        }
        let mut difference = None;
        for (s, step) in case.steps.iter().enumerate() {
            let args = split_args(&substitute(step.args));
            let stdin = step.stdin.map(substitute);
            // `{uid:KIND/NAME}` in a manifest is the uid that object has on each server, so
            // that a case can write owner references.
            let stdin_real = stdin.clone().map(|t| with_uids(&kubectl_real, &ns, t));
            let stdin_embedded = stdin.map(|t| with_uids(&kubectl_embedded, &ns, t));
            let run = |kubectl: &Kubectl, stdin: Option<&str>| {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                loop {
                    let answer = kubectl.run(&args, stdin);
                    if !step.eventually || answer.code == 0 || std::time::Instant::now() > deadline
                    {
                        return answer;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
            };
            let (from_real, from_embedded) = std::thread::scope(|scope| {
                let real = scope.spawn(|| run(&kubectl_real, stdin_real.as_deref()));
                let embedded = run(&kubectl_embedded, stdin_embedded.as_deref());
                (real.join().expect("kubectl thread"), embedded)
            });
            let (mut want, mut got) = (
                normalizer.answer(&from_real),
                normalizer.answer(&from_embedded),
            );
            if step.exit_code_only {
                for answer in [&mut want, &mut got] {
                    answer.stdout.clear();
                    answer.stderr.clear();
                }
            }
            if want != got && difference.is_none() {
                difference = Some((s, step.args, want, got));
            }
        }
        match difference {
            None => agreed += 1,
            Some((s, args, want, got)) => {
                report.push_str(&format!(
                    "### {}\n\nstep {} `kubectl {}`\n\n- kube-apiserver: exit {}\n  stdout: {:?}\n  stderr: {:?}\n- embedded: exit {}\n  stdout: {:?}\n  stderr: {:?}\n\n",
                    case.name,
                    s + 1,
                    args,
                    want.code,
                    truncate(&want.stdout, 400),
                    truncate(&want.stderr, 400),
                    got.code,
                    truncate(&got.stdout, 400),
                    truncate(&got.stderr, 400),
                ));
            }
        }
    }
    let percent = 100.0 * agreed as f64 / cases.len() as f64;
    let summary = format!(
        "# kubectl against the embedded server and kube-apiserver\n\n{agreed} of {} cases agree ({percent:.1}%).\n\n",
        cases.len()
    );
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubectl-differential.md");
    std::fs::write(&path, format!("{summary}{report}")).expect("write the report");
    eprintln!("{summary}{report}report: {}", path.display());
    assert!(
        percent >= AGREEMENT_FLOOR,
        "agreement {percent:.1}% is below the floor of {AGREEMENT_FLOOR}% (report: {})",
        path.display()
    );
}

#[test]
fn arguments_split_like_a_shell_with_single_quotes() {
    assert_eq!(
        split_args("get cm -l 'tier in (a,b)' -o name"),
        ["get", "cm", "-l", "tier in (a,b)", "-o", "name"]
    );
    assert_eq!(split_args("label cm x a=''"), ["label", "cm", "x", "a="]);
}
