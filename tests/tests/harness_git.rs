//! Self-tests of the Git harness: real `git` clients against `git daemon` and smart HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use sealsync_tests::git::{isolated_git_command, BareRepo, GitServer, DEFAULT_BRANCH};

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run git")
}

fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn clone(server: &GitServer, url: &str, dest: &Path) {
    ok(server
        .git_command()
        .arg("clone")
        .arg("--quiet")
        .arg(url)
        .arg(dest));
}

/// `git ls-remote URL` as (sha, ref) pairs.
fn ls_remote(server: &GitServer, url: &str) -> Vec<(String, String)> {
    ok(server.git_command().args(["ls-remote", url]))
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(sha, r)| (sha.to_owned(), r.to_owned()))
        .collect()
}

fn seeded(server: &GitServer, name: &str) -> (BareRepo, String) {
    let repo = server.create_repo(name).expect("create repo");
    let sha = repo
        .commit_files(
            &[
                ("apps/a.yaml", "kind: ConfigMap\n"),
                ("README.md", "hello\n"),
            ],
            "initial",
        )
        .expect("commit");
    (repo, sha)
}

#[test]
fn clone_and_ls_remote_over_git_daemon() {
    let server = GitServer::start().expect("start git server");
    let (repo, sha) = seeded(&server, "daemon-repo");
    assert_eq!(repo.head(DEFAULT_BRANCH).expect("head"), sha);

    let refs = ls_remote(&server, &repo.git_url());
    assert!(
        refs.contains(&(sha.clone(), "refs/heads/main".to_owned())),
        "{refs:?}"
    );

    let work = tempfile::tempdir().expect("tempdir");
    let dest = work.path().join("clone");
    clone(&server, &repo.git_url(), &dest);
    assert_eq!(
        std::fs::read_to_string(dest.join("apps/a.yaml")).expect("read"),
        "kind: ConfigMap\n"
    );

    // Pushing through the daemon works too (receive-pack is enabled).
    std::fs::write(dest.join("pushed.txt"), "via git://\n").expect("write");
    ok(server
        .git_command()
        .current_dir(&dest)
        .args(["add", "pushed.txt"]));
    ok(server.git_command().current_dir(&dest).args([
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "commit",
        "-qm",
        "push via daemon",
    ]));
    ok(server
        .git_command()
        .current_dir(&dest)
        .args(["push", "-q", "origin", "HEAD:main"]));
    let pushed = ok(server
        .git_command()
        .current_dir(&dest)
        .args(["rev-parse", "HEAD"]));
    assert_eq!(repo.head(DEFAULT_BRANCH).expect("head"), pushed.trim());
}

