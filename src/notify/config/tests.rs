//! Unit tests of `WEBHOOK_*` parsing: defaults, accepted forms, one-line errors, redaction, signing.

use clap::Parser;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    webhook: WebhookArgs,
}

fn args(flags: &[&str]) -> WebhookArgs {
    let argv = std::iter::once("watch-cluster").chain(flags.iter().copied());
    Cli::try_parse_from(argv).unwrap().webhook
}

fn error(args: WebhookArgs) -> String {
    args.into_config().unwrap_err().to_string()
}

#[test]
fn nothing_set_means_webhooks_disabled_with_spec_defaults() {
    let config = WebhookArgs::default().into_config().unwrap();
    assert!(config.receivers.is_empty());
    assert!(EventType::ALL.iter().all(|e| !config.sends(*e)));
    assert_eq!(config.timeout, Duration::from_millis(10_000));
    assert_eq!(config.retry_count, 3);
    assert_eq!(
        config.summary(),
        "webhooks disabled (WEBHOOK_URL and NOTIFY_URLS unset)"
    );
}

#[test]
fn every_variable_is_read_from_its_flag_and_booleans_ignore_case() {
    let config = args(&[
        "--webhook-url=https://hooks.example.com/x",
        "--webhook-enable-deployment-detected=TRUE",
        "--webhook-enable-image-rollout-started=False",
        "--webhook-enable-image-rollout-completed=tRuE",
        "--webhook-enable-image-rollout-failed=true",
        "--webhook-headers=X-Env=prod",
        "--webhook-timeout=2500",
        "--webhook-retry-count=0",
        "--webhook-secret=s3cr3t",
    ])
    .into_config()
    .unwrap();
    assert!(config.sends(EventType::DeploymentDetected));
    assert!(!config.sends(EventType::ImageRolloutStarted));
    assert!(config.sends(EventType::ImageRolloutCompleted));
    assert!(config.sends(EventType::ImageRolloutFailed));
    assert_eq!(config.headers.names(), ["x-env"]);
    assert_eq!(config.timeout, Duration::from_millis(2500));
    assert_eq!(config.retry_count, 0);
    assert!(config.secret.is_some());
}

#[test]
fn empty_values_count_as_unset() {
    let empty = || Some(String::new());
    let args = WebhookArgs {
        url: empty(),
        enable_deployment_detected: empty(),
        enable_image_rollout_started: empty(),
        enable_image_rollout_completed: empty(),
        enable_image_rollout_failed: empty(),
        headers: empty(),
        timeout: empty(),
        retry_count: empty(),
        secret: empty(),
        notify_urls: Some(" \n ".into()),
        notify_endpoint_override: empty(),
    };
    let config = args.into_config().unwrap();
    assert!(config.receivers.is_empty() && config.secret.is_none());
    assert_eq!(config.timeout, Duration::from_millis(10_000));
    assert_eq!(config.retry_count, 3);
}

#[test]
fn a_bad_number_is_one_line_naming_variable_value_and_example() {
    let bad = WebhookArgs {
        timeout: Some("10s".into()),
        ..WebhookArgs::default()
    };
    let err = bad.into_config().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"failed to read WEBHOOK_TIMEOUT="10s" (example: WEBHOOK_TIMEOUT=10000)"#
    );
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "expected a whole number of milliseconds greater than 0"
    );
    let zero = WebhookArgs {
        timeout: Some("0".into()),
        ..WebhookArgs::default()
    };
    assert!(error(zero).contains("WEBHOOK_TIMEOUT=\"0\""));
    let retries = WebhookArgs {
        retry_count: Some("-1".into()),
        ..WebhookArgs::default()
    };
    assert_eq!(
        error(retries),
        r#"failed to read WEBHOOK_RETRY_COUNT="-1" (example: WEBHOOK_RETRY_COUNT=3)"#
    );
}

#[test]
fn a_bad_boolean_names_its_variable() {
    let bad = WebhookArgs {
        enable_image_rollout_failed: Some("yes".into()),
        ..WebhookArgs::default()
    };
    assert_eq!(
        error(bad),
        r#"failed to read WEBHOOK_ENABLE_IMAGE_ROLLOUT_FAILED="yes" (example: WEBHOOK_ENABLE_IMAGE_ROLLOUT_FAILED=true)"#
    );
}

#[test]
fn headers_split_each_item_on_its_first_equals_sign() {
    let headers: ExtraHeaders = "Authorization=Basic YT1i==, X-Env = prod ,"
        .parse()
        .unwrap();
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("authorization".into(), "Basic YT1i==".into()),
            ("x-env".into(), "prod".into())
        ]
    );
    assert!(headers.iter().all(|(_, v)| v.is_sensitive()));
}

