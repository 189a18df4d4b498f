//! Unit tests of the Azure provider's pure parts: the environment, the authority, expiry and refusal text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| {
        owned
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

const FULL: [(&str, &str); 3] = [
    ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
    ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
    (
        "AZURE_FEDERATED_TOKEN_FILE",
        "/var/run/secrets/azure/tokens/azure-identity-token",
    ),
];

#[test]
fn each_missing_variable_is_named_with_the_fix() {
    for missing in [
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
    ] {
        let rest: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        let err = WorkloadIdentity::from_vars(vars(&rest), None).unwrap_err();
        assert_eq!(err.step, "Azure Workload Identity");
        assert!(
            err.message.starts_with(&format!("{missing} is not set")),
            "{err}"
        );
        assert!(err.message.contains("azure.workload.identity/use"), "{err}");
    }
}

#[test]
fn a_tenant_that_would_change_the_token_path_is_refused() {
    for tenant in ["a/b", "../x", "t?x=1", "t#f"] {
        let mut with = FULL.to_vec();
        with[1] = ("AZURE_TENANT_ID", tenant);
        let err = WorkloadIdentity::from_vars(vars(&with), None).unwrap_err();
        assert!(err.message.contains("AZURE_TENANT_ID"), "{err}");
    }
}

#[test]
fn the_authority_follows_the_registry_cloud_unless_overridden() {
    let identity = WorkloadIdentity::from_vars(vars(&FULL), None).unwrap();
    let url = |host: &str| identity.token_url(host).unwrap().to_string();
    assert_eq!(
        url("myacr.azurecr.io"),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(
        url("myacr.azurecr.cn"),
        "https://login.chinacloudapi.cn/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(
        url("myacr.azurecr.us"),
        "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    for authority in ["https://login.example/", "https://login.example"] {
        let overridden = WorkloadIdentity {
            authority: Some(Url::parse(authority).unwrap()),
            ..identity.clone()
        };
        assert_eq!(
            overridden.token_url("myacr.azurecr.io").unwrap().as_str(),
            "https://login.example/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
    }
}

#[test]
fn the_expiry_is_the_jwt_exp_when_readable() {
    let payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1800000000,"sub":"x"}"#);
    assert_eq!(
        jwt_expiry(&format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig")),
        Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    );
    assert_eq!(jwt_expiry("opaque-token"), None);
    assert_eq!(jwt_expiry("a.!!!.c"), None);
    let no_exp = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
    assert_eq!(jwt_expiry(&format!("a.{no_exp}.c")), None);
}

#[test]
fn refusals_are_reduced_to_their_first_line() {
    let entra = br#"{"error":"invalid_client","error_description":"AADSTS700016: Application with identifier 'x' was not found.\r\nTrace ID: 1\r\nCorrelation ID: 2"}"#;
    assert_eq!(
        entra_reason(entra),
        "AADSTS700016: Application with identifier 'x' was not found."
    );
    assert_eq!(
        entra_reason(br#"{"error":"invalid_grant"}"#),
        "invalid_grant"
    );
    let acr = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
    assert_eq!(acr_reason(acr), "UNAUTHORIZED authentication required");
    assert_eq!(acr_reason(b"plain\ntext"), "plain text");
}