#[test]
fn clone_ls_remote_and_push_over_smart_http() {
    let server = GitServer::start().expect("start git server");
    let (repo, sha) = seeded(&server, "http-repo");

    // Both wire protocols through http-backend.
    for version in ["0", "2"] {
        let out = ok(server.git_command().args([
            "-c",
            &format!("protocol.version={version}"),
            "ls-remote",
            &repo.http_url(),
        ]));
        assert!(
            out.contains(&format!("{sha}\trefs/heads/main")),
            "v{version}: {out}"
        );
    }

    // Protocol v2 really is negotiated (the Git-Protocol header reaches http-backend).
    let traced = output(server.git_command().env("GIT_TRACE_PACKET", "1").args([
        "-c",
        "protocol.version=2",
        "ls-remote",
        &repo.http_url(),
    ]));
    assert!(traced.status.success());
    let trace = String::from_utf8_lossy(&traced.stderr);
    assert!(
        trace.contains("version 2"),
        "protocol v2 not negotiated: {trace}"
    );

    let work = tempfile::tempdir().expect("tempdir");
    let dest = work.path().join("clone");
    clone(&server, &repo.http_url(), &dest);
    assert_eq!(
        std::fs::read_to_string(dest.join("README.md")).expect("read"),
        "hello\n"
    );

    // A later commit is visible on fetch; a push through HTTP lands in the bare repo.
    let second = repo
        .commit_files(&[("apps/b.yaml", "kind: Secret\n")], "second")
        .expect("commit");
    ok(server
        .git_command()
        .current_dir(&dest)
        .args(["pull", "-q", "--ff-only"]));
    let local = ok(server
        .git_command()
        .current_dir(&dest)
        .args(["rev-parse", "HEAD"]));
    assert_eq!(local.trim(), second);
    assert!(dest.join("apps/b.yaml").exists());

    std::fs::write(dest.join("c.txt"), "via http\n").expect("write");
    // Larger than http.postBuffer (1 MiB) and incompressible: git streams it chunked.
    std::fs::write(dest.join("big.bin"), pseudo_random_bytes(3 * 1024 * 1024)).expect("write");
    ok(server
        .git_command()
        .current_dir(&dest)
        .args(["add", "c.txt", "big.bin"]));
    ok(server.git_command().current_dir(&dest).args([
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "commit",
        "-qm",
        "push via http",
    ]));
    ok(server
        .git_command()
        .current_dir(&dest)
        .args(["push", "-q", "origin", "HEAD:main"]));
    let pushed = ok(server
        .git_command()
        .current_dir(&dest)
        .args(["rev-parse", "HEAD"]));
    assert_eq!(repo.head(DEFAULT_BRANCH).expect("head"), pushed.trim());
}

#[test]
fn basic_auth_rejects_wrong_credentials_and_accepts_right_ones() {
    let server = GitServer::start_with_basic_auth("alice", "s3cr:et p@ss").expect("start");
    let (repo, sha) = seeded(&server, "private");

    // No credentials: prompts are disabled, so git fails instead of asking.
    let out = output(server.git_command().args(["ls-remote", &repo.http_url()]));
    assert!(!out.status.success());

    let wrong = output(server.git_command().args([
        "ls-remote",
        &repo.http_url_with_credentials("alice", "wrong"),
    ]));
    assert!(!wrong.status.success(), "wrong password was accepted");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("Authentication failed"), "{stderr}");

    let wrong_user = output(server.git_command().args([
        "ls-remote",
        &repo.http_url_with_credentials("mallory", "s3cr:et p@ss"),
    ]));
    assert!(!wrong_user.status.success(), "wrong user was accepted");

    let url = repo.http_url_with_credentials("alice", "s3cr:et p@ss");
    let refs = ls_remote(&server, &url);
    assert!(
        refs.contains(&(sha, "refs/heads/main".to_owned())),
        "{refs:?}"
    );
    let work = tempfile::tempdir().expect("tempdir");
    clone(&server, &url, &work.path().join("clone"));
    assert!(work.path().join("clone/apps/a.yaml").exists());

    // The 401 carries a Basic challenge.
    let raw = raw_http_get(
        server.http_addr(),
        "/private.git/info/refs?service=git-upload-pack",
    );
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains("www-authenticate: basic realm="),
        "{raw}"
    );
}

