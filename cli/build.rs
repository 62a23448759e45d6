// Built, llama.cpp's libraries sit beside the binary (`$ORIGIN`, set by llama-cpp-sys-2);
// installed from a package (scripts/package.sh), in `/usr/lib/altiplano`.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN/../lib/altiplano");
    }
}
