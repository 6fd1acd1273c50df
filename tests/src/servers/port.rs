//! Picking a free loopback port for a server to listen on.

use std::net::{Ipv4Addr, TcpListener};

/// A loopback port that was free a moment ago.
///
/// The kernel picks it when binding port 0; the listener is dropped again so the server
/// can bind it. Another process may grab the port in between, which is why the servers
/// retry with a new port when theirs fails to start.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