#[test]
fn branch_tag_delete_helpers() {
    let server = GitServer::start().expect("start git server");
    let (repo, first) = seeded(&server, "helpers");

    repo.create_branch("release", &first).expect("branch");
    repo.create_tag("v1", &first).expect("tag");
    let tag_obj = repo
        .create_annotated_tag("v1-annotated", "main", "release 1")
        .expect("atag");
    assert_ne!(tag_obj, first, "annotated tags are their own objects");

    let second = repo
        .delete_files(&["apps/a.yaml"], "remove a")
        .expect("delete");
    assert_ne!(second, first);
    assert_eq!(repo.head("main").expect("head"), second);
    assert_eq!(repo.head("release").expect("head"), first);
    assert_eq!(repo.rev_parse("v1").expect("tag"), first);
    assert_eq!(repo.rev_parse("v1-annotated").expect("tag"), first);

    // Commits on another branch do not move main.
    let on_release = repo
        .commit_files_on("release", &[("hotfix.txt", "x")], "hotfix")
        .expect("commit on release");
    assert_eq!(repo.head("release").expect("head"), on_release);
    assert_eq!(repo.head("main").expect("head"), second);

    // An orphan branch starts empty.
    let orphan = repo
        .commit_files_on("orphan", &[("only.txt", "1")], "orphan")
        .expect("orphan");
    let tree = ok(server
        .git_command()
        .arg("--git-dir")
        .arg(repo.path())
        .args(["ls-tree", "-r", "--name-only", &orphan]));
    assert_eq!(tree.trim(), "only.txt");

    let refs = ls_remote(&server, &repo.http_url());
    let names: Vec<&str> = refs.iter().map(|(_, r)| r.as_str()).collect();
    for expected in [
        "refs/heads/main",
        "refs/heads/release",
        "refs/tags/v1",
        "refs/tags/v1-annotated",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    // The file is gone on main in a fresh clone.
    let work = tempfile::tempdir().expect("tempdir");
    let dest = work.path().join("clone");
    clone(&server, &repo.git_url(), &dest);
    assert!(!dest.join("apps/a.yaml").exists());
    assert!(dest.join("README.md").exists());

    // Force-moving a branch (history rewrite) and deleting it.
    repo.set_branch("main", &first).expect("reset main");
    assert_eq!(repo.head("main").expect("head"), first);
    repo.delete_branch("release").expect("delete branch");
    assert!(!repo.has_branch("release").expect("has_branch"));

    // Bad paths are refused.
    assert!(repo.commit_files(&[("../escape", "x")], "bad").is_err());
    assert!(repo.file_url().starts_with("file:///"));
    let file_refs = ls_remote(&server, &repo.file_url());
    assert!(!file_refs.is_empty());
}

/// Our servers are gone when the repository can no longer be listed through either URL and
/// the daemon process has exited. (A bare "port refuses connections" check would be racy: a
/// parallel test may already have been given the freed port.)
fn assert_gone(git_url: &str, http_url: &str, daemon_pid: u32) {
    let home = tempfile::tempdir().expect("tempdir");
    for url in [git_url, http_url] {
        let out = isolated_git_command(home.path())
            .args(["ls-remote", url])
            .output()
            .expect("run git");
        assert!(!out.status.success(), "{url} still served after drop");
    }
    let cmdline = std::fs::read(format!("/proc/{daemon_pid}/cmdline")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("daemon"),
        "git daemon (pid {daemon_pid}) still running"
    );
}

#[test]
fn servers_are_gone_after_drop() {
    let server = GitServer::start().expect("start git server");
    let (repo, _) = seeded(&server, "gone");
    let (git_url, http_url) = (repo.git_url(), repo.http_url());
    let pid = server.daemon_pid();
    let root = server.root().to_owned();
    ls_remote(&server, &git_url);
    ls_remote(&server, &http_url);
    assert!(TcpStream::connect_timeout(&server.daemon_addr(), Duration::from_secs(1)).is_ok());

    drop(repo);
    drop(server);
    assert_gone(&git_url, &http_url, pid);
    assert!(
        !root.exists(),
        "repository root {} not removed",
        root.display()
    );
}

#[test]
fn servers_are_stopped_when_a_test_panics() {
    let recorded = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let server = GitServer::start().expect("start git server");
        let (repo, _) = seeded(&server, "panicking");
        *recorded.lock().expect("lock") =
            Some((repo.git_url(), repo.http_url(), server.daemon_pid()));
        panic!("simulated test failure");
    });
    assert!(result.is_err());
    let (git_url, http_url, pid) = recorded
        .lock()
        .expect("lock")
        .take()
        .expect("urls recorded");
    assert_gone(&git_url, &http_url, pid);
}

/// Incompressible test data without pulling in a RNG (xorshift64).
fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// A bounded raw HTTP/1.1 GET, to look at status line and headers.
fn raw_http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut buf = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut buf).expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}
