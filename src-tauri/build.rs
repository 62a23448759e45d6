// Declaring the app's commands makes Tauri generate one permission per command
// (`allow-<name>`); capabilities/default.json grants the window exactly the ones the UI calls.
// The commands are read from the one list of them, `wire()` in src/lib.rs (which also generates
// the UI's TypeScript), so no second list exists to drift.
fn commands() -> Vec<String> {
    let lib = std::fs::read_to_string("src/lib.rs").expect("src/lib.rs");
    let list = lib
        .split_once("collect_commands![")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("src/lib.rs lists the commands in collect_commands![...]");
    list.split(',')
        .map(|path| path.trim().rsplit("::").next().unwrap_or_default().to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=src/lib.rs");
    // Built, llama.cpp's libraries sit beside the binary (`$ORIGIN`, set by llama-cpp-sys-2);
    // installed from a package (scripts/package.sh), in `/usr/lib/altiplano`.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN/../lib/altiplano");
    }
    // Tauri wants the names for the whole build; a build script's memory is that long.
    let names: &'static [&'static str] = commands().into_iter().map(|name| &*name.leak()).collect::<Vec<_>>().leak();
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(names)),
    )
    .expect("tauri build script");
}
