//! systemd's readiness protocol (sd_notify): `READY=1` once every listener
//! is bound, `STOPPING=1` when the drain starts. A no-op without
//! `NOTIFY_SOCKET`, so the binary behaves the same outside systemd.

use std::os::unix::net::UnixDatagram;

/// Sends one notification; failures are logged, never fatal.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = (|| -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            // An abstract socket name (systemd uses these by default).
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            sock.send_to(state.as_bytes(), &path)?;
        }
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!(error = %e, state, "sd_notify failed");
    }
}
