//! Where `sealsync ui` listens, and which `Host` headers it answers. It acts with the user's
//! credentials, so it listens on loopback unless told otherwise, and it refuses requests
//! whose `Host` is not its own: a web page elsewhere cannot reach it through a DNS name that
//! resolves to 127.0.0.1 (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::error::{CliError, CliResult};

/// The address `--listen` names: `ADDRESS:PORT`, `localhost:PORT` or a bare `PORT`.
pub fn parse(listen: &str, allow_remote: bool) -> CliResult<SocketAddr> {
    let bad = || {
        CliError::new(format!("--listen {listen:?}: not an ADDRESS:PORT"))
            .with_hint("pass --listen 127.0.0.1:7480, or 127.0.0.1:0 for any free port")
    };
    let addr = if let Ok(port) = listen.parse::<u16>() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    } else if let Some(port) = listen.strip_prefix("localhost:") {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port.parse().map_err(|_| bad())?,
        )
    } else {
        listen.parse::<SocketAddr>().map_err(|_| bad())?
    };
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(CliError::new(format!(
            "refusing to listen on {addr}: it is not a loopback address, and whoever reaches it \
             would see the cluster and act on it with your credentials"
        ))
        .with_hint(
            "listen on 127.0.0.1 (the default) and reach it through an SSH tunnel, or pass \
             --allow-remote if every host that can reach that address may act as you",
        ));
    }
    Ok(addr)
}

/// Whether a request's `Host` may be answered: an IP address or `localhost`, with any port.
/// DNS rebinding needs a DNS name that resolves to us, so a name other than `localhost` is
/// refused; an address is fine whatever the port (an SSH tunnel may forward another one).
pub fn host_allowed(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || is_port(port) => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .unwrap_or(text)
        .parse::<u16>()
        .is_ok()
}

/// The URL to print: the address as a browser should open it.
pub fn url(bound: SocketAddr) -> String {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => format!("http://127.0.0.1:{}/", bound.port()),
        IpAddr::V4(ip) => format!("http://{ip}:{}/", bound.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => format!("http://[::1]:{}/", bound.port()),
        IpAddr::V6(ip) => format!("http://[{ip}]:{}/", bound.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_by_default_and_elsewhere_only_when_allowed() {
        assert_eq!(
            parse("127.0.0.1:0", false).expect("ok").to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(
            parse("7480", false).expect("ok").to_string(),
            "127.0.0.1:7480"
        );
        assert_eq!(
            parse("localhost:9", false).expect("ok").to_string(),
            "127.0.0.1:9"
        );
        assert!(parse("[::1]:8080", false).is_ok());
        let refused = parse("0.0.0.0:8080", false).expect_err("refused");
        assert!(refused.message().contains("not a loopback address"));
        assert!(parse("0.0.0.0:8080", true).is_ok());
        assert!(parse("10.1.2.3:80", false).is_err());
        assert!(parse("nonsense", false).is_err());
    }

    #[test]
    fn addresses_and_localhost_are_answered_names_are_not() {
        for ok in [
            "127.0.0.1:7480",
            "localhost:7480",
            "LOCALHOST:1",
            "[::1]:7480",
            "10.1.2.3:80",
            "10.1.2.3",
            "localhost",
        ] {
            assert!(host_allowed(ok), "{ok}");
        }
        for refused in [
            "attacker.example:7480",
            "attacker.example",
            "127.0.0.1.nip.io:7480",
            "localhost.attacker.example",
            "[::1",
            "127.0.0.1:x",
            "",
        ] {
            assert!(!host_allowed(refused), "{refused}");
        }
    }
}
