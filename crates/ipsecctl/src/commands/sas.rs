//! `ipsecctl sas`: each IKE SA, then a table of its CHILD_SAs with the kernel's counters.

use std::path::Path;

use control_api::protocol::{
    ChildSaInfo, IkeSaInfo, Request, Response, SaList, SaMode, TrafficSelector,
};

use crate::commands::peers::{ike_state, role};
use crate::commands::{print, print_json};
use crate::control_client::{call, unexpected, Exit};
use crate::table::{duration, opt, Table};

/// Runs `sas`.
pub fn run(socket: &Path, json: bool) -> Exit {
    match call("sas", socket, Request::Sas) {
        Ok(Response::Sas(list)) if json => print_json("sas", &list),
        Ok(Response::Sas(list)) => {
            print(&render(&list));
            Exit::Ok
        }
        Ok(other) => unexpected("sas", &other),
        Err(exit) => exit,
    }
}

/// Every IKE SA as a heading and its CHILD_SAs as an indented table.
pub fn render(list: &SaList) -> String {
    if list.ike_sas.is_empty() {
        return "no IKE SAs\n".to_owned();
    }
    let mut out = String::new();
    for (i, ike) in list.ike_sas.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&ike_heading(ike));
        let table = child_table(&ike.child_sas);
        for line in table.lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn ike_heading(ike: &IkeSaInfo) -> String {
    let suite = [
        Some(ike.encryption.as_str()),
        ike.integrity.as_deref(),
        Some(ike.prf.as_str()),
        Some(ike.dh_group.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("/");
    format!(
        "IKE SA {peer}  {lip}[{lport}] -> {rip}[{rport}]  {state}  {role}  SPIi {spi_i}  \
         SPIr {spi_r}\n  {suite}  age {age}  rekey in {rekey}\n",
        peer = ike.peer,
        lip = ike.local_ip,
        lport = ike.local_port,
        rip = ike.remote_ip,
        rport = ike.remote_port,
        state = ike_state(ike.state),
        role = role(ike.role),
        spi_i = ike.spi_i,
        spi_r = ike.spi_r,
        age = duration(ike.age_secs),
        rekey = opt(ike.rekey_in_secs.map(duration)),
    )
}

fn child_table(children: &[ChildSaInfo]) -> String {
    let mut t = Table::new(&[
        "SPI IN",
        "SPI OUT",
        "REQID",
        "MODE",
        "ENCAP",
        "LOCAL TS",
        "REMOTE TS",
        "ALGORITHMS",
        "BYTES IN",
        "PKTS IN",
        "BYTES OUT",
        "PKTS OUT",
        "REPLAY",
        "INTEGRITY",
        "AGE",
        "REKEY IN",
        "SOFT",
        "HARD",
    ]);
    for c in children {
        let mode = match c.mode {
            SaMode::Transport => "transport",
            SaMode::Tunnel => "tunnel",
        };
        let encap = c
            .encapsulation
            .map(|e| format!("udp {}->{}", e.source_port, e.destination_port));
        let mut algorithms = c.encryption.clone();
        if let Some(integrity) = &c.integrity {
            algorithms.push('/');
            algorithms.push_str(integrity);
        }
        if c.esn {
            algorithms.push_str("/ESN");
        }
        let failures_replay = c
            .inbound
            .replay_failures
            .saturating_add(c.outbound.replay_failures);
        let failures_integrity = c
            .inbound
            .integrity_failures
            .saturating_add(c.outbound.integrity_failures);
        t.row(vec![
            format!("{:08x}", c.spi_in),
            format!("{:08x}", c.spi_out),
            c.reqid.to_string(),
            mode.to_owned(),
            opt(encap),
            selectors(&c.local_ts),
            selectors(&c.remote_ts),
            algorithms,
            c.inbound.bytes.to_string(),
            c.inbound.packets.to_string(),
            c.outbound.bytes.to_string(),
            c.outbound.packets.to_string(),
            failures_replay.to_string(),
            failures_integrity.to_string(),
            // Refused by the kernel: no age to speak of.
            if c.installed {
                duration(c.lifetime.age_secs)
            } else {
                "not installed".to_owned()
            },
            opt(c.rekey_in_secs.map(duration)),
            opt(c.lifetime.soft_secs.map(duration)),
            opt(c.lifetime.hard_secs.map(duration)),
        ]);
    }
    t.render()
}

/// Traffic selectors as `addr[proto/port]`, ranges written `a-b`, several joined by `,`.
fn selectors(ts: &[TrafficSelector]) -> String {
    if ts.is_empty() {
        return "-".to_owned();
    }
    ts.iter().map(selector).collect::<Vec<_>>().join(",")
}

fn selector(ts: &TrafficSelector) -> String {
    let addr = if ts.start_address == ts.end_address {
        ts.start_address.to_string()
    } else {
        format!("{}-{}", ts.start_address, ts.end_address)
    };
    let proto = match ts.ip_protocol {
        0 => "any".to_owned(),
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        n => n.to_string(),
    };
    let ports = if ts.start_port == 0 && ts.end_port == u16::MAX {
        String::new()
    } else if ts.start_port == ts.end_port {
        format!("/{}", ts.start_port)
    } else {
        format!("/{}-{}", ts.start_port, ts.end_port)
    };
    if ts.ip_protocol == 0 && ports.is_empty() {
        addr
    } else {
        format!("{addr}[{proto}{ports}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control_api::protocol::{ChildSaInfo, KernelCounters, SaLifetime, SaMode};

    #[test]
    fn child_sa_not_in_the_kernel_shows_not_installed_instead_of_an_age() {
        let child = ChildSaInfo {
            spi_in: 0xc000_0001,
            spi_out: 0xc100_0002,
            reqid: 1,
            mode: SaMode::Transport,
            encapsulation: None,
            local_ts: vec![],
            remote_ts: vec![],
            encryption: "AES_GCM_16_256".into(),
            integrity: None,
            esn: false,
            inbound: KernelCounters::default(),
            outbound: KernelCounters::default(),
            lifetime: SaLifetime {
                age_secs: 0,
                soft_secs: None,
                hard_secs: None,
                soft_bytes: None,
                hard_bytes: None,
            },
            rekey_in_secs: None,
            installed: false,
        };
        assert!(child_table(std::slice::from_ref(&child)).contains("not installed"));
        let installed = ChildSaInfo {
            installed: true,
            ..child
        };
        assert!(!child_table(&[installed]).contains("not installed"));
    }
}
