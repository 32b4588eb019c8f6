//! SaaS: payments, messaging, collaboration, observability, identity, and
//! webhook URLs that carry their own secret.

use super::{assign, rule, validate, wb, Check, SecretRule};

pub const RULES: &[SecretRule] = &[
    rule!(
        StripeSecretKey,
        STRIPE_SECRET_KEY,
        ["sk_live_", "sk_test_"],
        concat!(wb!(), r"sk_(?:live|test)_[A-Za-z0-9]{24,247}", wb!()),
        None,
        Check::Random(14),
        255,
        "[[sk_live_{a:30}]]"
    ),
    rule!(
        StripeRestrictedKey,
        STRIPE_RESTRICTED_KEY,
        ["rk_live_", "rk_test_"],
        concat!(wb!(), r"rk_(?:live|test)_[A-Za-z0-9]{24,247}", wb!()),
        None,
        Check::Random(14),
        255,
        "[[rk_live_{a:30}]]"
    ),
    rule!(
        StripeWebhookSecret,
        STRIPE_WEBHOOK_SECRET,
        ["whsec_"],
        concat!(wb!(), r"whsec_[A-Za-z0-9+/]{32,88}={0,2}"),
        None,
        Check::Random(14),
        96,
        "[[whsec_{a:32}]]"
    ),
    rule!(
        TwilioApiKey,
        TWILIO_API_KEY,
        ["sk"],
        concat!(wb!(), r"SK[0-9a-f]{32}", wb!()),
        None,
        Check::Random(10),
        34,
        "[[SK{h:32}]]"
    ),
    rule!(
        TwilioAuthToken,
        TWILIO_AUTH_TOKEN,
        ["twilio_auth_token", "twilio_token"],
        assign!("(?i:twilio_auth_token|twilio_token|twilioauthtoken)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(32, validate::hex, 10),
        70,
        "TWILIO_AUTH_TOKEN=[[{h:32}]]"
    ),
    rule!(
        SendGridApiKey,
        SENDGRID_API_KEY,
        ["sg."],
        concat!(wb!(), r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", wb!()),
        None,
        Check::Random(16),
        69,
        "[[SG.{u:22}.{u:43}]]"
    ),
    rule!(
        MailgunApiKey,
        MAILGUN_API_KEY,
        ["key-"],
        concat!(wb!(), r"key-[0-9a-f]{32}", wb!()),
        None,
        Check::Random(10),
        36,
        "[[key-{h:32}]]"
    ),
    rule!(
        MailgunWebhookSigningKey,
        MAILGUN_SIGNING_KEY,
        ["mailgun"],
        assign!("(?i:mailgun_signing_key|mailgun_webhook_signing_key|mailgun_api_key)", "[A-Za-z0-9-]+"),
        Some(1),
        Check::Shape(50, validate::hex_or_dash, 10),
        100,
        "MAILGUN_API_KEY=[[{h:32}-{h:8}-{h:8}]]"
    ),
    rule!(
        MailchimpApiKey,
        MAILCHIMP_API_KEY,
        ["-us"],
        concat!(wb!(), r"[0-9a-f]{32}-us[0-9]{1,2}", wb!()),
        None,
        Check::Random(10),
        37,
        "[[{h:32}-us21]]"
    ),
    rule!(
        MandrillApiKey,
        MANDRILL_API_KEY,
        ["md-"],
        concat!(wb!(), r"md-[A-Za-z0-9_-]{22}", wb!()),
        None,
        Check::Random(14),
        25,
        "[[md-{a:22}]]"
    ),
    // Slack: bot, user, app-level, configuration tokens; webhooks.
    rule!(
        SlackBotToken,
        SLACK_BOT_TOKEN,
        ["xoxb-"],
        concat!(wb!(), r"xoxb-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{24,34}", wb!()),
        None,
        Check::Random(14),
        64,
        "[[xoxb-{d:12}-{d:13}-{a:24}]]"
    ),
    rule!(
        SlackUserToken,
        SLACK_USER_TOKEN,
        ["xoxp-"],
        concat!(wb!(), r"xoxp-[0-9]{10,13}-[0-9]{10,13}-[0-9]{10,13}-[a-f0-9]{32}", wb!()),
        None,
        Check::Random(14),
        80,
        "[[xoxp-{d:12}-{d:12}-{d:13}-{h:32}]]"
    ),
    rule!(
        SlackAppToken,
        SLACK_APP_TOKEN,
        ["xapp-"],
        concat!(wb!(), r"xapp-[0-9]-[A-Z0-9]{9,12}-[0-9]{10,13}-[a-f0-9]{64}", wb!()),
        None,
        Check::Random(14),
        100,
        "[[xapp-1-{U:11}-{d:13}-{h:64}]]"
    ),
    rule!(
        SlackConfigAccessToken,
        SLACK_CONFIG_TOKEN,
        ["xoxe.xox"],
        concat!(wb!(), r"xoxe\.xox[bp]-[0-9]-[A-Za-z0-9]{163,166}", wb!()),
        None,
        Check::Random(20),
        180,
        "[[xoxe.xoxp-1-{a:164}]]"
    ),
    rule!(
        SlackConfigRefreshToken,
        SLACK_CONFIG_REFRESH_TOKEN,
        ["xoxe-"],
        concat!(wb!(), r"xoxe-[0-9]-[A-Za-z0-9]{146,150}", wb!()),
        None,
        Check::Random(20),
        160,
        "[[xoxe-1-{a:147}]]"
    ),
    rule!(
        SlackLegacyToken,
        SLACK_LEGACY_TOKEN,
        ["xoxa-", "xoxo-", "xoxr-", "xoxs-"],
        concat!(wb!(), r"xox[aors]-(?:[0-9]{1,13}-){1,3}[A-Za-z0-9]{24,64}", wb!()),
        None,
        Check::Random(12),
        120,
        "[[xoxs-{d:11}-{d:11}-{d:12}-{h:40}]]"
    ),
    rule!(
        SlackWebhookUrl,
        SLACK_WEBHOOK,
        ["hooks.slack.com"],
        r"hooks\.slack\.com/services/(T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{23,34})",
        Some(1),
        Check::Random(14),
        90,
        "https://hooks.slack.com/services/[[T{U:10}/B{U:10}/{a:24}]]"
    ),
    rule!(
        SlackWorkflowWebhookUrl,
        SLACK_WEBHOOK,
        ["hooks.slack.com"],
        r"hooks\.slack\.com/(?:workflows|triggers)/(T[A-Z0-9]{8,12}/A[A-Z0-9]{8,12}/[0-9]{15,20}/[a-f0-9]{32})",
        Some(1),
        Check::Random(14),
        120,
        "https://hooks.slack.com/triggers/[[T{U:10}/A{U:10}/{d:18}/{h:32}]]"
    ),
    rule!(
        DiscordBotToken,
        DISCORD_BOT_TOKEN,
        ["discord", "bot "],
        concat!(
            "(?:(?i:discord_bot_token|discord_token|discordtoken|discord_bot_key)",
            r#"["']? ?(?::=|=>|=|:) ?["']?|Bot )"#,
            r"([MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40})",
            wb!()
        ),
        Some(1),
        Check::Random(16),
        120,
        "DISCORD_TOKEN=[[M{u:25}.{u:6}.{u:38}]]"
    ),
    rule!(
        DiscordWebhookUrl,
        DISCORD_WEBHOOK,
        ["discord.com", "discordapp.com"],
        r"discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/([A-Za-z0-9_-]{60,68})",
        Some(1),
        Check::Random(16),
        120,
        "https://discord.com/api/webhooks/{d:18}/[[{u:68}]]"
    ),
    rule!(
        TelegramBotToken,
        TELEGRAM_BOT_TOKEN,
        [":aa"],
        concat!(wb!(), r"[0-9]{8,10}:AA[A-Za-z0-9_-]{33}", wb!()),
        None,
        Check::Random(14),
        46,
        "[[{d:10}:AA{a:33}]]"
    ),
    rule!(
        ShopifyAccessToken,
        SHOPIFY_ACCESS_TOKEN,
        ["shpat_"],
        concat!(wb!(), r"shpat_[a-fA-F0-9]{32}", wb!()),
        None,
        Check::Random(10),
        38,
        "[[shpat_{h:32}]]"
    ),
    rule!(
        ShopifyCustomAppToken,
        SHOPIFY_CUSTOM_APP_TOKEN,
        ["shpca_"],
        concat!(wb!(), r"shpca_[a-fA-F0-9]{32}", wb!()),
        None,
        Check::Random(10),
        38,
        "[[shpca_{h:32}]]"
    ),
    rule!(
        ShopifyPrivateAppToken,
        SHOPIFY_PRIVATE_APP_TOKEN,
        ["shppa_"],
        concat!(wb!(), r"shppa_[a-fA-F0-9]{32}", wb!()),
        None,
        Check::Random(10),
        38,
        "[[shppa_{h:32}]]"
    ),
    rule!(
        ShopifySharedSecret,
        SHOPIFY_SHARED_SECRET,
        ["shpss_"],
        concat!(wb!(), r"shpss_[a-fA-F0-9]{32}", wb!()),
        None,
        Check::Random(10),
        38,
        "[[shpss_{h:32}]]"
    ),
    rule!(
        AtlassianApiToken,
        ATLASSIAN_API_TOKEN,
        ["atatt3"],
        concat!(wb!(), r"ATATT3[A-Za-z0-9_=-]{180,200}"),
        None,
        Check::Random(20),
        206,
        "[[ATATT3xFfGF0{u:171}={H:8}]]"
    ),
    rule!(
        AtlassianLegacyApiToken,
        ATLASSIAN_API_TOKEN,
        ["jira", "confluence", "atlassian"],
        assign!("(?i:jira_api_token|jira_token|confluence_api_token|confluence_token|atlassian_api_token|atlassian_token)", "[A-Za-z0-9]{24}(?:[A-Za-z0-9]*)"),
        Some(1),
        Check::Sized(24, 12),
        70,
        "JIRA_API_TOKEN=[[{a:24}]]"
    ),
    rule!(
        LinearApiKey,
        LINEAR_API_KEY,
        ["lin_api_"],
        concat!(wb!(), r"lin_api_[A-Za-z0-9]{40}", wb!()),
        None,
        Check::Random(14),
        48,
        "[[lin_api_{a:40}]]"
    ),
    rule!(
        LinearOAuthToken,
        LINEAR_OAUTH_TOKEN,
        ["lin_oauth_"],
        concat!(wb!(), r"lin_oauth_[a-f0-9]{64}", wb!()),
        None,
        Check::Random(12),
        74,
        "[[lin_oauth_{h:64}]]"
    ),
    rule!(
        NotionIntegrationToken,
        NOTION_TOKEN,
        ["ntn_"],
        concat!(wb!(), r"ntn_[0-9]{11}[A-Za-z0-9]{35}", wb!()),
        None,
        Check::Random(14),
        50,
        "[[ntn_{d:11}{a:35}]]"
    ),
    rule!(
        NotionLegacyIntegrationToken,
        NOTION_TOKEN,
        ["secret_"],
        concat!(wb!(), r"secret_[A-Za-z0-9]{43}", wb!()),
        None,
        Check::Random(16),
        50,
        "[[secret_{a:43}]]"
    ),
    rule!(
        DatadogApiKey,
        DATADOG_API_KEY,
        ["dd_api_key", "datadog_api_key"],
        assign!("(?i:dd_api_key|datadog_api_key|dd-api-key)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(32, validate::hex, 10),
        60,
        "DD_API_KEY=[[{h:32}]]"
    ),
    rule!(
        DatadogAppKey,
        DATADOG_APP_KEY,
        ["dd_app_key", "datadog_app_key", "dd-application-key"],
        assign!("(?i:dd_app_key|datadog_app_key|dd_application_key|datadog_application_key|dd-application-key)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(40, validate::hex, 10),
        80,
        "DD_APP_KEY: [[{h:40}]]"
    ),
    rule!(
        NewRelicUserApiKey,
        NEW_RELIC_API_KEY,
        ["nrak-"],
        concat!(wb!(), r"NRAK-[A-Z0-9]{27}", wb!()),
        None,
        Check::Random(12),
        32,
        "[[NRAK-{U:27}]]"
    ),
    rule!(
        NewRelicLicenseKey,
        NEW_RELIC_LICENSE_KEY,
        ["nral"],
        concat!(wb!(), r"[a-f0-9]{36}NRAL", wb!()),
        None,
        Check::Random(10),
        40,
        "[[{h:36}NRAL]]"
    ),
    rule!(
        NewRelicBrowserKey,
        NEW_RELIC_BROWSER_KEY,
        ["nrjs-"],
        concat!(wb!(), r"NRJS-[a-f0-9]{19}", wb!()),
        None,
        Check::Random(8),
        24,
        "[[NRJS-{h:19}]]"
    ),
    rule!(
        NewRelicInsightsInsertKey,
        NEW_RELIC_INSERT_KEY,
        ["nrii-"],
        concat!(wb!(), r"NRII-[A-Za-z0-9_-]{32}", wb!()),
        None,
        Check::Random(12),
        37,
        "[[NRII-{u:32}]]"
    ),
    rule!(
        NewRelicInsightsQueryKey,
        NEW_RELIC_QUERY_KEY,
        ["nriq-"],
        concat!(wb!(), r"NRIQ-[A-Za-z0-9_-]{32}", wb!()),
        None,
        Check::Random(12),
        37,
        "[[NRIQ-{u:32}]]"
    ),
    rule!(
        NewRelicAdminKey,
        NEW_RELIC_ADMIN_KEY,
        ["nraa-"],
        concat!(wb!(), r"NRAA-[a-f0-9]{27}", wb!()),
        None,
        Check::Random(10),
        32,
        "[[NRAA-{h:27}]]"
    ),
    rule!(
        SentryOrgToken,
        SENTRY_TOKEN,
        ["sntrys_"],
        concat!(wb!(), r"sntrys_eyJ[A-Za-z0-9+/_=-]{80,400}"),
        None,
        Check::Random(16),
        420,
        "[[sntrys_eyJpYXQiOjE3{b:120}_{b:43}]]"
    ),
    rule!(
        SentryUserToken,
        SENTRY_TOKEN,
        ["sntryu_"],
        concat!(wb!(), r"sntryu_[a-f0-9]{64}", wb!()),
        None,
        Check::Random(12),
        71,
        "[[sntryu_{h:64}]]"
    ),
    rule!(
        PagerDutyApiKey,
        PAGERDUTY_API_KEY,
        ["pagerduty"],
        assign!("(?i:pagerduty_api_key|pagerduty_token|pagerduty_api_token|pd_api_key)", "[A-Za-z0-9_+-]{20}(?:[A-Za-z0-9_+-]*)"),
        Some(1),
        Check::Sized(20, 10),
        60,
        "PAGERDUTY_TOKEN=[[u+{a:18}]]"
    ),
    rule!(
        OktaApiToken,
        OKTA_API_TOKEN,
        ["okta"],
        assign!("(?i:okta_api_token|okta_token|okta_api_key|okta_client_token)", "00[A-Za-z0-9_-]{40}(?:[A-Za-z0-9_-]*)"),
        Some(1),
        Check::Sized(42, 14),
        80,
        "OKTA_API_TOKEN=[[00{u:40}]]"
    ),
    rule!(
        HubSpotPrivateAppToken,
        HUBSPOT_TOKEN,
        ["pat-na1-", "pat-eu1-"],
        concat!(wb!(), r"pat-(?:na|eu|ap)[0-9]-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}", wb!()),
        None,
        Check::Random(10),
        45,
        "[[pat-na1-{h:8}-{h:4}-{h:4}-{h:4}-{h:12}]]"
    ),
    rule!(
        IntercomAccessToken,
        INTERCOM_TOKEN,
        ["dg9ro"],
        concat!(wb!(), r"dG9rO[A-Za-z0-9+/]{50,70}={0,2}"),
        None,
        Check::Random(14),
        80,
        "[[dG9rO{b:55}=]]"
    ),
    rule!(
        ZendeskApiToken,
        ZENDESK_API_TOKEN,
        ["zendesk"],
        assign!("(?i:zendesk_api_token|zendesk_token|zendesk_api_key)", "[A-Za-z0-9]{40}(?:[A-Za-z0-9]*)"),
        Some(1),
        Check::Sized(40, 14),
        80,
        "ZENDESK_API_TOKEN=[[{a:40}]]"
    ),
    rule!(
        AirtablePersonalAccessToken,
        AIRTABLE_TOKEN,
        ["pat"],
        concat!(wb!(), r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}", wb!()),
        None,
        Check::Random(12),
        82,
        "[[pat{a:14}.{h:64}]]"
    ),
    rule!(
        AsanaPersonalAccessToken,
        ASANA_TOKEN,
        [":"],
        concat!(wb!(), r"[12]/[0-9]{13,16}(?:/[0-9]{13,16})?:[A-Za-z0-9]{32}", wb!()),
        None,
        Check::Random(12),
        70,
        "[[2/{d:16}/{d:16}:{h:32}]]"
    ),
    rule!(
        ClickUpApiToken,
        CLICKUP_TOKEN,
        ["pk_"],
        concat!(wb!(), r"pk_[0-9]{6,9}_[A-Z0-9]{32}", wb!()),
        None,
        Check::Random(12),
        45,
        "[[pk_{d:8}_{U:32}]]"
    ),
    rule!(
        DropboxAccessToken,
        DROPBOX_TOKEN,
        ["sl."],
        concat!(wb!(), r"sl\.[A-Za-z0-9_-]{130,152}", wb!()),
        None,
        Check::Random(20),
        155,
        "[[sl.{u:138}]]"
    ),
    rule!(
        SquareAccessToken,
        SQUARE_ACCESS_TOKEN,
        ["eaaa", "sq0atp-"],
        concat!(wb!(), r"(?:EAAA[A-Za-z0-9_-]{60}|sq0atp-[A-Za-z0-9_-]{22})", wb!()),
        None,
        Check::Random(14),
        64,
        "[[EAAA{u:60}]]"
    ),
    rule!(
        SquareOAuthSecret,
        SQUARE_OAUTH_SECRET,
        ["sq0csp-"],
        concat!(wb!(), r"sq0csp-[A-Za-z0-9_-]{43}", wb!()),
        None,
        Check::Random(14),
        50,
        "[[sq0csp-{u:43}]]"
    ),
    rule!(
        BraintreeAccessToken,
        BRAINTREE_ACCESS_TOKEN,
        ["access_token$production$", "access_token$sandbox$"],
        r"access_token\$(?:production|sandbox)\$[a-z0-9]{16}\$[a-f0-9]{32}",
        None,
        Check::Random(12),
        80,
        "[[access_token$production${l:16}${h:32}]]"
    ),
    rule!(
        PlaidAccessToken,
        PLAID_ACCESS_TOKEN,
        ["access-production-", "access-development-", "access-sandbox-"],
        concat!(wb!(), r"access-(?:production|development|sandbox)-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}", wb!()),
        None,
        Check::Random(10),
        60,
        "[[access-production-{h:8}-{h:4}-{h:4}-{h:4}-{h:12}]]"
    ),
    rule!(
        PlaidSecret,
        PLAID_SECRET,
        ["plaid_secret"],
        assign!("(?i:plaid_secret|plaid_secret_key)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(30, validate::hex, 10),
        60,
        "PLAID_SECRET=[[{h:30}]]"
    ),
    rule!(
        ShippoApiToken,
        SHIPPO_TOKEN,
        ["shippo_live_", "shippo_test_"],
        concat!(wb!(), r"shippo_(?:live|test)_[a-f0-9]{40}", wb!()),
        None,
        Check::Random(10),
        52,
        "[[shippo_live_{h:40}]]"
    ),
    rule!(
        EasyPostApiKey,
        EASYPOST_API_KEY,
        ["ezak"],
        concat!(wb!(), r"EZAK[a-f0-9]{54}", wb!()),
        None,
        Check::Random(10),
        58,
        "[[EZAK{h:54}]]"
    ),
    rule!(
        EasyPostTestKey,
        EASYPOST_TEST_KEY,
        ["eztk"],
        concat!(wb!(), r"EZTK[a-f0-9]{54}", wb!()),
        None,
        Check::Random(10),
        58,
        "[[EZTK{h:54}]]"
    ),
    rule!(
        PostmanApiKey,
        POSTMAN_API_KEY,
        ["pmak-"],
        concat!(wb!(), r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}", wb!()),
        None,
        Check::Random(10),
        64,
        "[[PMAK-{h:24}-{h:34}]]"
    ),
    rule!(
        FigmaPersonalAccessToken,
        FIGMA_TOKEN,
        ["figd_"],
        concat!(wb!(), r"figd_[A-Za-z0-9_-]{40}", wb!()),
        None,
        Check::Random(14),
        45,
        "[[figd_{u:40}]]"
    ),
    rule!(
        TypeformPersonalToken,
        TYPEFORM_TOKEN,
        ["tfp_"],
        concat!(wb!(), r"tfp_[A-Za-z0-9_.=-]{59}", wb!()),
        None,
        Check::Random(14),
        63,
        "[[tfp_{a:59}]]"
    ),
    rule!(
        BrevoApiKey,
        BREVO_API_KEY,
        ["xkeysib-"],
        concat!(wb!(), r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}", wb!()),
        None,
        Check::Random(12),
        89,
        "[[xkeysib-{h:64}-{a:16}]]"
    ),
    rule!(
        GrafanaCloudApiToken,
        GRAFANA_TOKEN,
        ["glc_"],
        concat!(wb!(), r"glc_[A-Za-z0-9+/]{80,400}={0,2}"),
        None,
        Check::Random(16),
        406,
        "[[glc_eyJvIjoi{b:100}]]"
    ),
    rule!(
        GrafanaServiceAccountToken,
        GRAFANA_TOKEN,
        ["glsa_"],
        concat!(wb!(), r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}", wb!()),
        None,
        Check::Random(14),
        46,
        "[[glsa_{a:32}_{h:8}]]"
    ),
    rule!(
        GrafanaApiKey,
        GRAFANA_TOKEN,
        ["eyjrijoi"],
        concat!(wb!(), r"eyJrIjoi[A-Za-z0-9+/]{70,400}={0,2}"),
        None,
        Check::Random(16),
        410,
        "[[eyJrIjoi{b:80}]]"
    ),
    rule!(
        DynatraceApiToken,
        DYNATRACE_TOKEN,
        ["dt0c01."],
        concat!(wb!(), r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}", wb!()),
        None,
        Check::Random(14),
        96,
        "[[dt0c01.{U:24}.{U:64}]]"
    ),
    rule!(
        FrameIoApiToken,
        FRAMEIO_TOKEN,
        ["fio-u-"],
        concat!(wb!(), r"fio-u-[A-Za-z0-9_=-]{64}", wb!()),
        None,
        Check::Random(14),
        70,
        "[[fio-u-{u:64}]]"
    ),
    rule!(
        FlutterwaveSecretKey,
        FLUTTERWAVE_SECRET_KEY,
        ["flwseck"],
        concat!(wb!(), r"FLWSECK(?:_TEST)?-[a-f0-9]{32}-X", wb!()),
        None,
        Check::Random(10),
        48,
        "[[FLWSECK-{h:32}-X]]"
    ),
    rule!(
        OnePasswordServiceAccountToken,
        ONEPASSWORD_TOKEN,
        ["ops_eyj"],
        concat!(wb!(), r"ops_eyJ[A-Za-z0-9+/]{250,}={0,3}"),
        None,
        Check::Random(20),
        1200,
        "[[ops_eyJ{b:300}]]"
    ),
    rule!(
        InfracostApiKey,
        INFRACOST_API_KEY,
        ["ico-"],
        concat!(wb!(), r"ico-[A-Za-z0-9]{32}", wb!()),
        None,
        Check::Random(14),
        36,
        "[[ico-{a:32}]]"
    ),
    rule!(
        PrefectApiKey,
        PREFECT_API_KEY,
        ["pnu_"],
        concat!(wb!(), r"pnu_[A-Za-z0-9]{36}", wb!()),
        None,
        Check::Random(14),
        40,
        "[[pnu_{a:36}]]"
    ),
    rule!(
        ReadmeApiKey,
        README_API_KEY,
        ["rdme_"],
        concat!(wb!(), r"rdme_[a-z0-9]{70}", wb!()),
        None,
        Check::Random(14),
        75,
        "[[rdme_{l:70}]]"
    ),
    rule!(
        DuffelApiToken,
        DUFFEL_TOKEN,
        ["duffel_live_", "duffel_test_"],
        concat!(wb!(), r"duffel_(?:live|test)_[A-Za-z0-9_=-]{43}", wb!()),
        None,
        Check::Random(14),
        55,
        "[[duffel_live_{u:43}]]"
    ),
    rule!(
        TwitterBearerToken,
        TWITTER_BEARER_TOKEN,
        ["aaaaaaaaaaaaaaaaaaaaa"],
        r"AAAAAAAAAAAAAAAAAAAAA([A-Za-z0-9%]{30,120})",
        Some(1),
        Check::Random(14),
        141,
        "AAAAAAAAAAAAAAAAAAAAA[[{a:20}%3D{a:50}]]"
    ),
    rule!(
        FacebookAccessToken,
        FACEBOOK_TOKEN,
        ["eaa"],
        concat!(wb!(), r"EAA[A-Za-z0-9]{100,300}", wb!()),
        None,
        Check::Random(20),
        303,
        "[[EAAG{a:150}]]"
    ),
    rule!(
        AlgoliaAdminKey,
        ALGOLIA_ADMIN_KEY,
        ["algolia"],
        assign!("(?i:algolia_admin_key|algolia_api_key|algolia_admin_api_key|algolia_write_key)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(32, validate::hex, 10),
        70,
        "ALGOLIA_ADMIN_KEY=[[{h:32}]]"
    ),
    rule!(
        LaunchDarklyApiToken,
        LAUNCHDARKLY_TOKEN,
        ["api-"],
        concat!(wb!(), r"api-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}", wb!()),
        None,
        Check::Random(10),
        40,
        "[[api-{h:8}-{h:4}-{h:4}-{h:4}-{h:12}]]"
    ),
    rule!(
        LaunchDarklySdkKey,
        LAUNCHDARKLY_SDK_KEY,
        ["sdk-"],
        concat!(wb!(), r"sdk-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}", wb!()),
        None,
        Check::Random(10),
        40,
        "[[sdk-{h:8}-{h:4}-{h:4}-{h:4}-{h:12}]]"
    ),
    rule!(
        MapboxSecretToken,
        MAPBOX_SECRET_TOKEN,
        ["sk.eyj"],
        concat!(wb!(), r"sk\.eyJ1Ijoi[A-Za-z0-9_-]{20,300}\.[A-Za-z0-9_-]{22}", wb!()),
        None,
        Check::Random(16),
        340,
        "[[sk.eyJ1Ijoi{u:60}.{u:22}]]"
    ),
    rule!(
        ZapierWebhookUrl,
        ZAPIER_WEBHOOK,
        ["hooks.zapier.com"],
        r"hooks\.zapier\.com/hooks/catch/([0-9]{5,10}/[a-z0-9]{6,8})",
        Some(1),
        Check::Random(8),
        60,
        "https://hooks.zapier.com/hooks/catch/[[{d:7}/{l:7}]]/"
    ),
    rule!(
        MicrosoftTeamsWebhookUrl,
        TEAMS_WEBHOOK,
        [".webhook.office.com"],
        r"\.webhook\.office\.com/webhookb2/([a-f0-9-]{36}@[a-f0-9-]{36}/IncomingWebhook/[a-f0-9]{32}/[a-f0-9-]{36})",
        Some(1),
        Check::Random(10),
        220,
        "https://{l:6}.webhook.office.com/webhookb2/[[{h:8}-{h:4}-{h:4}-{h:4}-{h:12}@{h:8}-{h:4}-{h:4}-{h:4}-{h:12}/IncomingWebhook/{h:32}/{h:8}-{h:4}-{h:4}-{h:4}-{h:12}]]"
    ),
    rule!(
        GoogleChatWebhookUrl,
        GOOGLE_CHAT_WEBHOOK,
        ["chat.googleapis.com"],
        r"chat\.googleapis\.com/v1/spaces/[A-Za-z0-9_-]{8,16}/messages\?key=[A-Za-z0-9_-]{39}&token=([A-Za-z0-9_%=-]{40,80})",
        Some(1),
        Check::Random(14),
        200,
        "https://chat.googleapis.com/v1/spaces/{a:11}/messages?key=AIza{u:35}&token=[[{u:43}%3D]]"
    ),
    rule!(
        SalesforceAccessToken,
        SALESFORCE_TOKEN,
        ["00d"],
        concat!(wb!(), r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9_.]{80,120}"),
        None,
        Check::Random(16),
        140,
        "[[00D{a:15}!AQ{a:94}]]"
    ),
    rule!(
        SnykApiToken,
        SNYK_TOKEN,
        ["snyk_token", "snyk_api_token"],
        assign!("(?i:snyk_token|snyk_api_token|snyk_auth_token)", "[A-Za-z0-9-]+"),
        Some(1),
        Check::Shape(36, validate::hex_or_dash, 10),
        70,
        "SNYK_TOKEN=[[{h:8}-{h:4}-{h:4}-{h:4}-{h:12}]]"
    ),
    rule!(
        ResendApiKey,
        RESEND_API_KEY,
        ["re_"],
        concat!(wb!(), r"re_[A-Za-z0-9]{8}_[A-Za-z0-9]{24}", wb!()),
        None,
        Check::Random(14),
        36,
        "[[re_{a:8}_{a:24}]]"
    ),
    rule!(
        PostHogPersonalApiKey,
        POSTHOG_API_KEY,
        ["phx_"],
        concat!(wb!(), r"phx_[A-Za-z0-9]{43}", wb!()),
        None,
        Check::Random(14),
        47,
        "[[phx_{a:43}]]"
    ),
    rule!(
        ContentfulPersonalAccessToken,
        CONTENTFUL_TOKEN,
        ["cfpat-"],
        concat!(wb!(), r"CFPAT-[A-Za-z0-9_-]{43}", wb!()),
        None,
        Check::Random(14),
        49,
        "[[CFPAT-{u:43}]]"
    ),
    rule!(
        TailscaleKey,
        TAILSCALE_KEY,
        ["tskey-"],
        concat!(wb!(), r"tskey-(?:api|auth|client|webhook|scim)-[A-Za-z0-9]{8,20}-[A-Za-z0-9]{20,40}", wb!()),
        None,
        Check::Random(14),
        80,
        "[[tskey-auth-{a:17}-{a:33}]]"
    ),
];
