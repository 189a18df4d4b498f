use super::*;
use crate::notify::payload::EventType;

fn defaults() -> EventSet {
    [
        EventType::ImageRolloutCompleted,
        EventType::ImageRolloutFailed,
    ]
    .into_iter()
    .collect()
}

fn one(url: &str) -> Receiver {
    let mut all = parse_notify_urls(Some(url), None, defaults()).unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn problem(urls: &str, endpoint_override: Option<&str>) -> ReceiverError {
    parse_notify_urls(Some(urls), endpoint_override, defaults()).unwrap_err()
}

#[test]
fn an_unset_or_blank_value_configures_no_receiver() {
    assert!(
        parse_notify_urls(None, None, defaults())
            .unwrap()
            .is_empty()
    );
    assert!(
        parse_notify_urls(Some(" \n\t "), None, defaults())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn both_slack_webhook_forms_post_to_the_same_incoming_webhook() {
    let legacy = one("slack://T0001/B0002/XXXXSECRET");
    let hook = one("slack://hook:T0001-B0002-XXXXSECRET@webhook");
    for receiver in [&legacy, &hook] {
        assert_eq!(receiver.service, Service::Slack);
        assert_eq!(
            receiver.endpoint.as_str(),
            "https://hooks.slack.com/services/T0001/B0002/XXXXSECRET"
        );
        assert_eq!(receiver.username, None);
        assert_eq!(receiver.events, defaults());
    }
    assert_eq!(legacy.masked, "slack://***");
    assert_eq!(hook.masked, "slack://hook:***@webhook");
}

#[test]
fn a_slack_botname_becomes_the_message_username() {
    let receiver = one("slack://watch%20bot@T0001/B0002/XXXXSECRET");
    assert_eq!(receiver.username.as_deref(), Some("watch bot"));
    assert_eq!(
        receiver.endpoint.as_str(),
        "https://hooks.slack.com/services/T0001/B0002/XXXXSECRET"
    );
    assert_eq!(receiver.masked, "slack://watch%20bot@***");
}

#[test]
fn the_slack_bot_api_form_is_refused_naming_the_webhook_form() {
    let error = problem(
        "slack://xoxb:123456789012-1234567890123-SeCrEt@C001CH4NN3L",
        None,
    );
    let shown = error.to_string();
    assert!(
        shown.contains("slack://hook:token-a-token-b-token-c@webhook"),
        "{shown}"
    );
    assert!(
        shown.starts_with("NOTIFY_URLS: slack://xoxb:***@C001CH4NN3L: "),
        "{shown}"
    );
}

#[test]
fn malformed_slack_tokens_are_refused_with_the_expected_shape() {
    for url in [
        "slack://T0001/B0002",
        "slack://T0001/B0002/C3/D4",
        "slack://hook:T0001-B0002@webhook",
        "slack://hook:T0001-B0002-C3@elsewhere",
        "slack://T0001/B0002/bad$token",
        "slack://@T0001/B0002/C3",
    ] {
        let shown = problem(url, None).to_string();
        assert!(shown.contains("slack://"), "{url}: {shown}");
        assert!(!shown.contains("B0002"), "{url} leaks a token: {shown}");
    }
}

#[test]
fn discord_posts_to_the_webhook_with_id_then_token() {
    let receiver = one("discord://SeCrEtToKeN@123456789");
    assert_eq!(receiver.service, Service::Discord);
    assert_eq!(
        receiver.endpoint.as_str(),
        "https://discord.com/api/webhooks/123456789/SeCrEtToKeN"
    );
    assert_eq!(receiver.masked, "discord://***@123456789");
    for url in [
        "discord://123456789",
        "discord://tok@notdigits",
        "discord://@123",
    ] {
        let shown = problem(url, None).to_string();
        assert!(
            shown.contains("discord://token@webhookid"),
            "{url}: {shown}"
        );
    }
}

#[test]
fn teams_keeps_the_whole_workflows_url_with_its_signature() {
    let url = "teams+https://example.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SiGsEcReT&events=IMAGE_ROLLOUT_FAILED";
    let receiver = one(url);
    assert_eq!(receiver.service, Service::Teams);
    assert_eq!(
        receiver.endpoint.as_str(),
        "https://example.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SiGsEcReT"
    );
    assert_eq!(
        receiver.events,
        EventSet::NONE.with(EventType::ImageRolloutFailed)
    );
    assert_eq!(
        receiver.masked,
        "teams+https://example.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=***&sp=***&sv=***&sig=***&events=IMAGE_ROLLOUT_FAILED"
    );
}

#[test]
fn the_retired_teams_connector_form_names_the_workflows_form() {
    let shown = problem("teams://group@tenant/altId/groupOwner", None).to_string();
    assert!(shown.contains("teams+https://"), "{shown}");
    assert!(!shown.contains("group@tenant"), "{shown}");
}

#[test]
fn generic_keeps_userinfo_and_query_for_the_request() {
    let receiver = one(
        "generic+https://user:pa55@hooks.example/path?token=QuErYsEcReT&events=IMAGE_ROLLOUT_COMPLETED",
    );
    assert_eq!(receiver.service, Service::Generic);
    assert_eq!(
        receiver.endpoint.as_str(),
        "https://user:pa55@hooks.example/path?token=QuErYsEcReT"
    );
    assert_eq!(
        receiver.masked,
        "generic+https://***@hooks.example/path?token=***&events=IMAGE_ROLLOUT_COMPLETED"
    );
    let plain = one("generic+http://127.0.0.1:9000/in");
    assert_eq!(plain.endpoint.as_str(), "http://127.0.0.1:9000/in");
    let shown = problem("generic://hooks.example/path", None).to_string();
    assert!(shown.contains("generic+https://"), "{shown}");
}

#[test]
fn events_may_come_first_or_later_in_the_query_and_are_never_sent() {
    let first =
        one("generic+https://h.example/p?events=DEPLOYMENT_DETECTED,IMAGE_ROLLOUT_STARTED&a=1");
    assert_eq!(first.endpoint.as_str(), "https://h.example/p?a=1");
    assert_eq!(
        first.events,
        [
            EventType::DeploymentDetected,
            EventType::ImageRolloutStarted
        ]
        .into_iter()
        .collect()
    );
    let alone = one("discord://tok@42?events=IMAGE_ROLLOUT_STARTED");
    assert_eq!(alone.endpoint.query(), None);
    assert_eq!(
        alone.events,
        EventSet::NONE.with(EventType::ImageRolloutStarted)
    );
}

#[test]
fn unknown_empty_or_repeated_events_are_refused() {
    let unknown = problem("discord://tok@42?events=IMAGE_ROLLOUT_DONE", None).to_string();
    assert!(
        unknown.contains("unknown event `IMAGE_ROLLOUT_DONE`"),
        "{unknown}"
    );
    assert!(unknown.contains("IMAGE_ROLLOUT_COMPLETED"), "{unknown}");
    let empty = problem("discord://tok@42?events=", None).to_string();
    assert!(empty.contains("names no event"), "{empty}");
    let twice = problem(
        "discord://tok@42?events=IMAGE_ROLLOUT_FAILED&events=IMAGE_ROLLOUT_COMPLETED",
        None,
    )
    .to_string();
    assert!(twice.contains("twice"), "{twice}");
}

#[test]
fn urls_without_events_take_the_default_and_an_empty_default_is_an_error() {
    let started = EventSet::NONE.with(EventType::ImageRolloutStarted);
    let receivers = parse_notify_urls(Some("discord://tok@42"), None, started).unwrap();
    assert_eq!(receivers[0].events, started);
    let error = parse_notify_urls(Some("discord://tok@42"), None, EventSet::NONE).unwrap_err();
    assert!(error.to_string().contains("takes no event"), "{error}");
}

#[test]
fn unknown_schemes_and_text_that_is_no_url_are_refused() {
    let unknown = problem("telegram://SeCrEt@telegram?chats=1", None).to_string();
    assert_eq!(
        unknown,
        format!(
            "NOTIFY_URLS: telegram://***?chats=***: unknown scheme `telegram`; use one of {}",
            forms_list()
        )
    );
    let bare = problem("just-a-token", None).to_string();
    assert!(
        bare.starts_with("NOTIFY_URLS: ***: not a receiver URL"),
        "{bare}"
    );
    let no_host = problem("generic+https:///path", None).to_string();
    assert!(no_host.contains("host"), "{no_host}");
}

fn forms_list() -> &'static str {
    "slack://token-a/token-b/token-c, slack://hook:token-a-token-b-token-c@webhook, discord://token@webhookid, \
     teams+https://<Workflows URL>, generic+https://host/path"
}

#[test]
fn known_shoutrrr_parameters_are_ignored_and_unknown_ones_refused() {
    let parsed = parse_one(
        "slack://T0001/B0002/C3?color=good&title=Hi&botname=x&color=bad",
        &EndpointOverride::default(),
        defaults(),
    )
    .unwrap();
    assert_eq!(parsed.ignored, ["color", "title", "botname"]);
    assert_eq!(
        parsed.receiver.endpoint.as_str(),
        "https://hooks.slack.com/services/T0001/B0002/C3"
    );
    let discord = parse_one(
        "discord://tok@42?username=w&avatar=https%3A%2F%2Fa&splitlines=no",
        &EndpointOverride::default(),
        defaults(),
    )
    .unwrap();
    assert_eq!(discord.ignored, ["username", "avatar", "splitlines"]);
    let unknown = problem("slack://T0001/B0002/C3?channel2=x", None).to_string();
    assert!(
        unknown.contains("unknown parameter `channel2` for slack://"),
        "{unknown}"
    );
    let unknown = problem("discord://tok@42?foo=1", None).to_string();
    assert!(
        unknown.contains("unknown parameter `foo` for discord://"),
        "{unknown}"
    );
}

#[test]
fn ids_hash_the_configured_url_without_events() {
    // Pinned: `printf '%s' '<url>' | sha256sum | cut -c1-8`. Replicas and restarts must agree.
    let cases = [
        ("slack://T0001/B0002/XXXXSECRET", "slack:d6d84264"),
        ("discord://SeCrEtToKeN@123456789", "discord:004f6d67"),
        (
            "teams+https://example.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=SiGsEcReT",
            "teams:4ee0382b",
        ),
        (
            "generic+https://user:pa55@hooks.example/path?token=QuErYsEcReT",
            "generic:d228c966",
        ),
    ];
    for (url, id) in cases {
        assert_eq!(one(url).id, id, "{url}");
    }
    let with_events = one("discord://SeCrEtToKeN@123456789?events=IMAGE_ROLLOUT_FAILED");
    assert_eq!(with_events.id, "discord:004f6d67");
}

#[test]
fn the_same_receiver_twice_is_refused() {
    let error = problem(
        "discord://tok@42 slack://T1/B2/C3\ndiscord://tok@42?events=IMAGE_ROLLOUT_FAILED",
        None,
    );
    let shown = error.to_string();
    assert!(
        shown.contains("the same receiver as discord://***@42"),
        "{shown}"
    );
    assert!(!shown.contains("tok@"), "{shown}");
}

#[test]
fn several_receivers_keep_their_order() {
    let receivers = parse_notify_urls(
        Some("discord://tok@42  slack://T1/B2/C3\n\tgeneric+http://h.example/x"),
        None,
        defaults(),
    )
    .unwrap();
    let services: Vec<Service> = receivers.iter().map(|r| r.service).collect();
    assert_eq!(
        services,
        [Service::Discord, Service::Slack, Service::Generic]
    );
}

#[test]
fn the_endpoint_override_moves_scheme_host_and_port_and_keeps_path_and_query() {
    let urls = "slack://T1/B2/C3 discord://tok@42 \
                teams+https://t.example/workflows/w/invoke?api-version=1&sig=SiG \
                generic+https://u:p@g.example:8443/in?k=v";
    let receivers = parse_notify_urls(
        Some(urls),
        Some("slack=http://127.0.0.1:1001, discord=http://127.0.0.1:1002,teams=http://127.0.0.1:1003/,generic=http://localhost:1004"),
        defaults(),
    )
    .unwrap();
    let endpoints: Vec<&str> = receivers.iter().map(|r| r.endpoint.as_str()).collect();
    assert_eq!(
        endpoints,
        [
            "http://127.0.0.1:1001/services/T1/B2/C3",
            "http://127.0.0.1:1002/api/webhooks/42/tok",
            "http://127.0.0.1:1003/workflows/w/invoke?api-version=1&sig=SiG",
            "http://u:p@localhost:1004/in?k=v",
        ]
    );
    // The id is the configured URL's: moving the endpoint does not re-send delivered outcomes.
    assert_eq!(receivers[0].id, one("slack://T1/B2/C3").id);
}

#[test]
fn a_bad_endpoint_override_is_refused_naming_it() {
    for (value, expected) in [
        ("slack", "expected <scheme>=<base url>"),
        ("irc=http://h", "unknown scheme `irc`"),
        ("slack=not a url", "the base is not a URL"),
        ("slack=http://h/path", "http(s)://host[:port] only"),
        ("slack=ftp://h", "http(s)://host[:port] only"),
        ("slack=http://a, slack=http://b", "overridden twice"),
    ] {
        let error = problem("slack://T1/B2/C3", Some(value));
        assert_eq!(error.variable, "NOTIFY_ENDPOINT_OVERRIDE", "{value}");
        assert!(error.to_string().contains(expected), "{value}: {error}");
    }
    let with_userinfo = problem("slack://T1/B2/C3", Some("slack=http://user:SeCrEt@h")).to_string();
    assert!(!with_userinfo.contains("SeCrEt"), "{with_userinfo}");
}

/// Every secret of every form, valid or not: none may appear in an error, a receiver's Debug or `masked`.
#[test]
fn no_secret_appears_in_errors_debug_or_masked_forms() {
    let valid = [
        (
            "slack://bot@TSECRETA/BSECRETB/CSECRETC?events=IMAGE_ROLLOUT_FAILED",
            &["TSECRETA", "BSECRETB", "CSECRETC"][..],
        ),
        (
            "slack://hook:TSECRETA-BSECRETB-CSECRETC@webhook",
            &["TSECRETA", "BSECRETB", "CSECRETC"],
        ),
        ("discord://DSECRET@42", &["DSECRET"]),
        (
            "teams+https://t.example/w?api-version=1&sig=SIGSECRET",
            &["SIGSECRET"],
        ),
        (
            "generic+https://USERSECRET:PASSSECRET@g.example/p?k=QUERYSECRET",
            &["USERSECRET", "PASSSECRET", "QUERYSECRET"],
        ),
    ];
    for (url, secrets) in valid {
        let receiver = one(url);
        let shown = format!("{receiver:?} {}", receiver.masked);
        for secret in secrets {
            assert!(!shown.contains(secret), "{url}: {shown}");
        }
        // The same entry made invalid (an unknown event) is named in the error: masked the same way.
        let broken = if url.contains('?') {
            format!("{url}&events=NOPE")
        } else {
            format!("{url}?events=NOPE")
        };
        let error = problem(&broken, None);
        let shown = format!("{error} {error:?}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{broken}: {shown}");
        }
    }
    let invalid = [
        ("slack://xoxb:XOXBSECRET@C0001", "XOXBSECRET"),
        ("slack://TSECRETA/BSECRETB", "TSECRETA"),
        ("discord://DSECRET@notanid", "DSECRET"),
        ("teams://TEAMSSECRET@tenant/a/b", "TEAMSSECRET"),
        ("teams+https://[bad/w?sig=SIGSECRET", "SIGSECRET"),
        ("generic+https://USERSECRET@/p", "USERSECRET"),
        ("generic://USERSECRET@g.example", "USERSECRET"),
        ("smtp://MAILSECRET@mail.example", "MAILSECRET"),
        ("BARESECRET", "BARESECRET"),
    ];
    for (url, secret) in invalid {
        let error = problem(url, None);
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(secret), "{url}: {shown}");
    }
}

