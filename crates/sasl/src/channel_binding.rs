//! Channel binding (RFC 5056) data handed over by the TLS layer, and the
//! binding types SCRAM-*-PLUS may name in its gs2 header.
//!
//! The TLS layer computes the bytes; this crate only compares them. Two types
//! are supported:
//! - `tls-exporter` (RFC 9266): the TLS exporter with label
//!   `EXPORTER-Channel-Binding`, empty context, 32 bytes. The one to use with
//!   TLS 1.3, where `tls-unique` is undefined.
//! - `tls-server-end-point` (RFC 5929 §4): the hash of the server
//!   certificate. Weaker (it binds to the certificate, not the session) but
//!   available when a TLS terminator cannot export keying material.
//!
//! `tls-unique` is deliberately absent: it is broken by the triple-handshake
//! attack on TLS 1.2 and does not exist in TLS 1.3.

use std::fmt;
use std::str::FromStr;

use crate::error::SaslError;

/// A channel binding type name from the IANA registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelBindingType {
    /// `tls-exporter` (RFC 9266).
    TlsExporter,
    /// `tls-server-end-point` (RFC 5929).
    TlsServerEndPoint,
}

impl ChannelBindingType {
    /// Every supported type, preferred first.
    pub const ALL: [ChannelBindingType; 2] = [
        ChannelBindingType::TlsExporter,
        ChannelBindingType::TlsServerEndPoint,
    ];

    /// The registered name, e.g. `"tls-exporter"`, as written after `p=` and
    /// in XEP-0440's `<channel-binding type='...'/>`.
    pub fn name(self) -> &'static str {
        match self {
            ChannelBindingType::TlsExporter => "tls-exporter",
            ChannelBindingType::TlsServerEndPoint => "tls-server-end-point",
        }
    }
}

impl fmt::Display for ChannelBindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ChannelBindingType {
    type Err = SaslError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChannelBindingType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| SaslError::UnsupportedChannelBindingType(s.to_owned()))
    }
}

/// What the TLS layer knows about the current connection. Both fields are
/// `None` on a plaintext stream, where no -PLUS mechanism may be offered.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChannelBindingData {
    /// The RFC 9266 exporter value (32 bytes), when the TLS library can
    /// export keying material for this session.
    pub tls_exporter: Option<Vec<u8>>,
    /// The RFC 5929 §4.1 certificate hash, when the server presented a
    /// certificate whose signature hash allows computing it.
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindingData {
    /// No TLS, so no binding: the state for plaintext streams.
    pub fn none() -> Self {
        Self::default()
    }

    /// The data for one type, if the TLS layer provided it.
    pub fn get(&self, ty: ChannelBindingType) -> Option<&[u8]> {
        match ty {
            ChannelBindingType::TlsExporter => self.tls_exporter.as_deref(),
            ChannelBindingType::TlsServerEndPoint => self.tls_server_end_point.as_deref(),
        }
    }

    /// The types this connection can bind to, preferred first: what to
    /// advertise in XEP-0440 `<sasl-channel-binding/>`, and whether to offer
    /// -PLUS mechanisms at all (only if this is non-empty).
    pub fn available_types(&self) -> Vec<ChannelBindingType> {
        ChannelBindingType::ALL
            .into_iter()
            .filter(|t| self.get(*t).is_some())
            .collect()
    }

    /// True when no binding type is available.
    pub fn is_empty(&self) -> bool {
        self.tls_exporter.is_none() && self.tls_server_end_point.is_none()
    }
}

// The exporter value is derived from the TLS master secret: keep it out of
// logs, show only whether it is there.
impl fmt::Debug for ChannelBindingData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBindingData")
            .field(
                "tls_exporter",
                &self
                    .tls_exporter
                    .as_ref()
                    .map(|v| format!("<{} bytes>", v.len())),
            )
            .field(
                "tls_server_end_point",
                &self
                    .tls_server_end_point
                    .as_ref()
                    .map(|v| format!("<{} bytes>", v.len())),
            )
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::Condition;

    #[test]
    fn names_round_trip_and_tls_unique_is_unsupported() {
        for t in ChannelBindingType::ALL {
            assert_eq!(t.name().parse::<ChannelBindingType>().unwrap(), t);
        }
        let err = "tls-unique".parse::<ChannelBindingType>().unwrap_err();
        assert_eq!(
            err,
            SaslError::UnsupportedChannelBindingType("tls-unique".into())
        );
        assert_eq!(err.condition(), Condition::MalformedRequest);
    }

    #[test]
    fn available_types_follow_the_data_present() {
        assert!(ChannelBindingData::none().available_types().is_empty());
        assert!(ChannelBindingData::none().is_empty());
        let cb = ChannelBindingData {
            tls_exporter: None,
            tls_server_end_point: Some(vec![1, 2, 3]),
        };
        assert_eq!(
            cb.available_types(),
            vec![ChannelBindingType::TlsServerEndPoint]
        );
        assert_eq!(
            cb.get(ChannelBindingType::TlsServerEndPoint),
            Some(&[1, 2, 3][..])
        );
        assert_eq!(cb.get(ChannelBindingType::TlsExporter), None);
    }

    #[test]
    fn debug_output_hides_the_binding_bytes() {
        let cb = ChannelBindingData {
            tls_exporter: Some(vec![0xAB; 32]),
            tls_server_end_point: None,
        };
        let shown = format!("{cb:?}");
        assert!(shown.contains("<32 bytes>"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }
}
