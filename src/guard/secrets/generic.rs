//! Generic credentials: passwords, secrets, tokens and API keys assigned in
//! env, YAML, JSON, TOML, INI, XML and shell forms (the value only is
//! masked, and only above an entropy floor), credentials in URLs (the
//! password only), `Authorization` and API-key headers in pasted
//! commands, connection strings.
//!
//! Keyword rules require the keyword right before the assignment
//! (`DB_PASSWORD=…` matches through `password=`; `password_file=…` does
//! not), so the prefilter's gate is the keyword and a hit is judged on a
//! short region.

use super::{assign, rule, Check, SecretRule};

/// A literal value: no white space, quotes, brackets, `$` (so `${VAR}`,
/// `$VAR`, `<your-key>`, `{{ .Values.x }}` never match), `,` or `;`.
macro_rules! value {
    ($min:literal, $max:literal) => {
        concat!(r"[A-Za-z0-9_.~+/=!@#%^&*?-]{", $min, ",", $max, "}")
    };
}

/// A URL password: anything but white space, quotes, `:`, `/`, `@`,
/// brackets.
macro_rules! url_password {
    () => {
        r"([A-Za-z0-9._~+!$&*=%#^,;-]{1,128})@"
    };
}

/// The user part of a URL.
macro_rules! url_user {
    () => {
        r"://[A-Za-z0-9._%~+-]{0,64}:"
    };
}

