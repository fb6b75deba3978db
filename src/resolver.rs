//! Name resolution for one login's HTTP agent.
//!
//! ureq resolves the host again for every request, even one that goes out on
//! a kept-alive connection, and each time (because every request has a
//! deadline) on a new thread. A login makes two or three requests to the same
//! host within seconds, so it asks once and reuses the answer; an address
//! given as a literal IP is used as is, with no lookup and no thread.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

#[derive(Debug, Default)]
pub struct LoginResolver {
    system: DefaultResolver,
    /// The last host asked for ("scheme://authority") and its addresses.
    last: Mutex<Option<(String, ResolvedSocketAddrs)>>,
}

impl Resolver for LoginResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            // Not a full URL: the system resolver gives ureq's own error.
            return self.system.resolve(uri, config, timeout);
        };
        let key = format!("{scheme}://{authority}");
        if let Some((k, addrs)) = &*self.last.lock().unwrap_or_else(|e| e.into_inner()) {
            if *k == key {
                return Ok(addrs.clone());
            }
        }
        let addrs = match literal_address(uri) {
            Some(addr) => {
                let mut one = self.empty();
                one.push(addr);
                one
            }
            None => self.system.resolve(uri, config, timeout)?,
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, addrs.clone()));
        Ok(addrs)
    }
}

/// `http://127.0.0.1:8080/...` or `https://[::1]/...`: the socket address.
fn literal_address(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let port = uri.port_u16().or(match uri.scheme_str()? {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    })?;
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(r: &LoginResolver, url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().unwrap();
        let timeout = NextTimeout {
            after: std::time::Duration::from_secs(5).into(),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        r.resolve(&uri, &Config::default(), timeout)
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn literal_addresses_need_no_lookup() {
        let r = LoginResolver::default();
        assert_eq!(
            resolve(&r, "http://127.0.0.1:8080/v2/Services"),
            ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve(&r, "https://[::1]/v2"),
            ["[::1]:443".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve(&r, "http://192.0.2.7/x"),
            ["192.0.2.7:80".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn a_host_is_looked_up_once_per_agent() {
        let r = LoginResolver::default();
        let first = resolve(&r, "http://localhost:4000/a");
        assert!(!first.is_empty());
        assert!(first
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 4000));
        // What the cache holds is what is answered: plant a marker in it.
        let marker: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        r.last.lock().unwrap().as_mut().unwrap().1[0] = marker;
        assert_eq!(resolve(&r, "http://localhost:4000/b")[0], marker);
        // Another host (or port) is looked up afresh.
        assert_eq!(
            resolve(&r, "http://localhost:4001/a")[0].port(),
            4001,
            "a different authority is not answered from the cache"
        );
    }
}
