//! Developer platforms: source hosting (GitHub, GitLab, Bitbucket),
//! package registries (npm, PyPI, RubyGems, NuGet, crates.io, Docker Hub),
//! infrastructure tools (Vault, Terraform, Pulumi) and deploy platforms
//! (Heroku, Vercel, Netlify), CI and artifact stores.

use super::{assign, rule, validate, wb, Check, SecretRule};

pub const RULES: &[SecretRule] = &[
    // GitHub classic tokens: prefix, 30 random base62 characters and the
    // CRC32 of those in six base62 digits (the `GitHubToken` builtin takes
    // any; these take only tokens whose checksum holds).
    rule!(
        GitHubPersonalAccessToken,
        GITHUB_PAT,
        ["ghp_"],
        concat!(wb!(), r"ghp_[A-Za-z0-9]{36}", wb!()),
        None,
        Check::Crc32Base62,
        40,
        "[[ghp_{a:30}{crc}]]"
    ),
    rule!(
        GitHubOAuthToken,
        GITHUB_OAUTH_TOKEN,
        ["gho_"],
        concat!(wb!(), r"gho_[A-Za-z0-9]{36}", wb!()),
        None,
        Check::Crc32Base62,
        40,
        "[[gho_{a:30}{crc}]]"
    ),
    rule!(
        GitHubUserToServerToken,
        GITHUB_APP_TOKEN,
        ["ghu_"],
        concat!(wb!(), r"ghu_[A-Za-z0-9]{36}", wb!()),
        None,
        Check::Crc32Base62,
        40,
        "[[ghu_{a:30}{crc}]]"
    ),
    rule!(
        GitHubServerToServerToken,
        GITHUB_APP_TOKEN,
        ["ghs_"],
        concat!(wb!(), r"ghs_[A-Za-z0-9]{36}", wb!()),
        None,
        Check::Crc32Base62,
        40,
        "[[ghs_{a:30}{crc}]]"
    ),
    rule!(
        GitHubRefreshToken,
        GITHUB_REFRESH_TOKEN,
        ["ghr_"],
        concat!(wb!(), r"ghr_[A-Za-z0-9]{36}", wb!()),
        None,
        Check::Crc32Base62,
        40,
        "[[ghr_{a:30}{crc}]]"
    ),
    rule!(
        GitHubFineGrainedPat,
        GITHUB_PAT,
        ["github_pat_"],
        concat!(wb!(), r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}", wb!()),
        None,
        Check::Random(20),
        93,
        "[[github_pat_11{A:1}{a:19}_{a:59}]]"
    ),
    // GitLab: one prefix per token type.
    rule!(
        GitLabPersonalAccessToken,
        GITLAB_PAT,
        ["glpat-"],
        concat!(wb!(), r"glpat-[A-Za-z0-9_.-]{20,100}"),
        None,
        Check::Random(12),
        106,
        "[[glpat-{a:20}]]"
    ),
    rule!(
        GitLabDeployToken,
        GITLAB_DEPLOY_TOKEN,
        ["gldt-"],
        concat!(wb!(), r"gldt-[A-Za-z0-9_-]{20,64}"),
        None,
        Check::Random(12),
        69,
        "[[gldt-{a:20}]]"
    ),
    rule!(
        GitLabRunnerAuthToken,
        GITLAB_RUNNER_TOKEN,
        ["glrt-"],
        concat!(wb!(), r"glrt-[A-Za-z0-9_.-]{20,64}"),
        None,
        Check::Random(12),
        69,
        "[[glrt-{a:20}]]"
    ),
    rule!(
        GitLabRunnerRegistrationToken,
        GITLAB_RUNNER_TOKEN,
        ["gr1348941"],
        concat!(wb!(), r"GR1348941[A-Za-z0-9_-]{20,64}"),
        None,
        Check::Random(12),
        73,
        "[[GR1348941{a:20}]]"
    ),
    rule!(
        GitLabPipelineTriggerToken,
        GITLAB_TRIGGER_TOKEN,
        ["glptt-"],
        concat!(wb!(), r"glptt-[a-f0-9]{40}", wb!()),
        None,
        Check::Random(10),
        46,
        "[[glptt-{h:40}]]"
    ),
    rule!(
        GitLabCiBuildToken,
        GITLAB_CI_TOKEN,
        ["glcbt-"],
        concat!(wb!(), r"glcbt-[0-9a-f]{1,5}_[A-Za-z0-9_-]{20,64}"),
        None,
        Check::Random(12),
        76,
        "[[glcbt-{h:2}_{a:20}]]"
    ),
    rule!(
        GitLabOAuthAppSecret,
        GITLAB_OAUTH_SECRET,
        ["gloas-"],
        concat!(wb!(), r"gloas-[a-f0-9]{64}", wb!()),
        None,
        Check::Random(12),
        70,
        "[[gloas-{h:64}]]"
    ),
    rule!(
        GitLabScimToken,
        GITLAB_SCIM_TOKEN,
        ["glsoat-"],
        concat!(wb!(), r"glsoat-[A-Za-z0-9_-]{20,64}"),
        None,
        Check::Random(12),
        71,
        "[[glsoat-{a:20}]]"
    ),
    rule!(
        GitLabFeedToken,
        GITLAB_FEED_TOKEN,
        ["glft-"],
        concat!(wb!(), r"glft-[A-Za-z0-9_-]{20,64}"),
        None,
        Check::Random(12),
        69,
        "[[glft-{a:20}]]"
    ),
    rule!(
        GitLabIncomingMailToken,
        GITLAB_MAIL_TOKEN,
        ["glimt-"],
        concat!(wb!(), r"glimt-[A-Za-z0-9_-]{25,64}"),
        None,
        Check::Random(12),
        70,
        "[[glimt-{a:25}]]"
    ),
    rule!(
        GitLabAgentToken,
        GITLAB_AGENT_TOKEN,
        ["glagent-"],
        concat!(wb!(), r"glagent-[A-Za-z0-9_-]{50,100}"),
        None,
        Check::Random(14),
        108,
        "[[glagent-{a:50}]]"
    ),
    rule!(
        GitLabFeatureFlagClientToken,
        GITLAB_FEATURE_FLAG_TOKEN,
        ["glffct-"],
        concat!(wb!(), r"glffct-[A-Za-z0-9_-]{20,64}"),
        None,
        Check::Random(12),
        71,
        "[[glffct-{a:20}]]"
    ),
    rule!(
        BitbucketAppPassword,
        BITBUCKET_APP_PASSWORD,
        ["atbb"],
        concat!(wb!(), r"ATBB[A-Za-z0-9_=.-]{28,40}"),
        None,
        Check::Random(14),
        44,
        "[[ATBB{a:24}{H:8}]]"
    ),
    rule!(
        BitbucketClientSecret,
        BITBUCKET_CLIENT_SECRET,
        ["bitbucket"],
        assign!(
            "(?i:bitbucket_client_secret|bitbucket_secret|bitbucket_oauth_secret)",
            "[A-Za-z0-9_-]{32}(?:[A-Za-z0-9_-]*)"
        ),
        Some(1),
        Check::Sized(32, 12),
        80,
        "BITBUCKET_CLIENT_SECRET=[[{a:32}]]"
    ),
    // Registries.
    rule!(
        NpmAccessToken,
        NPM_TOKEN,
        ["npm_"],
        concat!(wb!(), r"npm_[A-Za-z0-9]{36}", wb!()),
        None,
        Check::Crc32Base62,
        40,
        "[[npm_{a:30}{crc}]]"
    ),
    rule!(
        PyPiUploadToken,
        PYPI_TOKEN,
        ["pypi-ageichlwas5vcmc"],
        concat!(wb!(), r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,300}"),
        None,
        Check::Random(16),
        320,
        "[[pypi-AgEIcHlwaS5vcmc{u:100}]]"
    ),
    rule!(
        TestPyPiUploadToken,
        PYPI_TOKEN,
        ["pypi-agendgvzdc5wexbplm9yzw"],
        concat!(wb!(), r"pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9_-]{50,300}"),
        None,
        Check::Random(16),
        330,
        "[[pypi-AgENdGVzdC5weXBpLm9yZw{u:100}]]"
    ),
    rule!(
        RubyGemsApiKey,
        RUBYGEMS_API_KEY,
        ["rubygems_"],
        concat!(wb!(), r"rubygems_[a-f0-9]{48}", wb!()),
        None,
        Check::Random(10),
        57,
        "[[rubygems_{h:48}]]"
    ),
    rule!(
        NuGetApiKey,
        NUGET_API_KEY,
        ["oy2"],
        concat!(wb!(), r"oy2[a-z0-9]{43}", wb!()),
        None,
        Check::Random(14),
        46,
        "[[oy2{l:43}]]"
    ),
    rule!(
        CratesIoApiToken,
        CRATES_IO_TOKEN,
        ["cio"],
        concat!(wb!(), r"cio[A-Za-z0-9]{32}", wb!()),
        None,
        Check::Random(14),
        35,
        "[[cio{a:32}]]"
    ),
    rule!(
        ClojarsApiToken,
        CLOJARS_TOKEN,
        ["clojars_"],
        concat!(wb!(), r"CLOJARS_[a-z0-9]{60}", wb!()),
        None,
        Check::Random(14),
        68,
        "[[CLOJARS_{l:60}]]"
    ),
    rule!(
        DockerHubPersonalAccessToken,
        DOCKER_HUB_TOKEN,
        ["dckr_pat_"],
        concat!(wb!(), r"dckr_pat_[A-Za-z0-9_-]{27,40}"),
        None,
        Check::Random(12),
        49,
        "[[dckr_pat_{a:27}]]"
    ),
    rule!(
        DockerHubOrgAccessToken,
        DOCKER_HUB_TOKEN,
        ["dckr_oat_"],
        concat!(wb!(), r"dckr_oat_[A-Za-z0-9_-]{32,40}"),
        None,
        Check::Random(12),
        49,
        "[[dckr_oat_{a:32}]]"
    ),
    rule!(
        ArtifactoryApiKey,
        ARTIFACTORY_API_KEY,
        ["akcp"],
        concat!(wb!(), r"AKCp[A-Za-z0-9]{69}", wb!()),
        None,
        Check::Random(16),
        73,
        "[[AKCp{a:69}]]"
    ),
    rule!(
        ArtifactoryReferenceToken,
        ARTIFACTORY_TOKEN,
        ["cmvmdgtu"],
        concat!(wb!(), r"cmVmdGtu[A-Za-z0-9]{56}", wb!()),
        None,
        Check::Random(16),
        64,
        "[[cmVmdGtuOjAxOj{a:50}]]"
    ),
    // Infrastructure.
    rule!(
        VaultServiceToken,
        VAULT_TOKEN,
        ["hvs."],
        concat!(wb!(), r"hvs\.[A-Za-z0-9_-]{90,120}", wb!()),
        None,
        Check::Random(16),
        124,
        "[[hvs.CAESI{u:90}]]"
    ),
    rule!(
        VaultBatchToken,
        VAULT_TOKEN,
        ["hvb."],
        concat!(wb!(), r"hvb\.[A-Za-z0-9_-]{138,300}", wb!()),
        None,
        Check::Random(16),
        304,
        "[[hvb.AAAAAQ{u:150}]]"
    ),
    rule!(
        VaultRecoveryToken,
        VAULT_TOKEN,
        ["hvr."],
        concat!(wb!(), r"hvr\.[A-Za-z0-9_-]{90,120}", wb!()),
        None,
        Check::Random(16),
        124,
        "[[hvr.{u:95}]]"
    ),
    rule!(
        VaultLegacyToken,
        VAULT_TOKEN,
        ["vault_token"],
        assign!(
            "(?i:vault_token|vault_auth_token)",
            r"s\.[A-Za-z0-9]{24}(?:[A-Za-z0-9]*)"
        ),
        Some(1),
        Check::Sized(26, 12),
        60,
        "VAULT_TOKEN=[[s.{a:24}]]"
    ),
    rule!(
        TerraformCloudToken,
        TERRAFORM_TOKEN,
        [".atlasv1."],
        concat!(
            wb!(),
            r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}",
            wb!()
        ),
        None,
        Check::Random(16),
        94,
        "[[{a:14}.atlasv1.{a:67}]]"
    ),
    rule!(
        PulumiAccessToken,
        PULUMI_TOKEN,
        ["pul-"],
        concat!(wb!(), r"pul-[a-f0-9]{40}", wb!()),
        None,
        Check::Random(10),
        44,
        "[[pul-{h:40}]]"
    ),
    // Deploy platforms.
    rule!(
        HerokuApiKey,
        HEROKU_API_KEY,
        ["heroku"],
        assign!(
            "(?i:heroku_api_key|heroku_api_token|heroku_token|heroku_oauth_token)",
            "[A-Za-z0-9-]+"
        ),
        Some(1),
        Check::Shape(36, validate::hex_or_dash, 10),
        80,
        "HEROKU_API_KEY=[[{h:8}-{h:4}-{h:4}-{h:4}-{h:12}]]"
    ),
    rule!(
        HerokuApiKeyV2,
        HEROKU_API_KEY,
        ["hrku-aa"],
        concat!(wb!(), r"HRKU-AA[A-Za-z0-9_-]{58}", wb!()),
        None,
        Check::Random(16),
        65,
        "[[HRKU-AA{a:58}]]"
    ),
    rule!(
        VercelToken,
        VERCEL_TOKEN,
        ["vercel"],
        assign!(
            "(?i:vercel_token|vercel_api_token|vercel_access_token)",
            "[A-Za-z0-9]{24}(?:[A-Za-z0-9]*)"
        ),
        Some(1),
        Check::Sized(24, 12),
        60,
        "VERCEL_TOKEN=[[{a:24}]]"
    ),
    rule!(
        NetlifyPersonalAccessToken,
        NETLIFY_TOKEN,
        ["nfp_"],
        concat!(wb!(), r"nfp_[A-Za-z0-9]{36}", wb!()),
        None,
        Check::Random(14),
        40,
        "[[nfp_{a:36}]]"
    ),
    rule!(
        NetlifyAuthToken,
        NETLIFY_TOKEN,
        ["netlify"],
        assign!(
            "(?i:netlify_auth_token|netlify_token|netlify_api_token)",
            "[A-Za-z0-9_-]{40,46}"
        ),
        Some(1),
        Check::Random(14),
        90,
        "NETLIFY_AUTH_TOKEN=[[{u:43}]]"
    ),
    // CI, code intelligence, artifact stores.
    rule!(
        SourcegraphAccessToken,
        SOURCEGRAPH_TOKEN,
        ["sgp_"],
        concat!(wb!(), r"sgp_[a-f0-9_]{40,57}", wb!()),
        None,
        Check::Random(10),
        61,
        "[[sgp_{h:16}_{h:40}]]"
    ),
    rule!(
        SonarToken,
        SONAR_TOKEN,
        ["sqa_", "sqp_", "squ_"],
        concat!(wb!(), r"sq[apu]_[a-f0-9]{40}", wb!()),
        None,
        Check::Random(10),
        44,
        "[[squ_{h:40}]]"
    ),
    rule!(
        CircleCiPersonalToken,
        CIRCLECI_TOKEN,
        ["ccipat_"],
        concat!(wb!(), r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}", wb!()),
        None,
        Check::Random(14),
        70,
        "[[CCIPAT_{a:22}_{h:40}]]"
    ),
    rule!(
        BuildkiteApiToken,
        BUILDKITE_TOKEN,
        ["bkua_"],
        concat!(wb!(), r"bkua_[a-f0-9]{40}", wb!()),
        None,
        Check::Random(10),
        45,
        "[[bkua_{h:40}]]"
    ),
    rule!(
        HarnessAccessToken,
        HARNESS_TOKEN,
        ["pat.", "sat."],
        concat!(
            wb!(),
            r"(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[a-f0-9]{24}\.[A-Za-z0-9]{20}",
            wb!()
        ),
        None,
        Check::Random(14),
        73,
        "[[pat.{u:22}.{h:24}.{a:20}]]"
    ),
    rule!(
        OctopusDeployApiKey,
        OCTOPUS_API_KEY,
        ["api-"],
        concat!(wb!(), r"API-[A-Z0-9]{26}", wb!()),
        None,
        Check::Random(12),
        30,
        "[[API-{U:26}]]"
    ),
];
