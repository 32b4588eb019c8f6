//! Credential files and commands as they are pasted into a prompt: `.netrc`,
//! `.npmrc`, `.yarnrc.yml`, `.pypirc`, Kubernetes Secrets, Docker's
//! `config.json`, Composer's `auth.json`, and passwords on command lines.
//! Normalised text has its line breaks as single spaces, so a file reads as
//! one line.

use super::{rule, Check, SecretRule};

pub const RULES: &[SecretRule] = &[
    rule!(
        NetrcPassword,
        NETRC_PASSWORD,
        ["machine"],
        r#"machine [A-Za-z0-9._-]{1,253}(?: login [A-Za-z0-9_.~+/=!@#%^&*?:$"'-]{1,128})? password ([A-Za-z0-9_.~+/=!@#%^&*?:$"'-]{1,256})"#,
        Some(1),
        Check::Password,
        660,
        "machine api.heroku.com login me@corp.example password [[{a:24}]]"
    ),
    rule!(
        NpmrcAuthToken,
        NPM_TOKEN,
        ["_authtoken"],
        r#"_authToken ?= ?["']?([A-Za-z0-9._~+/=-]{20,512})"#,
        Some(1),
        Check::Random(10),
        540,
        "//registry.npmjs.org/:_authToken=[[{u:36}]]"
    ),
    rule!(
        NpmrcAuth,
        NPM_AUTH,
        ["_auth"],
        r#"(?-u:\b)_auth ?= ?["']?([A-Za-z0-9+/]{8,1000}={0,2})"#,
        Some(1),
        Check::BasicCredentials,
        1020,
        "//npm.corp/:_auth=[[{basic}]]"
    ),
    rule!(
        NpmrcPassword,
        NPM_PASSWORD,
        ["_password"],
        r#"_password ?= ?["']?([A-Za-z0-9+/]{4,512}={0,2})"#,
        Some(1),
        Check::Password,
        540,
        "//npm.corp/:_password=[[{b:24}]]"
    ),
    rule!(
        YarnrcAuthToken,
        NPM_TOKEN,
        ["npmauthtoken"],
        r#"npmAuthToken ?: ?["']?([A-Za-z0-9._~+/=-]{20,512})"#,
        Some(1),
        Check::Random(10),
        540,
        "npmRegistries: \"//npm.corp\": npmAuthToken: [[{u:36}]]"
    ),
    rule!(
        PypircPassword,
        PYPI_PASSWORD,
        ["username"],
        concat!(
            r#"\[[A-Za-z0-9_-]{1,32}\] (?:repository ?[=:] ?[A-Za-z0-9_.~+/=!@#%^&*?:$"'-]{1,256} )?"#,
            r#"username ?[=:] ?[A-Za-z0-9_.~+/=!@#%^&*?:$"'-]{1,128} password ?[=:] ?["']?([A-Za-z0-9_.~+/=!@#%^&*?$-]{3,256})"#
        ),
        Some(1),
        Check::Password,
        700,
        "[distutils] index-servers = corp [corp] repository = https://pypi.corp/simple username = ci password = [[{a:20}]]"
    ),
    rule!(
        KubernetesSecretData,
        KUBERNETES_SECRET,
        ["kind: secret"],
        concat!(
            r#"kind: Secret (?:[A-Za-z0-9_.~+/=!@#%^&*?:$"'-]+ ){0,40}?data: [A-Za-z0-9_.-]{1,253}: "#,
            r"((?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?",
            r"(?: [A-Za-z0-9_.-]{1,253}: (?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?){0,64})"
        ),
        Some(1),
        Check::Base64Values,
        16384,
        "apiVersion: v1 kind: Secret metadata: name: db type: Opaque data: password: [[{b64:18} username: {b64:6}]]"
    ),
    rule!(
        KubernetesSecretDataDump,
        KUBERNETES_SECRET,
        ["kind: secret"],
        concat!(
            r"(?-u:\b)data: [A-Za-z0-9_.-]{1,253}: ",
            r"((?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?",
            r"(?: [A-Za-z0-9_.-]{1,253}: (?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?){0,64})",
            r" kind: Secret"
        ),
        Some(1),
        Check::Base64Values,
        16384,
        "apiVersion: v1 data: token: [[{b64:30} ca.crt: {b64:60}]] kind: Secret metadata: name: sa-token"
    ),
    rule!(
        KubernetesSecretStringData,
        KUBERNETES_SECRET,
        ["stringdata:"],
        r#"stringData: [A-Za-z0-9_.-]{1,253}: ([A-Za-z0-9_.~+/=!@#%^&*?:$"'-]{1,512}(?: [A-Za-z0-9_.-]{1,253}: [A-Za-z0-9_.~+/=!@#%^&*?:$"'-]{1,512}){0,32})"#,
        Some(1),
        Check::Password,
        16384,
        "kind: Secret stringData: password: [[{a:20} api-token: {a:32}]]"
    ),
    rule!(
        DockerConfigAuth,
        DOCKER_AUTH,
        ["auths"],
        r#""auths" ?: ?\{ ?"[A-Za-z0-9._:/-]{1,253}" ?: ?\{ ?"auth" ?: ?"([A-Za-z0-9+/]{8,1000}={0,2})""#,
        Some(1),
        Check::BasicCredentials,
        1400,
        r#"{"auths": {"registry.corp:5000": {"auth": "[[{basic}]]"}}}"#
    ),
    rule!(
        ComposerGitHubOAuthToken,
        COMPOSER_TOKEN,
        ["github-oauth"],
        r#""github-oauth" ?: ?\{ ?"github\.com" ?: ?"([A-Za-z0-9_]{20,255})""#,
        Some(1),
        Check::Random(10),
        300,
        r#"{"github-oauth": {"github.com": "[[{a:40}]]"}}"#
    ),
    rule!(
        DockerLoginPassword,
        PASSWORD,
        ["docker login"],
        r#"docker login (?:[A-Za-z0-9_.~+/=!@#%^&*?:$"'-]+ ){0,8}?(?:-p|--password) ["']?([A-Za-z0-9_.~+/=!@#%^&*?:-]{3,256})"#,
        Some(1),
        Check::Password,
        2600,
        "docker login -u ci -p [[{a:24}]] registry.corp"
    ),
    rule!(
        MysqlCliPassword,
        DATABASE_PASSWORD,
        ["mysql"],
        r#"mysql(?:dump|admin)? (?:[A-Za-z0-9_.~+/=!@#%^&*?:$"'-]+ ){0,8}?(?:-p|--password=)["']?([A-Za-z0-9_.~+/=!@#%^&*?:-]{3,128})"#,
        Some(1),
        Check::Password,
        2500,
        "mysql -h db.internal -u app -p[[{a:16}]] app"
    ),
    rule!(
        SshpassPassword,
        PASSWORD,
        ["sshpass"],
        r#"sshpass -p ["']?([A-Za-z0-9_.~+/=!@#%^&*?:-]{3,128})"#,
        Some(1),
        Check::Password,
        160,
        "sshpass -p [[{a:16}]] ssh deploy@host"
    ),
];
