//! What the benches share (each one includes it with `mod common;`).

/// Run `python3` with `args`: its standard output if it ran and succeeded;
/// `None` (with its stderr printed) if python3 is missing or failed, so that
/// a bench without CPython still reports its own figures.
pub(crate) fn python3(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("python3")
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
