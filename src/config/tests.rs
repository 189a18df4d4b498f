#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

fn args() -> RunArgs {
    RunArgs::default()
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let config = Config::from_args(&args()).unwrap();
    assert!(config.watch_namespaces.is_empty());
    assert_eq!(config.registry_cache_ttl, Duration::from_secs(30));
    assert_eq!(config.rollout_timeout, None);
    assert_eq!(config.time_zone, chrono_tz::UTC);
    assert!(!config.dry_run);
    assert!(config.leader_election);
    assert!(config.registry_sharing);
    assert_eq!(config.admin_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(config.max_concurrent_checks, 64);
    assert_eq!(config.max_concurrent_rollouts, 0, "unbounded");
}

#[test]
fn max_concurrent_rollouts_is_zero_for_unbounded_or_a_bound() {
    for (value, expected) in [("0", 0), ("5", 5), (" 200 ", 200)] {
        let args = RunArgs {
            max_concurrent_rollouts: Some(value.into()),
            ..args()
        };
        assert_eq!(
            Config::from_args(&args).unwrap().max_concurrent_rollouts,
            expected
        );
    }
    for bad in ["-1", "five", "1.5", "100000"] {
        let args = RunArgs {
            max_concurrent_rollouts: Some(bad.into()),
            ..args()
        };
        let error = Config::from_args(&args).unwrap_err();
        assert_eq!(error.variable, "MAX_CONCURRENT_ROLLOUTS", "{bad}");
        assert_eq!(error.example, "5");
    }
}

#[test]
fn max_concurrent_checks_is_a_positive_bound() {
    let two = RunArgs {
        max_concurrent_checks: Some("2".into()),
        ..args()
    };
    assert_eq!(Config::from_args(&two).unwrap().max_concurrent_checks, 2);
    for bad in ["0", "-1", "many", "100000"] {
        let args = RunArgs {
            max_concurrent_checks: Some(bad.into()),
            ..args()
        };
        let error = Config::from_args(&args).unwrap_err();
        assert_eq!(error.variable, "MAX_CONCURRENT_CHECKS", "{bad}");
    }
}

#[test]
fn registry_sharing_can_be_turned_off_for_the_benchmark_baseline() {
    let off = RunArgs {
        registry_sharing: Some("false".into()),
        ..args()
    };
    assert!(!Config::from_args(&off).unwrap().registry_sharing);
    let bad = RunArgs {
        registry_sharing: Some("no".into()),
        ..args()
    };
    assert_eq!(
        Config::from_args(&bad).unwrap_err().variable,
        "REGISTRY_SHARING"
    );
}

#[test]
fn empty_values_count_as_unset() {
    let a = RunArgs {
        watch_namespaces: Some(String::new()),
        dry_run: Some(" ".into()),
        registry_cache_ttl: Some(String::new()),
        ..args()
    };
    let config = Config::from_args(&a).unwrap();
    assert!(config.watch_namespaces.is_empty());
    assert!(!config.dry_run);
    assert_eq!(config.registry_cache_ttl, Duration::from_secs(30));
}

#[test]
fn durations_accept_units_and_plain_seconds() {
    for (input, secs) in [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("45", 45),
        ("5d", 432_000),
        ("1h30m", 5400),
        ("1d12h", 129_600),
    ] {
        assert_eq!(
            parse_duration("X", input, "1s").unwrap(),
            Duration::from_secs(secs)
        );
    }
    for bad in [
        "",
        "-1",
        "1.5m",
        "0",
        "0m",
        "m",
        "99999999999999h",
        "367d",
        "30m1h",
        "1h 30m",
    ] {
        assert!(parse_duration("X", bad, "1s").is_err(), "{bad}");
    }
}

#[test]
fn a_bad_value_names_the_variable_the_value_and_an_example() {
    let a = RunArgs {
        rollout_timeout: Some("soon".into()),
        ..args()
    };
    let err = Config::from_args(&a).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid ROLLOUT_TIMEOUT=\"soon\": expected <n>s, <n>m, <n>h, <n>d, a compound like 1h30m, or plain seconds (example: ROLLOUT_TIMEOUT=15m)"
    );
    assert!(!err.contains('\n'));
}

