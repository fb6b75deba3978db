//! `trusted_networks`: CIDR blocks, matched against PAM_RHOST when it is an
//! IP address (a host name never matches: it is whatever DNS said).

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// "10.0.0.0/8", "::1/128", or a single address.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("\"{s}\" is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("\"{s}\": prefix must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
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

/// The network `rhost` is in, if it is an IP address inside one of `nets`.
pub fn trusted<'a>(rhost: &str, nets: &'a [Cidr]) -> Option<&'a Cidr> {
    let ip: IpAddr = rhost
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    nets.iter().find(|n| n.contains(ip))
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let nets: Vec<Cidr> = ["10.0.0.0/8", "::1/128", "192.0.2.7", "0.0.0.0/0"][..3]
            .iter()
            .map(|s| Cidr::parse(s).unwrap())
            .collect();
        assert!(trusted("10.1.2.3", &nets).is_some());
        assert!(trusted("::1", &nets).is_some());
        assert!(trusted("::ffff:10.9.9.9", &nets).is_some());
        assert!(trusted("192.0.2.7", &nets).is_some());
        assert!(trusted("192.0.2.8", &nets).is_none());
        assert!(trusted("11.0.0.1", &nets).is_none());
        assert!(trusted("host.example.com", &nets).is_none());
        assert!(trusted("10.0.0.1.evil.com", &nets).is_none());
        let all = [Cidr::parse("0.0.0.0/0").unwrap()];
        assert!(trusted("203.0.113.9", &all).is_some());
    }

    #[test]
    fn bad_networks() {
        for s in ["10.0.0.0/33", "::/129", "ten/8", "", "10.0.0.0/-1"] {
            assert!(Cidr::parse(s).is_err(), "{s}");
        }
    }
}
