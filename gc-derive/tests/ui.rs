//! Compile tests for `#[derive(Trace)]` (trybuild).
//!
//! `ui/fail/*.rs` must be rejected with exactly the diagnostics in the `.stderr` next to
//! each file: every rejected input has a message that says what to write instead. The
//! `.stderr` files depend on the rustc version; regenerate them with
//! `TRYBUILD=overwrite cargo test -p gc-derive --test ui` and read the diff.
//!
//! `ui/pass/*.rs` must compile and run.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
