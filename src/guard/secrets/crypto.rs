//! Key material beyond PEM armour (the `PrivateKey` builtin): PuTTY key
//! files (the private lines), base64 DER without armour (PKCS#12, PKCS#8, PKCS#1, SEC1,
//! OpenSSH), GCP service-account JSON, age, JWK, WireGuard, OpenVPN keys.
//!
//! The base64 DER prefixes are the fixed header bytes of each structure
//! encoded: a DER `SEQUENCE` with a two-byte length (`30 82 hi lo`, the
//! `MII` + two length characters; the third character's low bits are the
//! next byte's high ones, hence `[AQgw]`), then the version.

use super::{assign, rule, validate, wb, Check, SecretRule};

/// Continuation lines of 64 base64 characters, as PEM bodies wrap (the
/// newlines arrive as single spaces), then padding.
macro_rules! b64_body {
    () => {
        r"[A-Za-z0-9+/]*(?: [A-Za-z0-9+/]{64})*={0,2}"
    };
}

pub const RULES: &[SecretRule] = &[
    rule!(
        PuttyPrivateKey,
        PUTTY_PRIVATE_KEY,
        ["putty-user-key-file-"],
        concat!(
            r"PuTTY-User-Key-File-[23]: [a-z0-9-]{7,24} Encryption: [a-z0-9-]{4,16} ",
            r"[A-Za-z0-9_.~+/=!@#%^&*?:$ -]{0,6000}?Private-Lines: [0-9]{1,3} ([A-Za-z0-9+/= ]{40,8000}?) ",
            r"Private-(?:MAC|Hash): [0-9a-f]{40,64}"
        ),
        Some(1),
        Check::KeyMaterial(40),
        16384,
        "PuTTY-User-Key-File-3: ssh-ed25519 Encryption: none Comment: ed25519-key-2024 Public-Lines: 2 AAAAC3NzaC1lZDI1NTE5AAAAI{b:40} {b:8} Private-Lines: 1 [[AAAAI{b:43}]] Private-MAC: {h:64}"
    ),
    rule!(
        Pkcs12Base64,
        PKCS12_BUNDLE,
        ["ibazcc"],
        concat!(wb!(), r"MII[A-Za-z0-9+/]{2}[AQgw]IBAzCC[A-Za-z0-9+/]{200}", b64_body!()),
        None,
        Check::KeyMaterial(200),
        16384,
        "[[MIIKYQIBAzCCCicGCSqGSIb3DQEHAaCCChgEggoUMIIKEDCCBMcGCSqGSIb3DQEHBqCCBLgwggS0{b:260}]]"
    ),
    rule!(
        Pkcs8RsaPrivateKeyBase64,
        PRIVATE_KEY,
        ["ibadanbgkqhkig9w0baqefaas"],
        concat!(wb!(), r"MII[A-Za-z0-9+/]{2}[AQgw]IBADANBgkqhkiG9w0BAQEFAAS[A-Za-z0-9+/]{100}", b64_body!()),
        None,
        Check::KeyMaterial(200),
        16384,
        "[[MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ{b:200}]]"
    ),
    rule!(
        Pkcs1RsaPrivateKeyBase64,
        PRIVATE_KEY,
        ["ibaakc"],
        concat!(wb!(), r"MII[A-Za-z0-9+/]{2}[AQgw]IBAAKC[A-Za-z0-9+/]{100}", b64_body!()),
        None,
        Check::KeyMaterial(200),
        16384,
        "[[MIIEpAIBAAKCAQEA{b:240}]]"
    ),
    rule!(
        EcPrivateKeyBase64,
        PRIVATE_KEY,
        ["mhccaqeei", "mih"],
        concat!(wb!(), r"(?:MHcCAQEEI|MIGkAgEBBDA|MIHcAgEBBEI)[A-Za-z0-9+/]{90}", b64_body!()),
        None,
        Check::KeyMaterial(100),
        600,
        "[[MHcCAQEEI{b:43}oAoGCCqGSM49AwEHoUQDQgAE{b:86}]]"
    ),
    rule!(
        Ed25519PrivateKeyBase64,
        PRIVATE_KEY,
        ["mc4caqawbqydk2vwbciei"],
        concat!(wb!(), r"MC4CAQAwBQYDK2VwBCIEI[A-Za-z0-9+/]{43}="),
        None,
        Check::Random(20),
        65,
        "[[MC4CAQAwBQYDK2VwBCIEI{b:43}=]]"
    ),
    rule!(
        OpenSshPrivateKeyBody,
        PRIVATE_KEY,
        ["b3blbnnzac1rzxktdjeaaaaa"],
        concat!(wb!(), r"b3BlbnNzaC1rZXktdjEAAAAA[A-Za-z0-9+/]{100}", b64_body!()),
        None,
        Check::KeyMaterial(150),
        16384,
        "[[b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW{b:200}]]"
    ),
    rule!(
        GcpServiceAccountKey,
        GCP_SERVICE_ACCOUNT_KEY,
        ["service_account"],
        concat!(
            r#""type" ?: ?"service_account" ?,[^{}]{0,600}?"private_key" ?: ?""#,
            r#"(-----BEGIN (?:RSA )?PRIVATE KEY-----[A-Za-z0-9+/=\\ ]{100,8000}-----END (?:RSA )?PRIVATE KEY-----(?:\\n)?)""#
        ),
        Some(1),
        Check::KeyMaterial(200),
        9000,
        r#"{"type": "service_account", "project_id": "{l:10}", "private_key_id": "{h:40}", "private_key": "[[-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC{b:32}\n{b:64}\n{b:64}\n{b:40}==\n-----END PRIVATE KEY-----\n]]", "client_email": "x@y.iam.gserviceaccount.com"}"#
    ),
    rule!(
        AgeSecretKey,
        AGE_SECRET_KEY,
        ["age-secret-key-1"],
        concat!(wb!(), r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", wb!()),
        None,
        Check::Random(16),
        74,
        "[[AGE-SECRET-KEY-1{B:58}]]"
    ),
    rule!(
        JwkPrivateKey,
        JWK_PRIVATE_KEY,
        ["kty"],
        r#""kty" ?: ?"(?:RSA|EC|OKP)"[^{}]{0,3000}?"d" ?: ?"([A-Za-z0-9_-]{40,1000})""#,
        Some(1),
        Check::Random(16),
        4200,
        r#"{"kty": "EC", "crv": "P-256", "x": "{u:43}", "y": "{u:43}", "d": "[[{u:43}]]"}"#
    ),
    rule!(
        WireGuardPrivateKey,
        WIREGUARD_PRIVATE_KEY,
        ["privatekey"],
        r"PrivateKey ?= ?([A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=)",
        Some(1),
        Check::Random(16),
        60,
        "[Interface] Address = 10.0.0.1/24 PrivateKey = [[{b:42}A=]] ListenPort = 51820"
    ),
    rule!(
        OpenVpnStaticKey,
        OPENVPN_STATIC_KEY,
        ["openvpn static key"],
        r"-----BEGIN OpenVPN Static key V1-----(?: ?[0-9a-f]{32}){16} ?-----END OpenVPN Static key V1-----",
        None,
        Check::KeyMaterial(256),
        700,
        "[[-----BEGIN OpenVPN Static key V1----- {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} {h:32} -----END OpenVPN Static key V1-----]]"
    ),
    rule!(
        HexPrivateKeyAssignment,
        PRIVATE_KEY,
        ["private_key", "privatekey", "priv_key", "signing_key"],
        concat!(
            "(?i:private_key|privatekey|priv_key|signing_key|eth_private_key|wallet_key)",
            r#"["']? ?(?::=|=>|=|:) ?["']?(?:0x)?([A-Za-z0-9]+)"#
        ),
        Some(1),
        Check::Shape(64, validate::hex_any_case, 10),
        110,
        "PRIVATE_KEY=0x[[{h:64}]]"
    ),
    rule!(
        JwtSigningSecret,
        JWT_SECRET,
        ["jwt_secret", "jwt_signing_key"],
        assign!("(?i:jwt_secret|jwt_secret_key|jwt_signing_key|jwt_signing_secret|jwt_key)", r"[A-Za-z0-9_.~+/=!@#%^&*?-]{16,200}"),
        Some(1),
        Check::Generic(3.5),
        230,
        "JWT_SECRET=[[{a:40}]]"
    ),
];
