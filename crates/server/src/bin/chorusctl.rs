//! `chorusctl`: see `chorus-ctl`.

fn main() {
    std::process::exit(chorus_ctl::run(std::env::args_os()));
}
