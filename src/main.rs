//! The native command line (`src/cli/`).

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

// The browser uses the library through src/web.rs; the binary has nothing to do there.
#[cfg(target_arch = "wasm32")]
fn main() {}