pub const RULES: &[SecretRule] = &[
    rule!(
        GenericPasswordAssignment,
        PASSWORD,
        ["password", "passwd", "passphrase", "pwd", "_pass"],
        assign!("(?i:password|passwd|passphrase|pwd|_pass)", value!(8, 200)),
        Some(1),
        Check::Generic(2.8),
        240,
        "DB_PASSWORD=[[{a:16}]]"
    ),
    rule!(
        GenericSecretAssignment,
        SECRET,
        ["secret"],
        assign!("(?i:secret|secret_key|secretkey|secret-key|secret_token)", value!(12, 300)),
        Some(1),
        Check::Generic(3.0),
        340,
        "client_secret: \"[[{a:32}]]\""
    ),
    rule!(
        GenericTokenAssignment,
        TOKEN,
        ["token"],
        assign!("(?i:token)", value!(16, 1000)),
        Some(1),
        Check::Generic(3.2),
        1040,
        "\"access_token\": \"[[{a:40}]]\""
    ),
    rule!(
        GenericApiKeyAssignment,
        API_KEY,
        ["api_key", "apikey", "api-key", "access_key", "app_key", "auth_key", "master_key", "license_key"],
        assign!(
            "(?i:api_key|apikey|api-key|access_key|accesskey|access-key|app_key|auth_key|client_key|master_key|license_key)",
            value!(12, 300)
        ),
        Some(1),
        Check::Generic(3.0),
        340,
        "api_key = \"[[{a:32}]]\""
    ),
    rule!(
        GenericXmlSecret,
        SECRET,
        ["<password>", "<secret>", "<token>", "<apikey>", "<api_key>"],
        concat!(
            "(?i:<password>|<passwd>|<secret>|<token>|<apikey>|<api_key>|<client_secret>|<clientsecret>|<access_token>|<accesstoken>)",
            "(",
            value!(8, 300),
            ")</"
        ),
        Some(1),
        Check::Generic(2.8),
        340,
        "<server><id>deploy</id><username>ci</username><password>[[{a:20}]]</password></server>"
    ),
    rule!(
        DotNetAppSettingSecret,
        SECRET,
        ["<add key="],
        concat!(
            r#"<add key="[A-Za-z0-9_.:-]{0,64}(?i:password|secret|token|apikey|api_key|clientsecret)[A-Za-z0-9_.:-]{0,64}" value=""#,
            "(",
            value!(8, 300),
            r#")""#
        ),
        Some(1),
        Check::Generic(2.8),
        460,
        r#"<appSettings><add key="Smtp:Password" value="[[{a:20}]]" /></appSettings>"#
    ),
    rule!(
        GenericCliSecretFlag,
        SECRET,
        ["--password", "--passwd", "--token", "--api-key", "--apikey", "--secret", "--client-secret", "--auth-token", "--access-token"],
        concat!(
            "(?i:--password|--passwd|--token|--api-key|--apikey|--secret|--client-secret|--auth-token|--access-token)",
            r#"(?:=| )["']?("#,
            value!(8, 300),
            ")"
        ),
        Some(1),
        Check::Generic(2.8),
        330,
        "mytool login --user ci --password [[{a:20}]] --verbose"
    ),
    rule!(
        HttpBasicAuthHeader,
        BASIC_AUTH,
        ["authorization"],
        r"(?i:authorization) ?: ?(?i:basic) ([A-Za-z0-9+/]{8,1000}={0,2})",
        Some(1),
        Check::BasicCredentials,
        1050,
        "curl -H 'Authorization: Basic [[{basic}]]' https://api.internal"
    ),
    rule!(
        HttpBearerAuthHeader,
        BEARER_TOKEN,
        ["authorization"],
        r"(?i:authorization) ?: ?(?i:bearer|token) ([A-Za-z0-9._~+/-]{16,4000}=*)",
        Some(1),
        Check::Random(10),
        4050,
        "curl -H \"Authorization: Bearer [[{u:40}]]\" https://api.internal/v1"
    ),
    rule!(
        ApiKeyHeader,
        API_KEY,
        ["x-api-key", "api-key", "x-auth-token", "x-access-token", "private-token", "x-apikey", "ocp-apim-subscription-key"],
        concat!(
            "(?i:x-api-key|api-key|x-auth-token|x-access-token|private-token|x-apikey|ocp-apim-subscription-key)",
            r" ?: ?([A-Za-z0-9._~+/=-]{16,300})"
        ),
        Some(1),
        Check::Random(10),
        340,
        "curl -H 'X-Api-Key: [[{a:32}]]' https://api.internal"
    ),
    rule!(
        CurlUserPassword,
        PASSWORD,
        ["curl"],
        concat!(
            r#"curl (?:[A-Za-z0-9_.~+/=!@#%^&*?:$"'-]+ ){0,16}?(?:-u|--user) "#,
            r#"["']?[A-Za-z0-9._@+-]{1,64}:([A-Za-z0-9_.~+/=!@#%^&*?:-]{3,128})"#
        ),
        Some(1),
        Check::Password,
        1200,
        "curl -sS -u deploy:[[{a:16}]] https://ci.internal/api"
    ),
    rule!(
        DatabaseUrlPassword,
        DATABASE_PASSWORD,
        ["postgres", "mysql", "mariadb", "mongodb", "redis", "mssql", "sqlserver", "cockroachdb", "clickhouse", "jdbc:", "couchdb", "neo4j"],
        concat!(
            r"(?i:postgres|postgresql|mysql|mariadb|mongodb\+srv|mongodb|redis|rediss|mssql|sqlserver|cockroachdb|clickhouse|couchdb|neo4j|neo4j\+s|memcached|influxdb|jdbc:[a-z0-9]{2,16})",
            url_user!(),
            url_password!()
        ),
        Some(1),
        Check::Password,
        300,
        "DATABASE_URL=postgres://app:[[{a:20}]]@db.internal:5432/app"
    ),
    rule!(
        MessageBrokerUrlPassword,
        BROKER_PASSWORD,
        ["amqp", "mqtt", "nats", "kafka", "stomp"],
        concat!(r"(?i:amqps?|mqtts?|nats|kafka|stomp)", url_user!(), url_password!()),
        Some(1),
        Check::Password,
        300,
        "BROKER_URL=amqps://worker:[[{a:20}]]@mq.internal:5671/vhost"
    ),
    rule!(
        UrlPassword,
        URL_PASSWORD,
        ["http", "ftp", "sftp", "smtp", "ldap", "imap", "pop3", "ssh", "git", "svn", "socks5"],
        concat!(
            r"(?i:https?|ftps?|sftp|smtps?|ldaps?|imaps?|pop3s?|ssh|git|svn|socks5h?|wss?)",
            url_user!(),
            url_password!()
        ),
        Some(1),
        Check::Password,
        300,
        "git clone https://x-access-token:[[{a:40}]]@github.com/org/repo.git"
    ),
    rule!(
        ConnectionStringPassword,
        DATABASE_PASSWORD,
        [";password=", ";pwd="],
        r"(?i:user id|userid|uid|username|user)=[^;]{1,64};(?i:password|pwd)=([A-Za-z0-9_.~+/=!@#%^&*?$-]{3,128})",
        Some(1),
        Check::Password,
        220,
        "Server=db.internal;Database=app;User Id=sa;Password=[[{a:16}]];Encrypt=true"
    ),
];