#[test]
fn the_documented_bot_api_error_is_the_one_given() {
    // docs/notifications.md#receivers quotes this line.
    assert_eq!(
        problem("slack://xoxb:123-456-SeCrEt@C001CH4NN3L", None).to_string(),
        "NOTIFY_URLS: slack://xoxb:***@C001CH4NN3L: the Slack bot API form (`xoxb:…@channel`) is not \
         supported; use an incoming webhook: slack://hook:token-a-token-b-token-c@webhook or \
         slack://[botname@]token-a/token-b/token-c"
    );
}

#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn ignored_shoutrrr_parameters_are_named_in_one_warning_per_receiver_without_secrets() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        parse_notify_urls(
            Some("slack://TSECRET/BSECRET/CSECRET?color=good&title=x discord://DSECRET@42?avatar=a discord://t@43"),
            None,
            defaults(),
        )
        .unwrap();
    });
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("ignored=color,title"),
        "{log}"
    );
    assert!(
        lines[0].contains("receiver=slack://***?color=***&title=***"),
        "{log}"
    );
    assert!(
        lines[1].contains("ignored=avatar") && lines[1].contains("discord://***@42"),
        "{log}"
    );
    for secret in ["TSECRET", "BSECRET", "CSECRET", "DSECRET"] {
        assert!(!log.contains(secret), "{log}");
    }
}
