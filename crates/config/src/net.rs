//! IP networks in CIDR notation (`10.0.0.0/8`, `fd00::/8`) for options
//! that name address ranges, such as `register.throttle_exempt`.
//!
//! Parsed here rather than with a crate: the notation is small, and the
//! error must speak to an operator (`"10.0.0/8" is not a network`), with
//! the strictness of the rest of the configuration: a network written with
//! host bits set (`10.0.0.1/8`) is refused with the network it probably
//! means, since a typo there would silently widen or narrow the range.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::spec::OptionType;

/// One network: an address and a prefix length; a bare address is a
/// network of one (`/32`, `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// `addr/prefix`, if the prefix fits the address family and no host
    /// bit is set.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNetwork> {
        format!("{addr}/{prefix}").parse().ok()
    }

    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:127.0.0.1`, what a dual-stack socket reports for an IPv4
    /// peer) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a string is not a network.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("{0:?} is not a network: expected IP/prefix, such as 10.0.0.0/8 or fd00::/8")]
    Syntax(String),
    #[error("{0:?} has a prefix longer than {1} bits")]
    Prefix(String, u8),
    #[error("{0:?} has host bits set: did you mean {1}?")]
    HostBits(String, IpNetwork),
}

impl FromStr for IpNetwork {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<IpNetwork, NetworkError> {
        let syntax = || NetworkError::Syntax(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: u8's parser would take "+8".
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .map_err(|_| NetworkError::Prefix(s.to_owned(), max))?,
            Some(_) => return Err(syntax()),
        };
        if prefix > max {
            return Err(NetworkError::Prefix(s.to_owned(), max));
        }
        let net = IpNetwork { addr, prefix };
        let masked = IpNetwork {
            addr: match addr {
                IpAddr::V4(a) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                    IpAddr::V4((u32::from(a) & mask).into())
                }
                IpAddr::V6(a) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                    IpAddr::V6((u128::from(a) & mask).into())
                }
            },
            prefix,
        };
        if masked != net {
            return Err(NetworkError::HostBits(s.to_owned(), masked));
        }
        Ok(net)
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNetwork {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNetwork {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IpNetwork, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl OptionType for Vec<IpNetwork> {
    const TYPE: &'static str = "list of networks";
    const EXPECTED: &'static str = "a list of networks (\"IP/prefix\" strings)";

    fn check(value: &figment::value::Value) -> Result<(), Box<figment::Error>> {
        crate::spec::check_items::<IpNetwork>(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_and_no_others() {
        let lo = net("127.0.0.0/8");
        assert!(lo.contains("127.0.0.1".parse().unwrap()));
        assert!(lo.contains("127.255.255.254".parse().unwrap()));
        assert!(!lo.contains("128.0.0.1".parse().unwrap()));
        assert!(!lo.contains("::1".parse().unwrap()));
        // What a dual-stack listener reports for an IPv4 peer.
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        let v6 = net("fd00::/8");
        assert!(v6.contains("fd12:3456::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(net("::1/128").contains("::1".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("203.0.113.9".parse().unwrap()));
        assert!(net("::/0").contains("2001:db8::1".parse().unwrap()));
        let one = net("192.0.2.7");
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
    }

    #[test]
    fn malformed_networks_say_what_is_wrong() {
        let err = |s: &str| s.parse::<IpNetwork>().unwrap_err().to_string();
        assert_eq!(
            err("10.0.0/8"),
            "\"10.0.0/8\" is not a network: expected IP/prefix, such as 10.0.0.0/8 or fd00::/8"
        );
        assert_eq!(
            err("10.0.0.0/+8"),
            "\"10.0.0.0/+8\" is not a network: expected IP/prefix, such as 10.0.0.0/8 or fd00::/8"
        );
        assert!(err("10.0.0.0/").starts_with("\"10.0.0.0/\" is not a network"));
        assert!(err("localhost").starts_with("\"localhost\" is not a network"));
        assert_eq!(
            err("10.0.0.0/33"),
            "\"10.0.0.0/33\" has a prefix longer than 32 bits"
        );
        assert_eq!(
            err("::/300"),
            "\"::/300\" has a prefix longer than 128 bits"
        );
        assert_eq!(
            err("10.0.0.1/8"),
            "\"10.0.0.1/8\" has host bits set: did you mean 10.0.0.0/8?"
        );
        assert_eq!(
            err("fd00::1/8"),
            "\"fd00::1/8\" has host bits set: did you mean fd00::/8?"
        );
    }
}
