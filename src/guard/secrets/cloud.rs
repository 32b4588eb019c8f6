//! Cloud providers: AWS, GCP, Azure, DigitalOcean, Alibaba, IBM, Tencent
//! and the hosting, database and edge platforms.

use super::{assign, rule, validate, wb, Check, SecretRule};

pub const RULES: &[SecretRule] = &[
    // AWS: the secret access key has no prefix (40 base64 characters), so
    // the key name must be right before it; the access key id is the
    // `AwsAccessKey` builtin.
    rule!(
        AwsSecretAccessKey,
        AWS_SECRET_KEY,
        ["secret_access_key", "secretaccesskey", "aws_secret_key", "aws-secret-access-key"],
        assign!(
            "(?i:secret_access_key|secretaccesskey|aws_secret_key|aws-secret-access-key)",
            "[A-Za-z0-9/+=]{40,}"
        ),
        Some(1),
        Check::Sized(40, 14),
        120,
        "AWS_SECRET_ACCESS_KEY=[[{b:40}]]"
    ),
    rule!(
        AwsSessionToken,
        AWS_SESSION_TOKEN,
        ["session_token", "security_token"],
        assign!(
            "(?i:aws_session_token|aws_security_token|awssessiontoken)",
            "[A-Za-z0-9/+=]{100,2000}"
        ),
        Some(1),
        Check::Random(20),
        2100,
        "aws_session_token = [[IQoJb3JpZ2luX2Vj{b:180}]]"
    ),
    rule!(
        AwsMwsAuthToken,
        AWS_MWS_TOKEN,
        ["amzn.mws."],
        concat!(wb!(), r"amzn\.mws\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", wb!()),
        None,
        Check::Random(10),
        45,
        "[[amzn.mws.{h:8}-{h:4}-{h:4}-{h:4}-{h:12}]]"
    ),
    // Bedrock long-term API keys: `ABSK` + base64 of `BedrockAPIKey-…`.
    rule!(
        AwsBedrockApiKey,
        AWS_BEDROCK_API_KEY,
        ["absk"],
        concat!(wb!(), r"ABSKQmVkcm9ja0FQSUtleS[A-Za-z0-9+/]{40,400}={0,2}"),
        None,
        Check::Random(16),
        430,
        "[[ABSKQmVkcm9ja0FQSUtleS{b:108}]]"
    ),
    rule!(
        GcpOAuthClientSecret,
        GCP_OAUTH_CLIENT_SECRET,
        ["gocspx-"],
        concat!(wb!(), r"GOCSPX-[A-Za-z0-9_-]{28}(?:[A-Za-z0-9_-]*)"),
        None,
        Check::Sized(35, 14),
        64,
        "[[GOCSPX-{u:28}]]"
    ),
    rule!(
        GcpOAuthAccessToken,
        GCP_OAUTH_ACCESS_TOKEN,
        ["ya29."],
        concat!(wb!(), r"ya29\.[A-Za-z0-9_-]{100,2048}"),
        None,
        Check::Random(16),
        2060,
        "[[ya29.a0{u:160}]]"
    ),
    rule!(
        FirebaseCloudMessagingServerKey,
        FCM_SERVER_KEY,
        [":apa91b"],
        concat!(wb!(), r"AAAA[A-Za-z0-9_-]{7}:APA91b[A-Za-z0-9_-]{134}", wb!()),
        None,
        Check::Random(20),
        152,
        "[[AAAA{u:7}:APA91b{a:134}]]"
    ),
    // Azure: storage account keys (64 random bytes, 88 base64 characters)
    // in connection strings, shared access keys (Service Bus, Event Hubs,
    // IoT Hub), SAS signatures, Entra ID client secrets, DevOps PATs.
    rule!(
        AzureStorageAccountKey,
        AZURE_STORAGE_KEY,
        ["accountkey="],
        r"(?i:AccountKey)=([A-Za-z0-9+/]{86}==)",
        Some(1),
        Check::Random(20),
        100,
        "DefaultEndpointsProtocol=https;AccountName={l:10};AccountKey=[[{b:86}==]];EndpointSuffix=core.windows.net"
    ),
    rule!(
        AzureSharedAccessKey,
        AZURE_SHARED_ACCESS_KEY,
        ["sharedaccesskey="],
        r"(?i:SharedAccessKey)=([A-Za-z0-9+/]{42,43}=)",
        Some(1),
        Check::Random(16),
        60,
        "Endpoint=sb://{l:8}.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=[[{b:43}=]]"
    ),
    rule!(
        AzureSasToken,
        AZURE_SAS_TOKEN,
        ["sv=", "sig="],
        r"sv=20[0-9]{2}-[0-9]{2}-[0-9]{2}&[A-Za-z0-9&=%:.+_-]{0,300}?sig=([A-Za-z0-9%+/]{40,100}(?:%3[Dd]|=){0,2})",
        Some(1),
        Check::Random(16),
        420,
        "https://{l:10}.blob.core.windows.net/c/f?sv=2022-11-02&ss=b&srt=sco&sp=rl&se=2030-01-01T00:00:00Z&spr=https&sig=[[{a:43}%3D]]"
    ),
    rule!(
        AzureAdClientSecret,
        AZURE_AD_CLIENT_SECRET,
        ["q~"],
        concat!(wb!(), r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}", wb!()),
        None,
        Check::Random(16),
        40,
        "[[{a:3}8Q~{a:34}]]"
    ),
    rule!(
        AzureDevOpsPersonalAccessToken,
        AZURE_DEVOPS_PAT,
        ["azdo"],
        concat!(wb!(), r"[A-Za-z0-9]{52}JQQJ9[9DH][A-Za-z0-9][A-L][A-Za-z0-9]{16}AZDO[A-Za-z0-9]{4}", wb!()),
        None,
        Check::Random(20),
        84,
        "[[{a:52}JQQJ99{a:1}A{a:16}AZDO{a:4}]]"
    ),
    rule!(
        AzureAppConfigConnectionString,
        AZURE_APP_CONFIG_SECRET,
        [".azconfig.io"],
        r"\.azconfig\.io;Id=[A-Za-z0-9+/=:-]{1,64};Secret=([A-Za-z0-9+/]{40,64}={0,2})",
        Some(1),
        Check::Random(16),
        200,
        "Endpoint=https://{l:8}.azconfig.io;Id={a:4}-l0-s0:{a:20};Secret=[[{b:43}=]]"
    ),
    rule!(
        AzureOpenAiApiKey,
        AZURE_OPENAI_KEY,
        ["azure_openai"],
        assign!("(?i:azure_openai_api_key|azure_openai_key|azureopenaikey)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(32, validate::hex, 10),
        80,
        "AZURE_OPENAI_API_KEY=[[{h:32}]]"
    ),
    // DigitalOcean: `do?_v1_` + 64 hex.
    rule!(
        DigitalOceanPersonalAccessToken,
        DIGITALOCEAN_TOKEN,
        ["dop_v1_"],
        concat!(wb!(), r"dop_v1_[a-f0-9]{64}", wb!()),
        None,
        Check::Random(12),
        71,
        "[[dop_v1_{h:64}]]"
    ),
    rule!(
        DigitalOceanOAuthToken,
        DIGITALOCEAN_OAUTH_TOKEN,
        ["doo_v1_"],
        concat!(wb!(), r"doo_v1_[a-f0-9]{64}", wb!()),
        None,
        Check::Random(12),
        71,
        "[[doo_v1_{h:64}]]"
    ),
    rule!(
        DigitalOceanRefreshToken,
        DIGITALOCEAN_REFRESH_TOKEN,
        ["dor_v1_"],
        concat!(wb!(), r"dor_v1_[a-f0-9]{64}", wb!()),
        None,
        Check::Random(12),
        71,
        "[[dor_v1_{h:64}]]"
    ),
    rule!(
        AlibabaAccessKeyId,
        ALIBABA_ACCESS_KEY_ID,
        ["ltai"],
        concat!(wb!(), r"LTAI[A-Za-z0-9]{12,20}", wb!()),
        None,
        Check::Random(10),
        24,
        "[[LTAI{a:20}]]"
    ),
    rule!(
        AlibabaAccessKeySecret,
        ALIBABA_ACCESS_KEY_SECRET,
        ["access_key_secret", "accesskeysecret"],
        assign!("(?i:access_key_secret|accesskeysecret|alibaba_cloud_access_key_secret)", "[A-Za-z0-9]{30}(?:[A-Za-z0-9]*)"),
        Some(1),
        Check::Sized(30, 12),
        90,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET: [[{a:30}]]"
    ),
    rule!(
        IbmCloudApiKey,
        IBM_CLOUD_API_KEY,
        ["ibm"],
        assign!("(?i:ibmcloud_api_key|ibm_cloud_api_key|ibm_api_key|ibmcloud_apikey)", "[A-Za-z0-9_-]{44}(?:[A-Za-z0-9_-]*)"),
        Some(1),
        Check::Sized(44, 14),
        100,
        "IBMCLOUD_API_KEY=[[{u:44}]]"
    ),
    rule!(
        IbmCosHmacSecret,
        IBM_COS_HMAC_SECRET,
        ["cos_hmac_keys"],
        r#"(?i:cos_hmac_keys)"? ?: ?\{ ?"access_key_id" ?: ?"[A-Za-z0-9]+" ?, ?"secret_access_key" ?: ?"([A-Za-z0-9]+)""#,
        Some(1),
        Check::Shape(48, validate::hex, 12),
        160,
        r#""cos_hmac_keys": {"access_key_id": "{h:32}", "secret_access_key": "[[{h:48}]]"}"#
    ),
    rule!(
        TencentCloudSecretId,
        TENCENT_SECRET_ID,
        ["akid"],
        concat!(wb!(), r"AKID[A-Za-z0-9]{32}", wb!()),
        None,
        Check::Random(14),
        36,
        "[[AKID{a:32}]]"
    ),
    rule!(
        ScalewaySecretKey,
        SCALEWAY_SECRET_KEY,
        ["scw_secret_key"],
        assign!("(?i:scw_secret_key)", "[A-Za-z0-9-]+"),
        Some(1),
        Check::Shape(36, validate::hex_or_dash, 10),
        80,
        "SCW_SECRET_KEY=[[{h:8}-{h:4}-{h:4}-{h:4}-{h:12}]]"
    ),
    rule!(
        LinodeApiToken,
        LINODE_TOKEN,
        ["linode"],
        assign!("(?i:linode_token|linode_api_token|linode_cli_token)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(64, validate::hex, 12),
        100,
        "LINODE_TOKEN=[[{h:64}]]"
    ),
    rule!(
        VultrApiKey,
        VULTR_API_KEY,
        ["vultr"],
        assign!("(?i:vultr_api_key|vultr_key)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(36, validate::upper_alnum, 14),
        70,
        "VULTR_API_KEY=[[{U:36}]]"
    ),
    rule!(
        HetznerCloudToken,
        HETZNER_TOKEN,
        ["hcloud_token"],
        assign!("(?i:hcloud_token|hetzner_token|hetzner_api_token)", "[A-Za-z0-9]{64}(?:[A-Za-z0-9]*)"),
        Some(1),
        Check::Sized(64, 16),
        100,
        "HCLOUD_TOKEN=[[{a:64}]]"
    ),
    rule!(
        YandexCloudApiKey,
        YANDEX_API_KEY,
        ["aqvn"],
        concat!(wb!(), r"AQVN[A-Za-z0-9_-]{35,38}", wb!()),
        None,
        Check::Random(14),
        42,
        "[[AQVN{u:36}]]"
    ),
    rule!(
        FlyIoAccessToken,
        FLY_IO_TOKEN,
        ["fo1_"],
        concat!(wb!(), r"fo1_[A-Za-z0-9_-]{43}", wb!()),
        None,
        Check::Random(14),
        47,
        "[[fo1_{a:43}]]"
    ),
    rule!(
        CloudflareApiToken,
        CLOUDFLARE_API_TOKEN,
        ["cloudflare_api_token", "cf_api_token"],
        assign!("(?i:cloudflare_api_token|cf_api_token|cloudflare_token)", "[A-Za-z0-9_-]{40}(?:[A-Za-z0-9_-]*)"),
        Some(1),
        Check::Sized(40, 14),
        80,
        "CLOUDFLARE_API_TOKEN=[[{u:40}]]"
    ),
    rule!(
        CloudflareGlobalApiKey,
        CLOUDFLARE_GLOBAL_API_KEY,
        ["cloudflare_api_key", "cf_api_key", "x-auth-key"],
        assign!("(?i:cloudflare_api_key|cf_api_key|cloudflare_global_api_key|x-auth-key)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(37, validate::hex, 10),
        80,
        "CF_API_KEY=[[{h:37}]]"
    ),
    rule!(
        CloudflareOriginCaKey,
        CLOUDFLARE_ORIGIN_CA_KEY,
        ["v1.0-"],
        concat!(wb!(), r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}", wb!()),
        None,
        Check::Random(12),
        177,
        "[[v1.0-{h:24}-{h:146}]]"
    ),
    rule!(
        DatabricksApiToken,
        DATABRICKS_TOKEN,
        ["dapi"],
        concat!(wb!(), r"dapi[a-f0-9]{32}(?:-[0-9])?", wb!()),
        None,
        Check::Random(10),
        38,
        "[[dapi{h:32}]]"
    ),
    rule!(
        DopplerPersonalToken,
        DOPPLER_TOKEN,
        ["dp.pt."],
        concat!(wb!(), r"dp\.pt\.[A-Za-z0-9]{43}", wb!()),
        None,
        Check::Random(14),
        49,
        "[[dp.pt.{a:43}]]"
    ),
    rule!(
        DopplerServiceToken,
        DOPPLER_SERVICE_TOKEN,
        ["dp.st."],
        concat!(wb!(), r"dp\.st\.(?:[a-z0-9_-]{2,35}\.)?[A-Za-z0-9]{40,44}", wb!()),
        None,
        Check::Random(14),
        90,
        "[[dp.st.prd.{a:43}]]"
    ),
    rule!(
        DopplerCliToken,
        DOPPLER_CLI_TOKEN,
        ["dp.ct."],
        concat!(wb!(), r"dp\.ct\.[A-Za-z0-9]{40,44}", wb!()),
        None,
        Check::Random(14),
        50,
        "[[dp.ct.{a:43}]]"
    ),
    rule!(
        DopplerServiceAccountToken,
        DOPPLER_SERVICE_ACCOUNT_TOKEN,
        ["dp.sa."],
        concat!(wb!(), r"dp\.sa\.[A-Za-z0-9]{40,44}", wb!()),
        None,
        Check::Random(14),
        50,
        "[[dp.sa.{a:43}]]"
    ),
    rule!(
        DopplerScimToken,
        DOPPLER_SCIM_TOKEN,
        ["dp.scim."],
        concat!(wb!(), r"dp\.scim\.[A-Za-z0-9]{40,44}", wb!()),
        None,
        Check::Random(14),
        52,
        "[[dp.scim.{a:43}]]"
    ),
    rule!(
        DopplerAuditToken,
        DOPPLER_AUDIT_TOKEN,
        ["dp.audit."],
        concat!(wb!(), r"dp\.audit\.[A-Za-z0-9]{40,44}", wb!()),
        None,
        Check::Random(14),
        53,
        "[[dp.audit.{a:43}]]"
    ),
    rule!(
        SupabaseAccessToken,
        SUPABASE_ACCESS_TOKEN,
        ["sbp_"],
        concat!(wb!(), r"sbp_[a-f0-9]{40}", wb!()),
        None,
        Check::Random(10),
        44,
        "[[sbp_{h:40}]]"
    ),
    rule!(
        SupabaseSecretKey,
        SUPABASE_SECRET_KEY,
        ["sb_secret_"],
        concat!(wb!(), r"sb_secret_[A-Za-z0-9_-]{31,64}", wb!()),
        None,
        Check::Random(14),
        74,
        "[[sb_secret_{a:31}]]"
    ),
    rule!(
        PlanetScaleApiToken,
        PLANETSCALE_TOKEN,
        ["pscale_tkn_"],
        concat!(wb!(), r"pscale_tkn_[A-Za-z0-9_.-]{32,64}", wb!()),
        None,
        Check::Random(14),
        75,
        "[[pscale_tkn_{a:43}]]"
    ),
    rule!(
        PlanetScalePassword,
        PLANETSCALE_PASSWORD,
        ["pscale_pw_"],
        concat!(wb!(), r"pscale_pw_[A-Za-z0-9_.-]{32,64}", wb!()),
        None,
        Check::Random(14),
        74,
        "[[pscale_pw_{a:43}]]"
    ),
    rule!(
        PlanetScaleOAuthToken,
        PLANETSCALE_OAUTH_TOKEN,
        ["pscale_oauth_"],
        concat!(wb!(), r"pscale_oauth_[A-Za-z0-9_.-]{32,64}", wb!()),
        None,
        Check::Random(14),
        77,
        "[[pscale_oauth_{a:43}]]"
    ),
    rule!(
        RenderApiKey,
        RENDER_API_KEY,
        ["rnd_"],
        concat!(wb!(), r"rnd_[A-Za-z0-9]{32}", wb!()),
        None,
        Check::Random(14),
        36,
        "[[rnd_{a:32}]]"
    ),
    rule!(
        FastlyApiToken,
        FASTLY_API_TOKEN,
        ["fastly"],
        assign!("(?i:fastly_api_token|fastly_api_key|fastly_token|fastly-key)", "[A-Za-z0-9_-]{32}(?:[A-Za-z0-9_-]*)"),
        Some(1),
        Check::Sized(32, 12),
        70,
        "FASTLY_API_TOKEN=[[{u:32}]]"
    ),
];
