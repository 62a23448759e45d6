//! `altiplano-reader`: the isolated document reader and nothing else.
//!
//! The app and the CLI start themselves as the reader child (`documents::extract_isolated`
//! with `std::env::current_exe()`); a program embedding `altiplano-core` without a binary of
//! its own, and the core's own tests, start this one.

use std::process::ExitCode;

fn main() -> ExitCode {
    altiplano_core::documents::run_child_if_requested().unwrap_or_else(|| {
        eprintln!("altiplano-reader: this program is started by altiplano-core to read one document");
        ExitCode::FAILURE
    })
}
