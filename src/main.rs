//! The `quench` command. Everything it does lives in the host library (`quench::cli`).

fn main() -> std::process::ExitCode {
    quench::cli::main()
}