#[test]
fn namespaces_and_registries_are_validated_and_deduplicated() {
    let a = RunArgs {
        watch_namespaces: Some("team-a, team-b,team-a".into()),
        insecure_registries: Some("registry.local:5000,10.0.0.5".into()),
        ..args()
    };
    let config = Config::from_args(&a).unwrap();
    assert_eq!(config.watch_namespaces, ["team-a", "team-b"]);
    assert_eq!(
        config.insecure_registries,
        ["registry.local:5000", "10.0.0.5"]
    );
    for (ns, reg) in [("Team", ""), ("", "http://x:5000"), ("", "host:port")] {
        let a = RunArgs {
            watch_namespaces: Some(ns.into()),
            insecure_registries: Some(reg.into()),
            ..args()
        };
        assert!(Config::from_args(&a).is_err(), "{ns} {reg}");
    }
}

#[test]
fn booleans_zones_and_addresses_are_checked() {
    let ok = RunArgs {
        dry_run: Some("TRUE".into()),
        leader_election: Some("false".into()),
        time_zone: Some(":Europe/Berlin".into()),
        admin_addr: Some("127.0.0.1:9000".into()),
        ..args()
    };
    let config = Config::from_args(&ok).unwrap();
    assert!(config.dry_run && !config.leader_election);
    assert_eq!(config.time_zone, chrono_tz::Europe::Berlin);
    for bad in [
        RunArgs {
            dry_run: Some("yes".into()),
            ..args()
        },
        RunArgs {
            time_zone: Some("Mars/Olympus".into()),
            ..args()
        },
        RunArgs {
            admin_addr: Some("localhost".into()),
            ..args()
        },
        RunArgs {
            registry_ca_file: Some("/nonexistent/ca.pem".into()),
            ..args()
        },
    ] {
        assert!(Config::from_args(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn log_format_accepts_text_and_json_only() {
    let mut a = LogArgs::default();
    assert_eq!(a.format().unwrap(), LogFormat::Text);
    a.log_format = Some("JSON".into());
    assert_eq!(a.format().unwrap(), LogFormat::Json);
    a.log_format = Some("xml".into());
    assert_eq!(a.format().unwrap_err().variable, "LOG_FORMAT");
}

#[test]
fn a_namespace_list_of_only_commas_is_an_error_not_all_namespaces() {
    for value in [",,,", " , ,"] {
        let bad = RunArgs {
            watch_namespaces: Some(value.into()),
            ..args()
        };
        let error = Config::from_args(&bad).unwrap_err();
        assert_eq!(error.variable, "WATCH_NAMESPACES");
        assert!(error.problem.contains("unset"), "{error}");
    }
}

const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBlzCCAT2gAwIBAgIUVpWg5bDfdCwo07XBgju8CzmllnYwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVd2F0Y2gtY2x1c3Rlci10ZXN0LWNhMCAXDTI2MTIwNjAzNDky
MloYDzIxMjYxMTEyMDM0OTIyWjAgMR4wHAYDVQQDDBV3YXRjaC1jbHVzdGVyLXRl
c3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATt0GmBHT/2c8dzx7dWPW1f
c0RapLlrWtArnb7kRS3t3mvuD8xO0APruyaXqv8MbN+24ZNaAWlWvh4EKkVhqgsw
o1MwUTAdBgNVHQ4EFgQUQ/fNZFyOgEOwWr9aizEh108799wwHwYDVR0jBBgwFoAU
Q/fNZFyOgEOwWr9aizEh108799wwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNIADBFAiAc6827Rw8Shkw0DS1JIcz5hSUM8f59PWYFCi4yPwk9lAIhAPlnBFDF
p2fSIVIDq5+2i6uUNgr77FLG1SkA7kR2PKdJ
-----END CERTIFICATE-----
";

#[test]
fn a_registry_ca_file_without_a_certificate_is_a_config_error_naming_what_was_found() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n".as_bytes(),
            "PRIVATE KEY",
        ),
        (
            "notes.txt",
            b"hello, I am not a certificate\n",
            "hello, I am not a certificate",
        ),
        ("ca.der", &[0x30, 0x82, 0x01, 0x97, 0xff, 0xfe], "binary"),
        ("empty.pem", b"", "empty"),
    ];
    for (name, content, found) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let bad = RunArgs {
            registry_ca_file: Some(path.display().to_string()),
            ..args()
        };
        let error = Config::from_args(&bad).unwrap_err();
        let shown = error.to_string();
        assert_eq!(error.variable, "REGISTRY_CA_FILE");
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(shown.contains(found), "{shown}");
        assert!(shown.contains("-----BEGIN CERTIFICATE-----"), "{shown}");
        assert_eq!(shown.lines().count(), 1, "{shown}");
    }
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, TEST_CA).unwrap();
    let ok = RunArgs {
        registry_ca_file: Some(good.display().to_string()),
        ..args()
    };
    assert_eq!(Config::from_args(&ok).unwrap().registry_ca_file, Some(good));
}

