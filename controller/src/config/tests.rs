use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::open_vswitch::parse_select_reply;
use super::*;

const OVS: &str = "unix:/tmp/test-ovs.sock";

fn ovs(external_ids: &[(&str, &str)], other_config: &[(&str, &str)]) -> OvsValues {
    let map = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    OvsValues {
        remote: OVS.into(),
        external_ids: map(external_ids),
        other_config: map(other_config),
    }
}

/// The row ovn-controller and ovs-monitor-ipsec leave.
fn node_row() -> OvsValues {
    ovs(
        &[
            ("system-id", "ch1"),
            ("ovn-remote", "ssl:10.0.0.10:6642,ssl:10.0.0.11:6642"),
            ("ovn-encap-ip", "10.0.0.1,fd00::1"),
            ("ovn-encap-type", "geneve"),
            ("hostname", "node1"),
        ],
        &[
            ("certificate", "/etc/ipsec.d/certs/ch1-cert.pem"),
            ("private_key", "/etc/ipsec.d/private/ch1-privkey.pem"),
            ("ca_cert", "/etc/ipsec.d/cacerts/cacert.pem"),
        ],
    )
}

fn file(text: &str) -> (PathBuf, FileConfig) {
    let p = PathBuf::from("/etc/ovn-ipsec/test.toml");
    let f = FileConfig::parse(&p, text).unwrap();
    (p, f)
}

fn ovs_source(column: &'static str) -> Source {
    Source::OpenVswitch {
        remote: OVS.into(),
        column,
    }
}

#[test]
fn open_vswitch_row_alone_configures_everything_required() {
    let layers = Layers {
        ovs: Some(node_row()),
        ..Layers::default()
    };
    let c = layers.resolve().unwrap();
    let name = c.chassis_name.as_ref().unwrap();
    assert_eq!(name.value, "ch1");
    assert_eq!(name.source, ovs_source("external_ids:system-id"));
    let remotes: Vec<String> = c
        .ovn_remote
        .as_ref()
        .unwrap()
        .value
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(remotes, ["ssl:10.0.0.10:6642", "ssl:10.0.0.11:6642"]);
    assert_eq!(
        c.encap_ip.as_ref().unwrap().value,
        vec![
            "10.0.0.1".parse::<IpAddr>().unwrap(),
            "fd00::1".parse().unwrap()
        ]
    );
    assert_eq!(c.encap_type.as_ref().unwrap().value, vec!["geneve"]);
    let r = c.required().unwrap();
    assert_eq!(
        r.identity.private_key,
        Path::new("/etc/ipsec.d/private/ch1-privkey.pem")
    );
    assert_eq!(
        c.certificate.as_ref().unwrap().source,
        ovs_source("other_config:certificate")
    );
    assert_eq!(c.control_socket.source, Source::Default);
    assert!(c.metrics_listen.is_none());

    // ssl: remotes use our own certificate and key.
    let sb = c.southbound_config().unwrap();
    let tls = sb.tls.unwrap();
    assert_eq!(tls.ca_cert, Path::new("/etc/ipsec.d/cacerts/cacert.pem"));
}

#[test]
fn file_overrides_open_vswitch_and_command_line_overrides_both() {
    let layers = Layers {
        ovs: Some(node_row()),
        file: Some(file(
            r#"
            chassis_name = "from-file"
            encap_ip = ["192.0.2.1", "192.0.2.2"]
            certificate = "/file/cert.pem"
            metrics_listen = "127.0.0.1:9476"
            "#,
        )),
        cli: Args {
            chassis_name: Some("from-cli".into()),
            encap_type: vec!["vxlan,geneve".into()],
            ovn_remote: Some("tcp:127.0.0.1:6642".into()),
            ..Args::default()
        },
        notes: vec![],
    };
    let c = layers.resolve().unwrap();
    let file_src = Source::File("/etc/ovn-ipsec/test.toml".into());
    assert_eq!(
        c.chassis_name.clone().unwrap(),
        Setting {
            value: "from-cli".into(),
            source: Source::CommandLine("--chassis-name")
        }
    );
    assert_eq!(c.encap_ip.as_ref().unwrap().source, file_src);
    assert_eq!(c.encap_ip.as_ref().unwrap().value.len(), 2);
    assert_eq!(
        c.encap_type.as_ref().unwrap().value,
        vec!["vxlan", "geneve"]
    );
    assert_eq!(
        c.encap_type.as_ref().unwrap().source,
        Source::CommandLine("--encap-type")
    );
    assert_eq!(c.certificate.as_ref().unwrap().source, file_src);
    assert_eq!(
        c.private_key.as_ref().unwrap().source,
        ovs_source("other_config:private_key")
    );
    assert_eq!(
        c.metrics_listen.as_ref().unwrap().value,
        "127.0.0.1:9476".parse().unwrap()
    );
    // A tcp: remote needs no TLS files.
    assert!(c.southbound_config().unwrap().tls.is_none());
}

