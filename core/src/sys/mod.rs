//! Platform code. Only Unix is implemented; a `windows.rs` would sit beside `unix.rs`.
mod unix;
pub(crate) use unix::{classify, get_raw, level_and_name, set_raw};
#[cfg(any(target_os = "linux", target_os = "android"))]
mod tcp_info;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use tcp_info::read_tcp_info;