#[test]
fn bad_headers_are_rejected_without_showing_their_values() {
    let cases = [
        ("X-Token", "item 1 has no '='"),
        (
            "bad name=hunter2",
            "\"bad name\" is not a valid header name",
        ),
        (
            "X-Token=hunter2\u{7f}",
            "the value of header \"X-Token\" contains",
        ),
        (
            "Content-Type=text/plain",
            "header \"Content-Type\" is set by watch-cluster",
        ),
    ];
    for (raw, expected) in cases {
        let err = WebhookArgs {
            headers: Some(raw.into()),
            ..WebhookArgs::default()
        }
        .into_config()
        .unwrap_err();
        let line = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            line.starts_with("failed to read WEBHOOK_HEADERS=<withheld"),
            "{line}"
        );
        assert!(line.contains(expected), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
    }
}

#[test]
fn urls_must_be_absolute_http_and_are_never_echoed() {
    for raw in [
        "hooks.example.com/x?token=hunter2",
        "ftp://hunter2@example.com/",
    ] {
        let err = error(WebhookArgs {
            url: Some(raw.into()),
            ..WebhookArgs::default()
        });
        assert!(
            err.starts_with("failed to read WEBHOOK_URL=<withheld"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[test]
fn debug_and_summary_never_show_credentials() {
    let config = args(&[
        "--webhook-url=https://user:hunter2@hooks.example.com:8443/T0/hunter2?token=hunter2",
        "--webhook-headers=X-Token=hunter2",
        "--webhook-secret=hunter2",
        "--webhook-enable-image-rollout-completed=true",
    ]);
    let args_debug = format!("{config:?}");
    let config = config.into_config().unwrap();
    for text in [args_debug, format!("{config:?}"), config.summary()] {
        assert!(!text.contains("hunter2"), "{text}");
    }
    assert_eq!(
        config.summary(),
        "webhooks to https://hooks.example.com:8443/… events=[IMAGE_ROLLOUT_COMPLETED] \
         timeout=10000ms retries=3 headers=x-token signed=true"
    );
}

#[test]
fn signature_is_the_hex_hmac_sha256_of_the_exact_body() {
    // RFC 4231 test case 2.
    let secret: WebhookSecret = "Jefe".parse().unwrap();
    let body = b"what do ya want for nothing?";
    let signature = secret.sign(body);
    assert_eq!(
        signature,
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let hex = signature.strip_prefix("sha256=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
    mac.update(body);
    mac.verify_slice(&hex::decode(hex).unwrap()).unwrap();
    assert_ne!(secret.sign(b"what do ya want for nothing!"), signature);
}

#[test]
fn a_whitespace_only_webhook_secret_is_refused() {
    let error = error(args(&[
        "--webhook-url=https://h.example.com/x",
        "--webhook-secret=  \t ",
    ]));
    assert!(error.contains("WEBHOOK_SECRET"), "{error}");
    let accepted = args(&["--webhook-secret= padded secret "])
        .into_config()
        .unwrap();
    assert!(accepted.secret.is_some());
}

#[test]
fn webhook_url_is_the_receiver_webhook_with_the_toggled_events() {
    let config = args(&[
        "--webhook-url=https://hooks.example.com/x?token=hunter2",
        "--webhook-enable-image-rollout-failed=true",
    ])
    .into_config()
    .unwrap();
    let [receiver] = config.receivers() else {
        panic!("one receiver expected: {:?}", config.receivers());
    };
    assert_eq!(receiver.service, Service::Webhook);
    assert_eq!(receiver.id, "webhook");
    assert_eq!(receiver.masked, "https://hooks.example.com/…");
    assert_eq!(
        receiver.endpoint.as_str(),
        "https://hooks.example.com/x?token=hunter2"
    );
    assert_eq!(
        receiver.events.iter().collect::<Vec<_>>(),
        [EventType::ImageRolloutFailed]
    );
}

#[test]
fn a_bad_notify_url_stops_startup_with_one_line_that_hides_its_secrets() {
    // Whatever the parser objects to, the error is the receiver's own line, with the URL masked.
    let err = args(&["--notify-urls=nonsense://hunter2@example.com/hunter2"])
        .into_config()
        .unwrap_err();
    assert!(matches!(err, NotifyConfigError::Receiver(_)), "{err:?}");
    let line = err.to_string();
    assert!(line.starts_with("NOTIFY_URLS: "), "{line}");
    assert!(!line.contains("hunter2"), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

#[test]
fn notify_settings_are_withheld_from_debug() {
    let args = args(&[
        "--notify-urls=slack://hook:hunter2@webhook",
        "--notify-endpoint-override=slack=http://hunter2.example:1",
    ]);
    let debug = format!("{args:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains("notify_urls: Some(\"<redacted>\")"),
        "{debug}"
    );
}
