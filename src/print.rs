//! Printing that a closed stdout or stderr cannot turn into a panic (`pggan info | head -1`, a
//! `tee` that died): `out!`, `outln!` and `errln!`, used instead of `print!`, `println!` and
//! `eprintln!` everywhere. In the browser, where stdout and stderr go nowhere, they do nothing.

/// Writes formatted text to stdout, ignoring a closed or broken stdout (`pggan info | head -1`): the
/// command's work goes on, never panics. As `print!`.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// [`out!`] with a newline, as `println!`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// A line to stderr, ignoring a closed stderr (a `tee` or log shipper that died): training and
/// every command go on, never panic. As `eprintln!`.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
