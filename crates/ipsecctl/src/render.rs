//! The human-readable form of a [`Report`]: one block per IKE message, payloads indented
//! under it, inner payloads of decrypted SK/SKF payloads indented once more.

use std::fmt::Write;

use crate::decode::{
    DecryptionStatus, DecryptionView, HeaderView, MessageRecord, PacketRecord, Record, Report,
};
use crate::view::{BodyView, PayloadView, SelectorView};

/// Hex values longer than this many octets are shortened in the text output (the JSON
/// output always has them whole).
pub const HEX_PREVIEW_OCTETS: usize = 24;

/// How the text is rendered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Print hex values whole instead of their first [`HEX_PREVIEW_OCTETS`] octets.
    pub full_hex: bool,
}

/// Renders the report as indented text, long hex values shortened.
pub fn render(report: &Report) -> String {
    render_with(report, Options::default())
}

/// Renders the report as indented text with the given options.
pub fn render_with(report: &Report, options: Options) -> String {
    let mut out = String::new();
    let _ = write_report(&mut out, report, options);
    out
}

fn write_report(out: &mut String, r: &Report, o: Options) -> std::fmt::Result {
    let format = match r.capture_format {
        crate::capture::CaptureFormat::Pcap => "pcap",
        crate::capture::CaptureFormat::Pcapng => "pcapng",
    };
    writeln!(out, "{}: {format}, {} frames", r.file, r.summary.frames)?;
    if let Some(t) = &r.first_frame_time {
        writeln!(out, "first frame at {t}")?;
    }
    if let Some(t) = &r.trusted_cas {
        writeln!(out, "CAs from {}:", t.file)?;
        for subject in &t.subjects {
            writeln!(out, "  {subject}")?;
        }
    }
    if let Some(k) = &r.key_table {
        writeln!(out, "key table {}: {} IKE SA(s)", k.file, k.entries.len())?;
        for e in &k.entries {
            let note = if e.supported {
                ""
            } else {
                " (not supported: cannot decrypt)"
            };
            writeln!(
                out,
                "  line {}: SPIi {} SPIr {}  {}{note}",
                e.line, e.spi_i, e.spi_r, e.encryption
            )?;
        }
    }

    for record in &r.records {
        writeln!(out)?;
        match record {
            Record::IkeMessage(m) => write_message(out, m, o)?,
            Record::Esp(e) => {
                write_packet_line(out, &e.packet, "ESP")?;
                let how = if e.udp_encapsulated { "in UDP (RFC 3948)" } else { "IP protocol 50" };
                writeln!(
                    out,
                    "  ESP {how}, SPI {}, sequence {}, {} bytes (not decoded)",
                    e.spi.as_deref().unwrap_or("?"),
                    e.sequence.map_or("?".to_string(), |s| s.to_string()),
                    e.length
                )?;
            }
            Record::NatKeepalive(p) => write_packet_line(out, p, "NAT-keepalive")?,
            Record::MalformedFrame(m) => {
                writeln!(out, "frame {}: malformed: {}", m.frame, m.error)?;
            }
            Record::IpFragmentsDropped(f) => writeln!(
                out,
                "{}: IP datagram {} -> {} (id {}) dropped: {}",
                frames_label(&f.frames),
                f.src,
                f.dst,
                f.ip_id,
                f.error
            )?,
            Record::IpFragmentsIncomplete(f) => writeln!(
                out,
                "{}: IP datagram {} -> {} (id {}) incomplete: {}",
                frames_label(&f.frames),
                f.src,
                f.dst,
                f.ip_id,
                f.error
            )?,
            Record::SkfIncomplete(s) => writeln!(
                out,
                "{}: IKE message SPIi {} SPIr {} Message ID {} {}: only {} of {} SKF fragments arrived",
                frames_label(&s.frames),
                s.spi_i,
                s.spi_r,
                s.message_id,
                if s.response { "response" } else { "request" },
                s.have,
                s.total
            )?,
        }
    }

    let s = &r.summary;
    writeln!(out)?;
    writeln!(
        out,
        "{} IKE messages ({} malformed), {} encrypted payloads decrypted, {} not; {} ESP packets; {} malformed frames",
        s.ike_messages, s.malformed_messages, s.decrypted, s.not_decrypted, s.esp_packets, s.malformed_frames
    )?;
    if let Some(p) = &r.capture_problem {
        writeln!(
            out,
            "capture damaged after frame {}: {}",
            p.after_frame, p.reason
        )?;
    }
    Ok(())
}

