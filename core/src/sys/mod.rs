//! Platform code. Only Unix is implemented; a `windows.rs` would sit beside `unix.rs`.
mod unix;
pub(crate) use unix::{classify, get_raw, level_and_name, set_raw};
