//! The `chorusctl` binary: argv in, exit code out; everything else is in
//! the library (`lib.rs`), which tests drive in-process.

fn main() {
    std::process::exit(chorus_ctl::run(std::env::args_os()));
}
