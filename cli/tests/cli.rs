//! Snapshot tests of the CLI's output, including every user-facing error.
//!
//! Cases live in `tests/cmd/`: `*.md` files run read-only against `fixtures/` (each
//! `NAME.in` links there); `*.toml` cases that write files run in a sandbox copy.
//! Regenerate with `TRYCMD=overwrite cargo test -p sealsync --test cli`, then review.

#[test]
fn cli_snapshots() {
    trycmd::TestCases::new()
        .case("tests/cmd/*.md")
        .case("tests/cmd/*.toml");
}
