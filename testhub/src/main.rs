//! `altiplano-testhub`: serves a folder of repositories as a fake Hugging Face Hub until killed.
//!
//! ```text
//! altiplano-testhub --root DIR [--port N] [--throttle BYTES_PER_SEC]
//! ```
//!
//! Once listening it prints one line, `listening on http://127.0.0.1:PORT`, so a script can wait
//! for it and read the port.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use altiplano_testhub::HubServer;

const USAGE: &str = "usage: altiplano-testhub --root DIR [--port N] [--throttle BYTES_PER_SEC]";

/// The command line.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    root: PathBuf,
    port: u16,
    throttle: Option<u64>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Serve(Args),
    Help,
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Serve(args)) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => fail(&message),
        },
        Err(message) => fail(&format!("{message}\n{USAGE}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("altiplano-testhub: {message}");
    ExitCode::FAILURE
}

/// Parses the arguments after the program name.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut root = None;
    let mut port = 0;
    let mut throttle = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--root" => root = Some(PathBuf::from(value()?)),
            "--port" => port = parse_number(&flag, &value()?)?,
            "--throttle" => throttle = Some(parse_number(&flag, &value()?)?),
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let root = root.ok_or("--root DIR is required")?;
    Ok(Command::Serve(Args { root, port, throttle }))
}

fn parse_number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{flag} expects a whole number, not {value:?}"))
}

/// Serves until the process is interrupted or killed.
fn run(args: Args) -> Result<(), String> {
    if !args.root.is_dir() {
        return Err(format!("--root {} is not a folder; create it or pass another", args.root.display()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    runtime.block_on(async {
        let server = HubServer::start_on(args.root, args.port)
            .await
            .map_err(|error| format!("cannot listen on 127.0.0.1:{}: {error}", args.port))?;
        server.throttle(args.throttle);
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", server.url())
            .and_then(|()| stdout.flush())
            .map_err(|error| format!("cannot write to stdout: {error}"))?;
        drop(stdout);
        tokio::signal::ctrl_c().await.map_err(|error| format!("cannot wait for Ctrl-C: {error}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn parses_flags() {
        let expected = Args { root: PathBuf::from("/r"), port: 8080, throttle: Some(1000) };
        assert_eq!(parse(&["--root", "/r", "--port", "8080", "--throttle", "1000"]), Ok(Command::Serve(expected)));
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert!(parse(&[]).is_err());
        assert!(parse(&["--root"]).is_err());
        assert!(parse(&["--root", "/r", "--port", "x"]).is_err());
        assert!(parse(&["--root", "/r", "--bogus"]).is_err());
    }
}
