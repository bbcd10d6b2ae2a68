//! The client's address, for the limits kept per address: the socket's peer, unless that
//! peer is a trusted proxy (`--trusted-proxies`), in which case `X-Forwarded-For` says who the
//! client is. Read from the right: each trusted proxy appends the address it received from, so
//! the first address from the right that is not a trusted proxy is the client; whatever stands
//! left of it was written by the client itself and proves nothing. An `X-Forwarded-For` from
//! a peer that is not trusted is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::config::{canonical, TrustedProxies};
use crate::http::HttpState;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address of a request (None when the server was not given the peer's address).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<HttpState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(of_parts(parts, &state.app.settings.trusted_proxies)))
    }
}

/// The client address of a request's parts.
pub fn of_parts(parts: &Parts, proxies: &TrustedProxies) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    client_address(peer, &parts.headers, proxies)
}

/// See the module documentation.
pub fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, proxies: &TrustedProxies) -> Option<IpAddr> {
    let peer = canonical(peer?);
    if !proxies.trusts(peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(address) = parse_hop(hop) else {
            // Garbage: the last address a trusted proxy vouched for is as far as we can see.
            break;
        };
        client = address;
        if !proxies.trusts(address) {
            break;
        }
    }
    Some(client)
}

/// `203.0.113.7`, `203.0.113.7:5123`, `2001:db8::1` or `[2001:db8::1]:5123`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::config::parse_trusted_proxies;

    fn headers(xff: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_static(value));
        }
        headers
    }

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = parse_trusted_proxies("10.0.0.0/8").unwrap_or_default();
        let got = client_address(ip("198.51.100.9"), &headers(&["203.0.113.7"]), &proxies);
        assert_eq!(got, ip("198.51.100.9"));
        assert_eq!(client_address(None, &headers(&["203.0.113.7"]), &proxies), None);
    }

    #[test]
    fn a_trusted_proxy_names_the_client_from_the_right() {
        let proxies = parse_trusted_proxies("10.0.0.0/8").unwrap_or_default();
        // The client forged the first entry; the proxy appended the real one.
        let got = client_address(ip("10.0.0.2"), &headers(&["1.1.1.1, 203.0.113.7"]), &proxies);
        assert_eq!(got, ip("203.0.113.7"));
        // Two trusted hops, the second header line appended by the inner proxy.
        let got = client_address(ip("10.0.0.2"), &headers(&["203.0.113.7", "10.0.0.9"]), &proxies);
        assert_eq!(got, ip("203.0.113.7"));
        // No header: the proxy itself.
        assert_eq!(client_address(ip("10.0.0.2"), &headers(&[]), &proxies), ip("10.0.0.2"));
        // Ports and brackets are tolerated; garbage stops the walk at the last good hop.
        let got = client_address(ip("10.0.0.2"), &headers(&["[2001:db8::1]:443"]), &proxies);
        assert_eq!(got, ip("2001:db8::1"));
        let got = client_address(ip("10.0.0.2"), &headers(&["203.0.113.7, nonsense"]), &proxies);
        assert_eq!(got, ip("10.0.0.2"));
        // A mapped IPv4 peer counts as the IPv4 address.
        let got = client_address(ip("::ffff:10.0.0.2"), &headers(&["203.0.113.7"]), &proxies);
        assert_eq!(got, ip("203.0.113.7"));
    }
}
