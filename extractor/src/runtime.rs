//! Finding and loading the ONNX Runtime shared library (`ort` with `load-dynamic`).
//!
//! The library is looked for, in this order:
//! 1. the path given explicitly (`--ort-lib`; a file, or a folder holding `libonnxruntime.so`);
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. a `.ort/` folder (made by `scripts/setup-ort.sh`) in the current directory or any of its
//!    ancestors, beside the running executable or any of its ancestors, and in the workspace this
//!    crate was built from.
//!
//! A path given in 1 or 2 that does not exist is an error naming it (no silent fallback). The
//! library is loaded with `ort::init_from`, which fails cleanly on a missing, foreign or too old
//! file (`ort::init()` would panic). ONNX Runtime is process-global: once loaded it stays, and a
//! request for a different file in the same process is an error.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

use crate::error::{Error, Result};

/// The ONNX Runtime version `scripts/setup-ort.sh` installs and `ort` 2.0.0-rc.15 is built for.
pub const ORT_VERSION: &str = "1.31.1";

/// Folder (relative to the repository root) where `scripts/setup-ort.sh` puts the library.
pub const ORT_DIR: &str = ".ort";

/// A loaded ONNX Runtime: the library file and its environment.
#[derive(Debug)]
pub struct Runtime {
    library: PathBuf,
    env: Environment,
}

impl Runtime {
    /// The library file it was loaded from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    pub(crate) fn env(&self) -> &Environment {
        &self.env
    }
}

static LOADED: Mutex<Option<&'static Runtime>> = Mutex::new(None);

/// File names the library may have inside a folder, preferred first.
pub fn library_names() -> Vec<String> {
    let plain = format!(
        "{}onnxruntime{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let versioned = if cfg!(target_os = "linux") {
        format!("{plain}.{ORT_VERSION}")
    } else {
        format!(
            "{}onnxruntime.{ORT_VERSION}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    };
    vec![plain, versioned]
}

fn in_folder(dir: &Path) -> Option<PathBuf> {
    library_names()
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// The `.ort/` folders searched by default, in order, without duplicates.
pub fn default_search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut push_ancestors = |start: Option<PathBuf>| {
        if let Some(start) = start {
            for a in start.ancestors() {
                let d = a.join(ORT_DIR);
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
    };
    push_ancestors(std::env::current_dir().ok());
    push_ancestors(
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf)),
    );
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(ORT_DIR);
    if !dirs.contains(&workspace) {
        dirs.push(workspace);
    }
    dirs
}

/// Where the library would be loaded from (see the module docs), without loading it.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    let given = |path: &Path, how: &str| -> Result<PathBuf> {
        if path.is_dir() {
            return in_folder(path).ok_or_else(|| Error::RuntimeLoad {
                path: path.to_path_buf(),
                reason: format!(
                    "no {} in this folder (given {how})",
                    library_names().join(" or ")
                ),
            });
        }
        if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(Error::RuntimeLoad {
                path: path.to_path_buf(),
                reason: format!("file not found (given {how})"),
            })
        }
    };
    if let Some(p) = explicit {
        return given(p, "with --ort-lib");
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return given(Path::new(&p), "in ORT_DYLIB_PATH");
    }
    let dirs = default_search_dirs();
    dirs.iter()
        .find_map(|d| in_folder(d))
        .ok_or(Error::RuntimeNotFound { tried: dirs })
}

/// Loads ONNX Runtime (once per process) and returns it. See the module docs for where it is
/// looked for; `explicit` is the `--ort-lib` option.
pub fn load(explicit: Option<&Path>) -> Result<&'static Runtime> {
    let path = locate(explicit)?;
    let canonical = path.canonicalize().map_err(|e| Error::io(&path, e))?;
    let mut loaded = LOADED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(rt) = *loaded {
        let same = rt.library.canonicalize().is_ok_and(|l| l == canonical);
        return if same {
            Ok(rt)
        } else {
            Err(Error::RuntimeMismatch {
                requested: path,
                loaded: rt.library.clone(),
            })
        };
    }
    let load_err = |reason: String| Error::RuntimeLoad {
        path: path.clone(),
        reason,
    };
    let builder = ort::init_from(&canonical).map_err(|e| load_err(e.to_string()))?;
    let env = builder
        .with_name("blindtuner")
        .build()
        .map_err(|e| load_err(e.to_string()))?;
    let rt: &'static Runtime = Box::leak(Box::new(Runtime { library: path, env }));
    *loaded = Some(rt);
    Ok(rt)
}

/// The runtime if one is loaded in this process.
pub fn loaded() -> Option<&'static Runtime> {
    *LOADED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
