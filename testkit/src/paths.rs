//! Where things are: the workspace, the tool cache, a tool.

use std::path::{Path, PathBuf};

/// The workspace's root directory (this crate sits directly inside it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ sits in the workspace")
        .to_path_buf()
}

/// Where `scripts/install-tools` puts the emulators and cargo-lambda: `$PWRESET_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/pwreset`, else `~/.cache/pwreset` (outside the clone, so a fresh
/// clone on the same machine reuses them).
pub fn tool_cache_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("PWRESET_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("pwreset")))
        .or_else(|| var("HOME").map(|home| home.join(".cache/pwreset")))
        .unwrap_or_else(|| workspace_root().join(".cache"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// `$env`, else `cached` inside the tool cache, else `name` on `PATH`; panics with the fix
/// otherwise.
pub fn find_tool(env: &str, cached: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let cached = tool_cache_dir().join(cached);
    if cached.is_file() {
        return cached;
    }
    on_path(name).unwrap_or_else(|| {
        panic!(
            "{name} not found (set {env}, or run scripts/install-tools to install it into the tool cache)"
        )
    })
}