fn frame_list(frames: &[u64]) -> String {
    frames
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

/// "frame 4" or "frames 3+4".
fn frames_label(frames: &[u64]) -> String {
    match frames {
        [one] => format!("frame {one}"),
        _ => format!("frames {}", frame_list(frames)),
    }
}

fn write_packet_line(out: &mut String, p: &PacketRecord, what: &str) -> std::fmt::Result {
    write!(out, "frame {}", p.frame)?;
    if let Some(rel) = p.relative_time {
        write!(out, "  +{rel:.6}s")?;
    }
    writeln!(out, "  {} -> {}  {what}", p.src, p.dst)
}

fn write_message(out: &mut String, m: &MessageRecord, o: Options) -> std::fmt::Result {
    let frames = if m.frames.len() > 1 {
        format!("frames {} (IP-reassembled)", frame_list(&m.frames))
    } else {
        format!("frame {}", m.packet.frame)
    };
    write!(out, "{frames}")?;
    if let Some(rel) = m.packet.relative_time {
        write!(out, "  +{rel:.6}s")?;
    }
    let port = if m.nat_t { ", non-ESP marker" } else { "" };
    writeln!(
        out,
        "  {} -> {}  {} bytes{port}",
        m.packet.src, m.packet.dst, m.length
    )?;
    if let Some(h) = &m.header {
        write_header(out, h)?;
    }
    if let Some(e) = &m.error {
        writeln!(out, "  MALFORMED: {e}")?;
    }
    for p in &m.payloads {
        write_payload(out, p, 1, o)?;
    }
    if let Some(d) = &m.decryption {
        write_decryption(out, d, o)?;
    }
    Ok(())
}

fn write_header(out: &mut String, h: &HeaderView) -> std::fmt::Result {
    let role = if h.flags.response {
        "response"
    } else {
        "request"
    };
    let mut flags = Vec::new();
    if h.flags.initiator {
        flags.push("I");
    }
    if h.flags.response {
        flags.push("R");
    }
    if h.flags.version {
        flags.push("V");
    }
    let flags = if flags.is_empty() {
        "none".to_string()
    } else {
        flags.join(",")
    };
    writeln!(
        out,
        "  {} {role}  SPIi {}  SPIr {}  Message ID {}  flags {flags}  version {}.{}",
        h.exchange, h.spi_i, h.spi_r, h.message_id, h.major_version, h.minor_version
    )
}

fn write_decryption(out: &mut String, d: &DecryptionView, o: Options) -> std::fmt::Result {
    let line = d
        .key_table_line
        .map_or(String::new(), |l| format!(" with key table line {l}"));
    let fragment = d.fragment.map_or(String::new(), |f| {
        format!(" fragment {}/{}", f.number, f.total)
    });
    match d.status {
        DecryptionStatus::Decrypted => {
            let mut facts = Vec::new();
            if let Some(iv) = &d.iv {
                facts.push(format!("IV {iv}"));
            }
            if let Some(p) = d.pad_len {
                facts.push(format!("{p} bytes padding"));
            }
            if let Some(frames) = &d.reassembled_from_frames {
                facts.push(format!("reassembled from frames {}", frame_list(frames)));
            }
            if let Some(len) = d.plaintext_len {
                facts.push(format!("{len} bytes of payloads"));
            }
            writeln!(
                out,
                "    decrypted {}{fragment}{line} ({}):",
                d.payload,
                facts.join(", ")
            )?;
            if d.payloads.is_empty() {
                // RFC 7296 §1.4: an empty INFORMATIONAL request is a liveness check.
                writeln!(out, "      (no payloads)")?;
            }
            for p in &d.payloads {
                write_payload(out, p, 3, o)?;
            }
        }
        DecryptionStatus::FragmentHeld => writeln!(
            out,
            "    decrypted {}{fragment}{line}: {}",
            d.payload,
            d.detail.as_deref().unwrap_or("held")
        )?,
        DecryptionStatus::NoKeys
        | DecryptionStatus::UnsupportedCipher
        | DecryptionStatus::Failed => {
            let what = match d.status {
                DecryptionStatus::NoKeys => "not decrypted",
                DecryptionStatus::UnsupportedCipher => "not decrypted",
                _ => "DECRYPTION FAILED",
            };
            writeln!(
                out,
                "    {what}{fragment}{line}: {}",
                d.detail.as_deref().unwrap_or("no detail")
            )?;
        }
    }
    Ok(())
}

fn hex_preview(hex: &str, o: Options) -> String {
    if o.full_hex {
        return hex.to_string();
    }
    let max = HEX_PREVIEW_OCTETS * 2;
    match hex.get(..max) {
        Some(head) if hex.len() > max => format!("{head}…"),
        _ => hex.to_string(),
    }
}

fn write_payload(out: &mut String, p: &PayloadView, depth: usize, o: Options) -> std::fmt::Result {
    let pad = "  ".repeat(depth);
    let critical = if p.critical { " (critical)" } else { "" };
    let name = &p.payload_type;
    match &p.body {
        BodyView::Sa { proposals } => {
            writeln!(out, "{pad}{name}{critical}")?;
            for prop in proposals {
                let spi = prop.spi.as_ref().map_or(String::new(), |s| format!(" SPI {s}"));
                writeln!(out, "{pad}  proposal {} {}{spi}", prop.number, prop.protocol)?;
                for t in &prop.transforms {
                    let bits = t.key_length.map_or(String::new(), |k| format!(" key length {k}"));
                    write!(out, "{pad}    {:<5} {}{bits}", t.transform_type, t.name)?;
                    for a in &t.attributes {
                        match (&a.value, &a.data) {
                            (Some(v), _) => write!(out, " {}={v}", a.attribute_type)?,
                            (_, Some(d)) => write!(out, " {}={}", a.attribute_type, hex_preview(d, o))?,
                            _ => {}
                        }
                    }
                    writeln!(out)?;
                }
            }
        }
        BodyView::Ke { group, data_len, data, .. } => {
            writeln!(out, "{pad}{name}{critical} {group}, {data_len} bytes: {}", hex_preview(data, o))?;
        }
        BodyView::Id { id_type, value, certificate_match, data, .. } => {
            let shown = value.clone().unwrap_or_else(|| hex_preview(data, o));
            writeln!(out, "{pad}{name}{critical} {id_type} {shown}")?;
            if let Some(m) = certificate_match {
                writeln!(out, "{pad}  {m}")?;
            }
        }
        BodyView::Cert { encoding, data_len, certificate, certificate_error, .. } => {
            writeln!(out, "{pad}{name}{critical} {encoding}, {data_len} bytes")?;
            if let Some(c) = certificate {
                writeln!(out, "{pad}  subject {}", c.subject)?;
                writeln!(out, "{pad}  issuer  {}", c.issuer)?;
                if !c.dns_names.is_empty() {
                    writeln!(out, "{pad}  DNS     {}", c.dns_names.join(", "))?;
                }
                if !c.ip_addresses.is_empty() {
                    writeln!(out, "{pad}  IP      {}", c.ip_addresses.join(", "))?;
                }
                writeln!(out, "{pad}  key     {}{}", c.key_type, if c.is_ca { ", CA" } else { "" })?;
                if let Some(chain) = &c.chain {
                    writeln!(out, "{pad}  chain   {chain}")?;
                }
            }
            if let Some(e) = certificate_error {
                writeln!(out, "{pad}  (not parsed: {e})")?;
            }
        }
        BodyView::CertReq { encoding, ca_key_hashes, data, .. } => {
            if ca_key_hashes.is_empty() {
                writeln!(out, "{pad}{name}{critical} {encoding} {}", hex_preview(data, o))?;
            } else {
                writeln!(out, "{pad}{name}{critical} {encoding}, CA key hashes:")?;
                for h in ca_key_hashes {
                    writeln!(out, "{pad}  {h}")?;
                }
            }
        }
        BodyView::Auth { method, scheme, signature_len, scheme_error, signature_check, data, .. } => {
            match (scheme, signature_len) {
                (Some(s), Some(len)) => writeln!(out, "{pad}{name}{critical} {s}, {len}-byte signature")?,
                _ => writeln!(out, "{pad}{name}{critical} {method} {}", hex_preview(data, o))?,
            }
            if let Some(e) = scheme_error {
                writeln!(out, "{pad}  ({e})")?;
            }
            if let Some(check) = signature_check {
                writeln!(out, "{pad}  signature {check}")?;
            }
        }
        BodyView::Nonce { data_len, data } => {
            writeln!(out, "{pad}{name}{critical} {data_len} bytes: {}", hex_preview(data, o))?;
        }
        BodyView::Notify { notify_type, protocol, spi, data, decoded, error, .. } => {
            write!(out, "{pad}N({notify_type}){critical}")?;
            if *error {
                write!(out, " error")?;
            }
            if let Some(spi) = spi {
                write!(out, " {protocol} SPI {spi}")?;
            }
            match decoded {
                Some(text) => write!(out, ": {text}")?,
                None if !data.is_empty() => write!(out, ": {}", hex_preview(data, o))?,
                None => {}
            }
            writeln!(out)?;
        }
        BodyView::Delete { protocol, spis, .. } => {
            writeln!(out, "{pad}{name}{critical} {protocol} SPIs {}", spis.join(", "))?;
        }
        BodyView::VendorId { data, text } => {
            let shown = text.clone().unwrap_or_else(|| hex_preview(data, o));
            writeln!(out, "{pad}{name}{critical} {shown}")?;
        }
        BodyView::Ts { selectors } => {
            writeln!(out, "{pad}{name}{critical}")?;
            for s in selectors {
                writeln!(out, "{pad}  {}", selector_text(s, o))?;
            }
        }
        BodyView::Sk { first_inner, sealed_len } => {
            writeln!(out, "{pad}{name}{critical} first inner payload {first_inner}, {sealed_len} bytes sealed")?;
        }
        BodyView::Skf { first_inner, fragment_number, total_fragments, sealed_len } => writeln!(
            out,
            "{pad}{name}{critical} fragment {fragment_number}/{total_fragments}, first inner payload \
             {first_inner}, {sealed_len} bytes sealed"
        )?,
        BodyView::Cp { cfg_type, attributes } => {
            writeln!(out, "{pad}{name}{critical} {cfg_type}")?;
            for a in attributes {
                let shown = a.address.clone().unwrap_or_else(|| hex_preview(&a.value, o));
                writeln!(out, "{pad}  {} {shown}", a.attribute_type)?;
            }
        }
        BodyView::Opaque { data } => {
            writeln!(out, "{pad}{name}{critical} {} bytes: {}", data.len() / 2, hex_preview(data, o))?;
        }
    }
    Ok(())
}

fn selector_text(s: &SelectorView, o: Options) -> String {
    if let Some(data) = &s.data {
        return format!(
            "{} protocol {} data {}",
            s.ts_type,
            s.ip_protocol,
            hex_preview(data, o)
        );
    }
    let protocol = match s.ip_protocol {
        0 => "any protocol".to_string(),
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        1 => "icmp".to_string(),
        58 => "ipv6-icmp".to_string(),
        n => format!("protocol {n}"),
    };
    let ports = match (s.start_port, s.end_port) {
        (Some(0), Some(65535)) => "any port".to_string(),
        (Some(a), Some(b)) if a == b => format!("port {a}"),
        (Some(a), Some(b)) => format!("ports {a}-{b}"),
        _ => String::new(),
    };
    let addrs = match (&s.start_address, &s.end_address) {
        (Some(a), Some(b)) if a == b => a.clone(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => String::new(),
    };
    format!("{addrs} {protocol} {ports}")
}