#[test]
fn control_group_comes_from_the_file_or_the_command_line_and_is_rendered() {
    let layers = |cli_group: Option<&str>| Layers {
        ovs: Some(node_row()),
        file: Some(file(r#"control_group = "ovn-ops""#)),
        cli: Args {
            control_group: cli_group.map(str::to_owned),
            ..Args::default()
        },
        notes: vec![],
    };
    let c = layers(None).resolve().unwrap();
    let group = c.control_group.clone().unwrap();
    assert_eq!(group.value, "ovn-ops");
    assert_eq!(
        group.source,
        Source::File("/etc/ovn-ipsec/test.toml".into())
    );
    assert!(c.render().contains("control_group = \"ovn-ops\""));
    let c = layers(Some("4242")).resolve().unwrap();
    assert_eq!(
        c.control_group.unwrap(),
        Setting {
            value: "4242".into(),
            source: Source::CommandLine("--control-group")
        }
    );
    // Unset: root only, and the rendering says where it can be set.
    let mut unset = layers(None);
    unset.file = None;
    let c = unset.resolve().unwrap();
    assert!(c.control_group.is_none());
    assert!(c.render().contains("# control_group: unset"));
}

#[test]
fn unknown_toml_key_is_an_error_naming_it() {
    let p = Path::new("/etc/ovn-ipsec/ovn-ipsecd.toml");
    let e = FileConfig::parse(p, "chassis_name = \"ch1\"\nchasis_nmae = \"typo\"\n").unwrap_err();
    let m = e.to_string();
    assert!(
        m.starts_with("configuration file /etc/ovn-ipsec/ovn-ipsecd.toml: "),
        "{m}"
    );
    assert!(m.contains("chasis_nmae"), "{m}");
    assert!(m.contains("unknown field"), "{m}");
}

#[test]
fn toml_value_of_wrong_type_is_an_error() {
    let e = FileConfig::parse(Path::new("x.toml"), "chassis_name = 3\n").unwrap_err();
    assert!(e.to_string().contains("chassis_name"), "{e}");
}

#[test]
fn toml_lists_may_be_strings_or_arrays() {
    let (_, a) = file("ovn_remote = \"tcp:a:1, tcp:b:2\"\nencap_ip = \"10.0.0.1\"");
    let (_, b) = file("ovn_remote = [\"tcp:a:1\", \"tcp:b:2\"]\nencap_ip = [\"10.0.0.1\"]");
    assert_eq!(a.ovn_remote.unwrap().items(), b.ovn_remote.unwrap().items());
    assert_eq!(a.encap_ip.unwrap().items(), vec!["10.0.0.1"]);
}

#[test]
fn invalid_winning_value_names_key_and_source() {
    let layers = Layers {
        ovs: Some(ovs(&[("ovn-encap-ip", "10.0.0.1,not-an-ip")], &[])),
        ..Layers::default()
    };
    let m = layers.resolve().unwrap_err().to_string();
    assert_eq!(
        m,
        format!(
            "encap_ip from Open_vSwitch external_ids:ovn-encap-ip ({OVS}): 'not-an-ip' is not \
             an IP address"
        )
    );

    let layers = Layers {
        cli: Args {
            ovn_remote: Some("http://sb".into()),
            ..Args::default()
        },
        ..Layers::default()
    };
    let m = layers.resolve().unwrap_err().to_string();
    assert!(
        m.starts_with("ovn_remote from command line --ovn-remote: 'http://sb'"),
        "{m}"
    );

    let layers = Layers {
        file: Some(file("encap_type = \"gre\"")),
        ..Layers::default()
    };
    let m = layers.resolve().unwrap_err().to_string();
    assert!(m.contains("'gre' is not one of geneve, stt, vxlan"), "{m}");

    let layers = Layers {
        file: Some(file("chassis_name = \"has space\"")),
        ..Layers::default()
    };
    assert!(layers.resolve().is_err());

    let layers = Layers {
        file: Some(file("metrics_listen = \"localhost\"")),
        ..Layers::default()
    };
    let m = layers.resolve().unwrap_err().to_string();
    assert!(m.starts_with("metrics_listen from file "), "{m}");
}

#[test]
fn invalid_value_in_an_overridden_layer_is_ignored() {
    let layers = Layers {
        ovs: Some(ovs(&[("ovn-encap-ip", "garbage")], &[])),
        cli: Args {
            encap_ip: vec!["10.0.0.7".into()],
            ..Args::default()
        },
        ..Layers::default()
    };
    let c = layers.resolve().unwrap();
    assert_eq!(
        c.encap_ip.unwrap().value,
        vec!["10.0.0.7".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn empty_open_vswitch_values_count_as_unset() {
    let layers = Layers {
        ovs: Some(ovs(&[("system-id", ""), ("ovn-encap-ip", " , ")], &[])),
        ..Layers::default()
    };
    let c = layers.resolve().unwrap();
    assert!(c.chassis_name.is_none());
    assert!(c.encap_ip.is_none());
}

#[test]
fn missing_required_settings_are_listed_with_where_to_set_them() {
    let layers = Layers {
        ovs: Some(ovs(&[("system-id", "ch1")], &[])),
        ..Layers::default()
    };
    let c = layers.resolve().unwrap();
    assert_eq!(
        c.missing(),
        vec!["ovn_remote", "certificate", "private_key", "ca_cert"]
    );
    let m = c.required().unwrap_err().to_string();
    assert!(
        m.starts_with(
            "missing configuration: ovn_remote (Open_vSwitch external_ids:ovn-remote, \
             ovn_remote in the TOML file, or --ovn-remote); certificate ("
        ),
        "{m}"
    );
}

#[test]
fn printed_configuration_shows_each_source_and_parses_back() {
    let layers = Layers {
        ovs: Some(node_row()),
        file: Some(file("ca_cert = \"/file/ca.pem\"")),
        cli: Args {
            chassis_name: Some("ch1\"quoted".into()),
            ..Args::default()
        },
        notes: vec!["a note".into()],
    };
    let c = layers.resolve().unwrap();
    let text = c.render();
    assert!(text.contains("# note: a note\n"), "{text}");
    assert!(
        text.contains(&format!(
            "private_key = \"/etc/ipsec.d/private/ch1-privkey.pem\"  # Open_vSwitch \
             other_config:private_key ({OVS})\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("ca_cert = \"/file/ca.pem\"  # file /etc/ovn-ipsec/test.toml\n"),
        "{text}"
    );
    assert!(
        text.contains("encap_ip = [\"10.0.0.1\", \"fd00::1\"]  # Open_vSwitch"),
        "{text}"
    );
    assert!(text.contains("# command line --chassis-name\n"), "{text}");
    assert!(text.contains("# metrics_listen: unset ("), "{text}");

    // The output is itself a valid configuration file giving the same values.
    let again = FileConfig::parse(Path::new("printed.toml"), &text).unwrap();
    assert_eq!(again.chassis_name.as_deref(), Some("ch1\"quoted"));
    let reread = Layers {
        file: Some((PathBuf::from("printed.toml"), again)),
        ..Layers::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(
        reread.ovn_remote.unwrap().value,
        c.ovn_remote.unwrap().value
    );
    assert_eq!(reread.encap_ip.unwrap().value, c.encap_ip.unwrap().value);
}

#[test]
fn select_reply_is_parsed_and_checked() {
    let reply = vec![json!({"rows": [{
        "external_ids": ["map", [["system-id", "ch1"], ["ovn-remote", "tcp:1.2.3.4:6642"]]],
        "other_config": ["map", []]
    }]})];
    let v = parse_select_reply(OVS, &reply).unwrap();
    assert_eq!(v.external_ids["system-id"], "ch1");
    assert!(v.other_config.is_empty());

    let no_row = parse_select_reply(OVS, &[json!({"rows": []})]).unwrap_err();
    assert!(no_row.to_string().contains("has no row"), "{no_row}");
    for bad in [
        json!({}),
        json!({"rows": [{"external_ids": ["set", []]}]}),
        json!({"rows": [{"external_ids": ["map", [["k", 1]]]}]}),
        json!({"rows": [{"other_config": ["map", "x"]}]}),
    ] {
        assert!(
            matches!(
                parse_select_reply(OVS, std::slice::from_ref(&bad)),
                Err(OvsReadError::Malformed { .. })
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn unreachable_default_database_is_a_note_but_a_named_one_is_an_error() {
    let dir = std::env::temp_dir().join(format!("ovn-ipsec-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "chassis_name = \"ch1\"\n").unwrap();

    let args = Args {
        config: Some(cfg.clone()),
        ovs_db: Some(format!("unix:{}", dir.join("absent.sock").display())),
        ..Args::default()
    };
    let e = load(args).await.unwrap_err();
    assert!(matches!(e, ConfigError::OpenVswitch { .. }), "{e}");
    assert!(e.to_string().contains("command line --ovs-db"), "{e}");

    // A named configuration file must exist.
    let args = Args {
        config: Some(dir.join("absent.toml")),
        ..Args::default()
    };
    let e = load(args).await.unwrap_err();
    assert!(
        e.to_string().starts_with("cannot read configuration file"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
