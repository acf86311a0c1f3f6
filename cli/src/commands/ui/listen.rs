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

/// The `Host` values a request to `bound` may carry.
pub fn allowed_hosts(bound: SocketAddr) -> Vec<String> {
    let port = bound.port();
    let mut hosts = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ];
    let own = match bound.ip() {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    };
    if !hosts.contains(&own) && !bound.ip().is_unspecified() {
        hosts.push(own);
    }
    hosts
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
    fn only_our_own_host_names_are_answered() {
        let hosts = allowed_hosts("127.0.0.1:7480".parse().expect("addr"));
        assert!(hosts.contains(&"localhost:7480".to_owned()));
        assert!(!hosts.iter().any(|h| h.contains("evil")));
        let remote = allowed_hosts("10.1.2.3:80".parse().expect("addr"));
        assert!(remote.contains(&"10.1.2.3:80".to_owned()));
    }
}
