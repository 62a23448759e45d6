//! Puts llama.cpp's shared libraries beside the binaries this build makes.
//!
//! llama.cpp is built as shared libraries (its CPU kernels are one library per instruction set,
//! the best picked at run time). `llama-cpp-sys-2` links the unversioned names into the target
//! folder, but the binaries ask for the versioned ones (`libggml-base.so.0`), and the kernel
//! libraries stay in its build folder. This links every one of them, under every name, into the
//! profile folder and its `deps/` and `examples/` (where the CLI, the app, the tests and the
//! benchmarks run from), which `-Wl,-rpath,$ORIGIN` (`.cargo/config.toml`) makes the loader
//! search, so a binary runs the same inside and outside cargo.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Set by llama-cpp-sys-2 (links = "llama") for the crates that depend on it directly.
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_BACKENDS_DIR");
    let Some(backends) = std::env::var_os("DEP_LLAMA_BACKENDS_DIR").map(PathBuf::from) else { return };
    let Some(built) = backends.parent() else { return };
    let Some(profile) =
        std::env::var_os("OUT_DIR").map(PathBuf::from).and_then(|o| o.ancestors().nth(3).map(Path::to_path_buf))
    else {
        return;
    };
    let sources: Vec<PathBuf> = [built.join("lib"), built.join("lib64"), built.join("bin"), backends.clone()]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| is_library(path))
        .collect();
    for dir in [built.join("lib"), backends] {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    for target in [profile.clone(), profile.join("deps"), profile.join("examples")] {
        if std::fs::create_dir_all(&target).is_err() {
            continue;
        }
        for source in &sources {
            let Some(name) = source.file_name() else { continue };
            place(source, &target.join(name));
        }
    }
}

fn is_library(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (name.contains(".so") || name.ends_with(".dylib") || name.ends_with(".dll")) && path.is_file()
}

/// Links `source` at `target` (a copy where links cannot be made), replacing an older one.
fn place(source: &Path, target: &Path) {
    let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.len() == b.len() && a.modified().ok() == b.modified().ok(),
        _ => false,
    };
    if same(source, target) {
        return;
    }
    let _ = std::fs::remove_file(target);
    if std::fs::hard_link(source, target).is_err() {
        if let Err(e) = std::fs::copy(source, target) {
            println!("cargo:warning=could not place {} beside the binaries: {e}", source.display());
        }
    }
}
