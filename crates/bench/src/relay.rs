//! The reference ceiling: a raw TCP relay. Each client sends its index
//! (8 bytes, big endian), and the relay joins client i with client i^1 and
//! forwards the bytes both ways, with no XML and no routing. What a server
//! does beyond moving these bytes is what it costs.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{bail, Result};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

pub async fn serve(listen: SocketAddr) -> Result<()> {
    if !listen.ip().is_loopback() {
        bail!("the relay only listens on loopback, not {listen}");
    }
    let listener = TcpListener::bind(listen).await?;
    eprintln!("relay listening on {}", listener.local_addr()?);
    let waiting: std::sync::Arc<Mutex<HashMap<u64, TcpStream>>> = Default::default();
    loop {
        let (mut sock, _) = listener.accept().await?;
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let _ = sock.set_nodelay(true);
            let mut idx = [0u8; 8];
            if sock.read_exact(&mut idx).await.is_err() {
                return;
            }
            let i = u64::from_be_bytes(idx);
            let peer = waiting.lock().await.remove(&(i ^ 1));
            match peer {
                Some(mut other) => {
                    let _ = tokio::io::copy_bidirectional(&mut sock, &mut other).await;
                }
                None => {
                    waiting.lock().await.insert(i, sock);
                }
            }
        });
    }
}
