//! The other side's own code for password hashes: `testkit/interop/hashes.py` (Django's
//! `check_password`/`make_password`, argon2-cffi, bcrypt), run with the tool cache's Python,
//! where `scripts/install-tools` installs them.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::paths::{find_tool, workspace_root};

/// Runs `hashes.py` once with `request` on stdin (`{"make": [password…], "check":
/// [[password, encoded]…]}`) and returns its answer (`{"made": […], "checked": […]}`, see
/// the script). Panics with the fix when Python or its packages are missing.
pub fn hashes_py(request: &Value) -> Value {
    let python = find_tool("PWRESET_PYTHON", "venv/bin/python", "python3");
    let script = workspace_root().join("testkit/interop/hashes.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write request");
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{} {} failed (Django, argon2-cffi and bcrypt come from scripts/install-tools): {}",
        python.display(),
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from hashes.py")
}

/// Django's `check_password(password, encoded)`.
pub fn django_check_password(password: &str, encoded: &str) -> bool {
    let answer = hashes_py(&serde_json::json!({ "check": [[password, encoded]] }));
    answer["checked"][0]["django"]
        .as_bool()
        .expect("a boolean from check_password")
}
