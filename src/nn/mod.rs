//! The networks: configuration, layers, the op backends (GPU and f64 CPU) and G and D.

pub mod arch;
pub mod backend;
pub mod config;
pub mod net;

pub use config::NetConfig;