#[test]
fn quarantine_scope_is_workload_unless_cluster_is_asked_for() {
    assert_eq!(
        Config::from_args(&args()).unwrap().quarantine_scope,
        QuarantineScope::Workload
    );
    for (value, scope) in [
        ("cluster", QuarantineScope::Cluster),
        ("Cluster", QuarantineScope::Cluster),
        ("workload", QuarantineScope::Workload),
        ("", QuarantineScope::Workload),
    ] {
        let given = RunArgs {
            quarantine_scope: Some(value.into()),
            ..args()
        };
        assert_eq!(
            Config::from_args(&given).unwrap().quarantine_scope,
            scope,
            "{value}"
        );
    }
    let bad = RunArgs {
        quarantine_scope: Some("namespace".into()),
        ..args()
    };
    assert_eq!(
        Config::from_args(&bad).unwrap_err().to_string(),
        "invalid QUARANTINE_SCOPE=\"namespace\": expected `workload` or `cluster` (example: QUARANTINE_SCOPE=cluster)"
    );
}

#[test]
fn verify_keys_are_loaded_at_startup_and_a_bad_key_names_the_variable_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("release.pub");
    // A P-256 SPKI (the public half of a throwaway key).
    std::fs::write(
        &key,
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEvj9QSU4O2J9GjoJOEnsVgMby3Naq\n\
         wsuMPJaaF/5biww760n0lu7OtM+ciJ8MTtjNRRbWiQDY3c5BK3gTnff2cQ==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let verify_args = |keys: Option<&str>, required: Option<&str>| RunArgs {
        verify_keys: keys.map(str::to_owned),
        verify_required_for: required.map(str::to_owned),
        ..args()
    };
    let config = Config::from_args(&verify_args(key.to_str(), Some("ghcr.io/acme/**"))).unwrap();
    let keys = config.verify.keys.unwrap();
    assert_eq!(keys.keys()[0].name.file, "release.pub");
    assert!(config.verify.required_for.matches("ghcr.io/acme/team/app"));
    assert!(
        Config::from_args(&verify_args(Some(""), None))
            .unwrap()
            .verify
            .keys
            .is_none()
    );

    std::fs::write(dir.path().join("notes.txt"), "not a key").unwrap();
    let error = Config::from_args(&verify_args(dir.path().to_str(), None)).unwrap_err();
    assert_eq!(error.variable, "VERIFY_KEYS");
    assert!(error.problem.contains("notes.txt"), "{error}");
}

#[test]
fn verify_required_for_without_keys_or_with_a_bad_glob_is_refused() {
    let error = Config::from_args(&RunArgs {
        verify_required_for: Some("ghcr.io/acme/**".into()),
        ..args()
    })
    .unwrap_err();
    assert_eq!(error.variable, "VERIFY_REQUIRED_FOR");
    assert!(error.problem.contains("VERIFY_KEYS"), "{error}");
    let error = Config::from_args(&RunArgs {
        verify_required_for: Some("nginx".into()),
        ..args()
    })
    .unwrap_err();
    assert!(error.problem.contains("host/repository"), "{error}");
}
