//! Opens a real loopback connection and prints its keep-alive settings before and after
//! `configure_keepalive`, read back from the kernel.
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let stream = TcpStream::connect(listener.local_addr()?)?;
    println!("before: {}", tcp_keepalive::inspect(&stream)?);
    tcp_keepalive::configure_keepalive(
        &stream,
        Duration::from_secs(60),
        Duration::from_secs(10),
        6,
    )?;
    println!("after:  {}", tcp_keepalive::inspect(&stream)?);
    Ok(())
}
